using Cluster.Compute.Optim;

namespace Cluster.Compute.Training;

/// <summary>How a model is trained: the same options drive single-node and cluster training.</summary>
public sealed record TrainingOptions
{
    /// <summary>Passes over the training data.</summary>
    public int Epochs { get; init; } = 5;

    /// <summary>Samples per (global) mini-batch; the training-set size gives full-batch descent, 1 stochastic descent.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Base learning rate.</summary>
    public float LearningRate { get; init; } = 0.1f;

    /// <summary>sgd, momentum or adam.</summary>
    public string Optimizer { get; init; } = "sgd";

    /// <summary>Momentum coefficient for the momentum optimizer.</summary>
    public float Momentum { get; init; } = 0.9f;

    /// <summary>L1 penalty on weights.</summary>
    public float L1 { get; init; }

    /// <summary>L2 penalty on weights.</summary>
    public float L2 { get; init; }

    /// <summary>The one seed every random choice flows from.</summary>
    public ulong Seed { get; init; }

    /// <summary>Learning-rate schedule per epoch.</summary>
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Constant;

    /// <summary>Stop after this many epochs without a better validation loss (0: never); the best weights are kept.</summary>
    public int EarlyStoppingPatience { get; init; }

    /// <summary>Shuffle the training order every epoch.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Throws with a message naming the option when a value is out of range.</summary>
    public void Validate(bool hasValidation)
    {
        Require(Epochs >= 1, "--epochs must be at least 1.");
        Require(BatchSize >= 1, "--batch-size must be at least 1.");
        Require(float.IsFinite(LearningRate) && LearningRate > 0, "--lr must be a positive number.");
        Require(Momentum >= 0 && Momentum < 1, "--momentum must be in [0, 1).");
        Require(L1 >= 0 && float.IsFinite(L1), "--l1 must be zero or positive.");
        Require(L2 >= 0 && float.IsFinite(L2), "--l2 must be zero or positive.");
        Require(EarlyStoppingPatience >= 0, "--early-stopping must be zero or positive.");
        Require(EarlyStoppingPatience == 0 || hasValidation, "--early-stopping needs a validation set; add --validation-split (e.g. 0.1).");
        Require(Optimizer is "sgd" or "momentum" or "adam", $"--optimizer must be sgd, momentum or adam, not '{Optimizer}'.");
    }

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message);
        }
    }
}
