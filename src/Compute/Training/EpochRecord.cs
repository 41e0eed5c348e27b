namespace Cluster.Compute.Training;

/// <summary>Figures of one epoch. Accuracy fields are null for regression, RMSE fields null for classification.</summary>
public sealed record EpochRecord
{
    /// <summary>1-based epoch number.</summary>
    public int Epoch { get; init; }

    /// <summary>Mean training loss over the epoch's batches (at the weights each batch saw).</summary>
    public double TrainLoss { get; init; }

    /// <summary>Training accuracy over the epoch.</summary>
    public double? TrainAccuracy { get; init; }

    /// <summary>Training RMSE (regression).</summary>
    public double? TrainRmse { get; init; }

    /// <summary>Validation loss after the epoch.</summary>
    public double? ValidationLoss { get; init; }

    /// <summary>Validation accuracy after the epoch.</summary>
    public double? ValidationAccuracy { get; init; }

    /// <summary>Test loss after the epoch.</summary>
    public double? TestLoss { get; init; }

    /// <summary>Test accuracy after the epoch.</summary>
    public double? TestAccuracy { get; init; }

    /// <summary>Test RMSE (regression).</summary>
    public double? TestRmse { get; init; }

    /// <summary>Seconds spent training in the epoch (evaluation excluded).</summary>
    public double Seconds { get; init; }

    /// <summary>Training samples per second.</summary>
    public double SamplesPerSecond { get; init; }

    /// <summary>Learning rate used in the epoch.</summary>
    public float LearningRate { get; init; }

    /// <summary>Optimizer steps in the epoch.</summary>
    public long Steps { get; init; }

    /// <summary>Training samples used in the epoch.</summary>
    public long Samples { get; init; }
}
