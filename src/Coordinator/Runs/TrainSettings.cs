using Cluster.Compute;
using Cluster.Compute.Data;
using Cluster.Compute.Optim;
using Cluster.Compute.Training;

namespace Cluster.Coordinator.Runs;

/// <summary>A training run as the user asked for it, before data or model are loaded.</summary>
public sealed record TrainSettings
{
    /// <summary>mnist or a CSV path.</summary>
    public string Dataset { get; init; } = "mnist";

    /// <summary>Folder of the MNIST files.</summary>
    public string DataDir { get; init; } = Path.Combine("data", "mnist");

    /// <summary>CSV label column.</summary>
    public string? Label { get; init; }

    /// <summary>Meaning of a CSV label.</summary>
    public CsvTask Task { get; init; }

    /// <summary>CSV test set.</summary>
    public string? TestData { get; init; }

    /// <summary>Hidden layer sizes.</summary>
    public int[] Hidden { get; init; } = [128, 64];

    /// <summary>
    /// Which of the options that shape a new model (--layers, --activation, --dropout, --init) were given, on the command
    /// line or by their environment twins: with --init-model they must agree with the model, which keeps its own.
    /// </summary>
    public IReadOnlySet<string> ShapeGiven { get; init; } = new HashSet<string>();

    /// <summary>Hidden activation.</summary>
    public Activation Activation { get; init; } = Activation.Relu;

    /// <summary>Output activation, or null for the loss's natural one.</summary>
    public Activation? OutputActivation { get; init; }

    /// <summary>Loss, or null for the data's natural one.</summary>
    public LossKind? Loss { get; init; }

    /// <summary>Weight initialisation.</summary>
    public InitKind Init { get; init; }

    /// <summary>sgd, momentum or adam.</summary>
    public string Optimizer { get; init; } = "sgd";

    /// <summary>Base learning rate.</summary>
    public float LearningRate { get; init; } = 0.1f;

    /// <summary>Momentum coefficient.</summary>
    public float Momentum { get; init; } = 0.9f;

    /// <summary>L1 penalty.</summary>
    public float L1 { get; init; }

    /// <summary>L2 penalty.</summary>
    public float L2 { get; init; }

    /// <summary>Dropout rate after hidden layers.</summary>
    public float Dropout { get; init; }

    /// <summary>Global batch size.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Epochs.</summary>
    public int Epochs { get; init; } = 5;

    /// <summary>The one seed.</summary>
    public ulong Seed { get; init; }

    /// <summary>Compute threads per process.</summary>
    public int Threads { get; init; } = 1;

    /// <summary>Backend name.</summary>
    public string Backend { get; init; } = "auto";

    /// <summary>Learning-rate schedule.</summary>
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Constant;

    /// <summary>Validation fraction.</summary>
    public double ValidationSplit { get; init; }

    /// <summary>Early-stopping patience.</summary>
    public int EarlyStopping { get; init; }

    /// <summary>Standardise CSV features.</summary>
    public bool Standardize { get; init; } = true;

    /// <summary>Model to start from.</summary>
    public string? InitModel { get; init; }

    /// <summary>Where to save the model.</summary>
    public string? ModelPath { get; init; }

    /// <summary>Where to write the report.</summary>
    public string? ReportPath { get; init; }

    /// <summary>Checkpoint folder.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Checkpoint every N steps (0: epoch ends only).</summary>
    public int CheckpointEvery { get; init; }

    /// <summary>Checkpoints kept.</summary>
    public int CheckpointKeep { get; init; } = 3;

    /// <summary>Block-sparse tensors between coordinator and worker processes (<see cref="Grains.ClusterOptions.BlockTensors"/>).</summary>
    public bool BlockTensors { get; init; } = true;

    /// <summary>Tensors to worker processes on this machine through shared memory (<see cref="Hosting.EndpointOptions.SharedMemory"/>).</summary>
    public bool SharedMemory { get; init; } = true;

    /// <summary>Resume from this folder.</summary>
    public string? Resume { get; init; }

    /// <summary>Plot file (.svg or .png); null: next to the report, if any.</summary>
    public string? PlotPath { get; init; }

    /// <summary>text or json logs.</summary>
    public string LogFormat { get; init; } = "text";

    /// <summary>Quiet output.</summary>
    public bool Quiet { get; init; }

    /// <summary>The optimizer-side options.</summary>
    public TrainingOptions ToTrainingOptions() => new()
    {
        Epochs = Epochs,
        BatchSize = BatchSize,
        LearningRate = LearningRate,
        Optimizer = Optimizer,
        Momentum = Momentum,
        L1 = L1,
        L2 = L2,
        Seed = Seed,
        Schedule = Schedule,
        EarlyStoppingPatience = EarlyStopping,
    };
}
