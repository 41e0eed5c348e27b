using Cluster.Contracts.Configuration;
using System.CommandLine;
using System.Globalization;
using Cluster.Compute;
using Cluster.Compute.Data;
using Cluster.Compute.Optim;
using Cluster.Coordinator.Runs;

namespace Cluster.Coordinator.Cli;

/// <summary>The training options shared by <c>train</c> and <c>coordinator</c>, each with its environment twin.</summary>
public sealed class TrainingOptionSet
{
    private readonly Option<string> _dataset = EnvOption.Create("--dataset", "mnist, or the path of a CSV file (header row, numeric features).", "CLUSTER_DATASET", "mnist");
    private readonly Option<string> _dataDir = EnvOption.Create("--data-dir", "Folder of the MNIST IDX files (plain or .gz); fetched there when missing.", "CLUSTER_DATA_DIR", Path.Combine("data", "mnist"));
    private readonly Option<string?> _label = EnvOption.Create<string?>("--label", "Label column of a CSV dataset.", "CLUSTER_LABEL", null);
    private readonly Option<string> _task = EnvOption.Create("--task", "auto|classification|regression: what a CSV label means (auto: text or up to 20 whole numbers are classes).", "CLUSTER_TASK", "auto");
    private readonly Option<string?> _testData = EnvOption.Create<string?>("--test-data", "CSV file with the same columns, used as the test set.", "CLUSTER_TEST_DATA", null);
    private readonly Option<string> _layers = EnvOption.Create("--layers", "Hidden layer sizes, comma-separated (empty for none).", "CLUSTER_LAYERS", "128,64");
    private readonly Option<string> _activation = EnvOption.Create("--activation", "Hidden activation: relu, sigmoid, tanh, identity, step.", "CLUSTER_ACTIVATION", "relu");
    private readonly Option<string?> _outputActivation = EnvOption.Create<string?>("--output-activation", "Output activation (default: softmax for cross-entropy, sigmoid for binary cross-entropy and MSE classifiers, identity for regression).", "CLUSTER_OUTPUT_ACTIVATION", null);
    private readonly Option<string?> _loss = EnvOption.Create<string?>("--loss", "cross-entropy, mse or binary-cross-entropy (default: cross-entropy for classes, mse for regression).", "CLUSTER_LOSS", null);
    private readonly Option<string> _init = EnvOption.Create("--init", "Weight initialisation: auto (He uniform for ReLU, Xavier uniform otherwise), xavier-uniform, xavier-normal, he-uniform, he-normal, small-uniform, fan-in-uniform (PyTorch's default for linear layers).", "CLUSTER_INIT", "auto");
    private readonly Option<string> _optimizer = EnvOption.Create("--optimizer", "sgd, momentum or adam.", "CLUSTER_OPTIMIZER", "sgd");
    private readonly Option<float?> _lr = EnvOption.Create<float?>("--lr", "Learning rate (default 0.1 for sgd, 0.01 for momentum, 0.001 for adam).", "CLUSTER_LR", null);
    private readonly Option<float> _momentum = EnvOption.Create("--momentum", "Momentum coefficient.", "CLUSTER_MOMENTUM", 0.9f);
    private readonly Option<float> _l1 = EnvOption.Create("--l1", "L1 penalty on weights.", "CLUSTER_L1", 0f);
    private readonly Option<float> _l2 = EnvOption.Create("--l2", "L2 penalty on weights (weight decay).", "CLUSTER_L2", 0f);
    private readonly Option<float> _dropout = EnvOption.Create("--dropout", "Dropout rate after each hidden layer (0 = off).", "CLUSTER_DROPOUT", 0f);
    private readonly Option<int> _batchSize = EnvOption.Create("--batch-size", "Samples per (global) mini-batch; the training-set size gives full-batch descent, 1 stochastic.", "CLUSTER_BATCH_SIZE", 64);
    private readonly Option<int> _epochs = EnvOption.Create("--epochs", "Passes over the training data.", "CLUSTER_EPOCHS", 5);
    private readonly Option<ulong> _seed = EnvOption.Create("--seed", "Seed of every random choice (init, shuffles, dropout, splits).", "CLUSTER_SEED", 0UL);
    private readonly Option<int> _threads = EnvOption.Create("--threads", "Compute threads per worker (default: the processors shared among the workers); the managed backend computes a product on at most the processor count.", "CLUSTER_THREADS", 0);
    private readonly Option<string> _backend = EnvOption.Create("--backend", "Compute backend: auto, managed or openblas.", "CLUSTER_BACKEND", "auto");
    private readonly Option<string> _schedule = EnvOption.Create("--lr-schedule", "constant, step:EPOCHS:GAMMA or exp:GAMMA.", "CLUSTER_LR_SCHEDULE", "constant");
    private readonly Option<double> _validationSplit = EnvOption.Create("--validation-split", "Fraction of the training data held out for validation (0 = none).", "CLUSTER_VALIDATION_SPLIT", 0.0);
    private readonly Option<int> _earlyStopping = EnvOption.Create("--early-stopping", "Stop after this many epochs without a better validation loss, keeping the best weights (0 = off).", "CLUSTER_EARLY_STOPPING", 0);
    private readonly Option<bool> _standardize = EnvOption.Create("--standardize", "Scale CSV features to zero mean and unit variance (fitted on the training data, saved with the model). On by default; --standardize false turns it off.", "CLUSTER_STANDARDIZE", true);
    private readonly Option<string?> _initModel = EnvOption.Create<string?>("--init-model", "Start from a saved model (binary or .json) instead of random weights.", "CLUSTER_INIT_MODEL", null);
    private readonly Option<string?> _model = EnvOption.Create<string?>("--model", "Save the trained model here (.json for JSON, else binary).", "CLUSTER_MODEL", null);
    private readonly Option<string?> _report = EnvOption.Create<string?>("--report", "Write the training report here: JSON (options, per-epoch history, final figures, the cluster's workers), or the per-epoch history alone as CSV when the name ends in .csv.", "CLUSTER_REPORT", null);
    private readonly Option<string?> _checkpointDir = EnvOption.Create<string?>("--checkpoint-dir", "Write checkpoints (weights, optimizer state, position, history) here, atomically.", "CLUSTER_CHECKPOINT_DIR", null);
    private readonly Option<int> _checkpointEvery = EnvOption.Create("--checkpoint-every", "Checkpoint every N steps as well as at each epoch end (0: epoch ends only).", "CLUSTER_CHECKPOINT_EVERY", 0);
    private readonly Option<int> _checkpointKeep = EnvOption.Create("--checkpoint-keep", "Checkpoints kept.", "CLUSTER_CHECKPOINT_KEEP", 3);
    private readonly Option<string?> _resume = EnvOption.Create<string?>("--resume", "Continue from the newest good checkpoint in this folder (a corrupt one is reported and the previous used); starts fresh when there is none. Checkpoints then go there too.", "CLUSTER_RESUME", null);
    private readonly Option<string> _wireTensors = EnvOption.Create("--wire-tensors", "Tensors between coordinator and worker processes: blocks (gradients without their all-zero blocks of 32 values, weights as the blocks changed since the worker's last step; the same bits, fewer bytes) or dense (every value, every step).", "CLUSTER_WIRE_TENSORS", "blocks");
    private readonly Option<string> _sharedMemory = EnvOption.Create("--shared-memory", Cluster.WorkerSilo.WorkerCli.SharedMemoryHelp, "CLUSTER_SHARED_MEMORY", "auto");
    private readonly Option<string?> _plot = EnvOption.Create<string?>("--plot", "Chart of loss and accuracy per epoch: SVG, or PNG when the name ends in .png (default: next to --report, as .svg).", "CLUSTER_PLOT", null);
    private readonly Option<string> _logFormat = EnvOption.Create("--log-format", "Log lines as text or json (structured).", "CLUSTER_LOG_FORMAT", "text");
    private readonly Option<bool> _quiet = EnvOption.Create("--quiet", "Print only the final result, warnings and errors (a coordinator's log starts at warning unless --log-level says otherwise).", "CLUSTER_QUIET", false);

