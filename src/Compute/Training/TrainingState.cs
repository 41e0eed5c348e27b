namespace Cluster.Compute.Training;

/// <summary>
/// Everything a run needs to continue exactly where it stopped: position, running sums of the current epoch,
/// early-stopping bookkeeping and history. Parameters and optimizer state are held by the model and optimizer.
/// </summary>
public sealed class TrainingState
{
    /// <summary>Zero-based epoch in progress (equals the epoch count when the run is over).</summary>
    public int Epoch { get; set; }

    /// <summary>Steps done in the current epoch.</summary>
    public int StepInEpoch { get; set; }

    /// <summary>Steps done in the whole run: the version of the current parameters.</summary>
    public long GlobalStep { get; set; }

    /// <summary>Training sums of the current epoch so far.</summary>
    public BatchStats EpochStats { get; set; }

    /// <summary>Training seconds of the current epoch so far.</summary>
    public double EpochSeconds { get; set; }

    /// <summary>Finished epochs.</summary>
    public List<EpochRecord> History { get; } = [];

    /// <summary>Best validation loss so far (early stopping).</summary>
    public double BestValidationLoss { get; set; } = double.PositiveInfinity;

    /// <summary>Epoch (1-based) of the best validation loss.</summary>
    public int BestEpoch { get; set; }

    /// <summary>Parameters at the best validation loss, when early stopping is on.</summary>
    public float[]? BestParameters { get; set; }

    /// <summary>Epochs since the validation loss last improved.</summary>
    public int EpochsWithoutImprovement { get; set; }

    /// <summary>True once early stopping ended the run.</summary>
    public bool StoppedEarly { get; set; }
}
