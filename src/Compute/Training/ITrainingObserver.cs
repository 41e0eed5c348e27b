namespace Cluster.Compute.Training;

/// <summary>Figures of one finished step.</summary>
/// <param name="Epoch">Zero-based epoch.</param>
/// <param name="StepInEpoch">1-based step within the epoch.</param>
/// <param name="StepsInEpoch">Steps the epoch has.</param>
/// <param name="GlobalStep">Steps done in the run, this one included.</param>
/// <param name="Stats">The step's sums (loss, correct, count).</param>
/// <param name="LearningRate">Rate applied.</param>
/// <param name="GradientNorm">L2 norm of the averaged gradient.</param>
/// <param name="Seconds">Wall time of the step.</param>
public readonly record struct StepReport(int Epoch, int StepInEpoch, int StepsInEpoch, long GlobalStep, BatchStats Stats, float LearningRate, double GradientNorm, double Seconds);

/// <summary>Watches a training run: progress display, metrics, checkpoints.</summary>
public interface ITrainingObserver
{
    /// <summary>An epoch begins.</summary>
    void OnEpochStart(int epoch, int stepsInEpoch)
    {
    }

    /// <summary>A step was applied to the parameters.</summary>
    void OnStep(in StepReport report)
    {
    }

    /// <summary>An epoch ended and was evaluated.</summary>
    void OnEpochEnd(EpochRecord record)
    {
    }
}