    /// <summary>The --threads option (threads per worker).</summary>
    public Option<int> Threads => _threads;

    /// <summary>Adds every option to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in All)
        {
            command.Options.Add(option);
        }
    }

    private IEnumerable<Option> All =>
    [
        _dataset, _dataDir, _label, _task, _testData, _layers, _activation, _outputActivation, _loss, _init, _optimizer, _lr,
        _momentum, _l1, _l2, _dropout, _batchSize, _epochs, _seed, _threads, _backend, _schedule, _validationSplit,
        _earlyStopping, _standardize, _initModel, _model, _report, _checkpointDir, _checkpointEvery, _checkpointKeep, _resume, _wireTensors, _sharedMemory, _plot, _logFormat, _quiet,
    ];

    /// <summary>
    /// Reads the options into settings, with clear errors for malformed values; <paramref name="inProcessWorkers"/> says
    /// that the workers run in this process (train without --processes), where no tensor crosses a process boundary, and
    /// <paramref name="remoteWorkers"/> that they are started elsewhere (coordinator), each with threads of its own.
    /// </summary>
    public TrainSettings Bind(ParseResult r, bool inProcessWorkers = false, bool remoteWorkers = false)
    {
        var optimizer = r.GetValue(_optimizer)!.ToLowerInvariant();
        RefuseUnused(r, optimizer);
        if (remoteWorkers && Given(r, _threads))
        {
            throw new ArgumentException("--threads sets the compute threads of train's own workers; a coordinator's workers each have their own (cluster worker --threads N), and the coordinator evaluates on every processor. Leave it out.");
        }

        if (inProcessWorkers && new Option[] { _wireTensors, _sharedMemory }.FirstOrDefault(o => Given(r, o)) is { } between)
        {
            throw new ArgumentException($"{between.Name} applies to tensors between worker processes (train --processes, or coordinator); the in-process workers of train read the weights where they lie. Add --processes, or leave it out.");
        }

        var threads = r.GetValue(_threads);
        return new TrainSettings
        {
            Dataset = r.GetValue(_dataset)!,
            DataDir = r.GetValue(_dataDir)!,
            Label = r.GetValue(_label),
            Task = ParseTask(r.GetValue(_task)!),
            TestData = r.GetValue(_testData),
            Hidden = ParseLayers(r.GetValue(_layers)!),
            Activation = Names.ParseActivation(r.GetValue(_activation)!),
            OutputActivation = r.GetValue(_outputActivation) is { } oa ? Names.ParseActivation(oa) : null,
            Loss = r.GetValue(_loss) is { } loss ? Names.ParseLoss(loss) : null,
            Init = Names.ParseInit(r.GetValue(_init)!),
            Optimizer = optimizer,
            LearningRate = r.GetValue(_lr) ?? optimizer switch { "adam" => 0.001f, "momentum" => 0.01f, _ => 0.1f },
            Momentum = r.GetValue(_momentum),
            L1 = r.GetValue(_l1),
            L2 = r.GetValue(_l2),
            Dropout = r.GetValue(_dropout),
            BatchSize = r.GetValue(_batchSize),
            Epochs = r.GetValue(_epochs),
            Seed = r.GetValue(_seed),
            Threads = threads > 0 ? threads : threads == 0 ? Environment.ProcessorCount : throw new ArgumentException("--threads must be positive."),
            Backend = r.GetValue(_backend)!,
            Schedule = LearningRateSchedule.Parse(r.GetValue(_schedule)!),
            ValidationSplit = r.GetValue(_validationSplit) is var split && split >= 0 && split < 1 ? split : throw new ArgumentException($"--validation-split must be at least 0 and less than 1, not {split.ToString(System.Globalization.CultureInfo.InvariantCulture)}."),
            EarlyStopping = r.GetValue(_earlyStopping),
            Standardize = r.GetValue(_standardize),
            InitModel = r.GetValue(_initModel),
            ModelPath = r.GetValue(_model),
            ReportPath = r.GetValue(_report),
            Quiet = r.GetValue(_quiet),
            CheckpointDirectory = r.GetValue(_checkpointDir),
            CheckpointEvery = r.GetValue(_checkpointEvery) >= 0 ? r.GetValue(_checkpointEvery) : throw new ArgumentException("--checkpoint-every must be zero or positive."),
            CheckpointKeep = r.GetValue(_checkpointKeep) >= 1 ? r.GetValue(_checkpointKeep) : throw new ArgumentException("--checkpoint-keep must be at least 1."),
            Resume = r.GetValue(_resume),
            BlockTensors = BlockTensors(r.GetValue(_wireTensors)),
            SharedMemory = Cluster.WorkerSilo.WorkerCli.ParseSharedMemory(r.GetValue(_sharedMemory)),
            PlotPath = r.GetValue(_plot),
            LogFormat = r.GetValue(_logFormat) is "text" or "json" ? r.GetValue(_logFormat)! : throw new ArgumentException("--log-format must be text or json."),
            ShapeGiven = new HashSet<string>(new Option[] { _layers, _activation, _dropout, _init }.Where(o => Given(r, o)).Select(o => o.Name)),
        };
    }

    /// <summary>
    /// Refuses an option given (or set by its environment twin) that the run would not use, so nobody trains believing it
    /// took effect: <c>--momentum</c> without <c>--optimizer momentum</c> (PyTorch's SGD takes one; here it is an
    /// optimizer of its own, and sgd ran without it), a CSV option with MNIST (a <c>--test-data</c> file was not even
    /// opened), and how often or how many checkpoints with no folder to write them to.
    /// </summary>
    private void RefuseUnused(ParseResult r, string optimizer)
    {
        if (optimizer != "momentum" && Given(r, _momentum))
        {
            throw new ArgumentException($"--momentum applies to --optimizer momentum, and the optimizer is {optimizer}, which would not use it; add --optimizer momentum, or leave --momentum out.");
        }

        if (string.Equals(r.GetValue(_dataset), "mnist", StringComparison.OrdinalIgnoreCase) && new Option[] { _label, _task, _testData, _standardize }.FirstOrDefault(o => Given(r, o)) is { } csvOnly)
        {
            throw new ArgumentException($"{csvOnly.Name} applies to a CSV --dataset; MNIST brings its own labels, test set and pixel scaling. Leave it out, or give --dataset a CSV file.");
        }

        if (r.GetValue(_checkpointDir) is null && r.GetValue(_resume) is null && new Option[] { _checkpointEvery, _checkpointKeep }.FirstOrDefault(o => Given(r, o)) is { } checkpoints)
        {
            throw new ArgumentException($"{checkpoints.Name} needs --checkpoint-dir (or --resume): without one, no checkpoint is written.");
        }
    }

    /// <summary>Whether <paramref name="option"/> was given on the command line or by its environment twin, not left to its default.</summary>
    private static bool Given(ParseResult r, Option option) =>
        r.GetResult(option) is { Implicit: false }
        || (EnvOption.Registry.GetValueOrDefault(option.Name) is { } env && !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(env)));

    private static CsvTask ParseTask(string s) => s.ToLowerInvariant() switch
    {
        "auto" => CsvTask.Auto,
        "classification" => CsvTask.Classification,
        "regression" => CsvTask.Regression,
        _ => throw new ArgumentException($"--task must be auto, classification or regression, not '{s}'."),
    };

    private static int[] ParseLayers(string s)
    {
        if (string.IsNullOrWhiteSpace(s) || s.Trim() == "none")
        {
            return [];
        }

        // Every entry counts: "128,,64" or "128," is a slip, not a request for fewer layers.
        return [.. s.Split(',', StringSplitOptions.TrimEntries).Select(p =>
            int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1
                ? n
                : throw new ArgumentException($"--layers takes positive whole numbers separated by commas (e.g. 128,64; empty or none for no hidden layer); {(p.Length == 0 ? "an empty entry" : $"'{p}'")} is not one."))];
    }

    /// <summary>Reads a <c>--wire-tensors</c> value: true for blocks, false for dense.</summary>
    internal static bool BlockTensors(string? value) => value switch
    {
        "blocks" => true,
        "dense" => false,
        _ => throw new ArgumentException($"--wire-tensors must be blocks or dense, not '{value}'."),
    };
}
