using System.Diagnostics;
using Cluster.Compute.Backends;
using Cluster.Compute.Data;
using Cluster.Compute.Kernels;
using Cluster.Compute.Optim;
using Cluster.Compute.Randomness;

namespace Cluster.Compute.Training;

/// <summary>
/// The training loop shared by every way of running: per epoch a seeded shuffle, then per step the gradient sum from
/// an <see cref="IGradientSource"/>, division by the sample count, L1/L2, the optimizer; evaluation after each epoch,
/// learning-rate schedule and early stopping.
/// </summary>
public sealed class Trainer
{
    private const int EvaluationBatch = 1000;
    private readonly Sequential _model;
    private readonly TrainingOptions _options;
    private readonly IGradientSource _source;
    private readonly Dataset _train;
    private readonly Dataset? _validation;
    private readonly Dataset? _test;
    private readonly GradientEngine _evaluator;
    private readonly Batch _evalBatch;
    private readonly float[] _gradient;
    private readonly int[] _order;
    private readonly List<ITrainingObserver> _observers = [];

    /// <summary>Creates a trainer; <paramref name="evalBackend"/> runs validation and test passes.</summary>
    public Trainer(Sequential model, TrainingOptions options, IGradientSource source, Dataset train, Dataset? validation, Dataset? test, ComputeBackend evalBackend)
    {
        options.Validate(validation is not null);
        var width = train.OutputWidth(model.Loss);
        if (model.OutputSize != width)
        {
            throw new ArgumentException($"The model has {model.OutputSize} outputs but the data needs {width} ({(train.IsClassification ? $"{train.ClassCount} classes" : $"{train.TargetCount} targets")}).");
        }

        if (model.InputSize != train.FeatureCount)
        {
            throw new ArgumentException($"The model takes {model.InputSize} inputs but the data has {train.FeatureCount} features.");
        }

        _model = model;
        _options = options;
        _source = source;
        _train = train;
        _validation = validation;
        _test = test;
        _evaluator = new GradientEngine(model, evalBackend, EvaluationBatch);
        _evalBatch = new Batch(EvaluationBatch, model.InputSize, model.OutputSize);
        _gradient = new float[model.ParameterCount];
        _order = new int[train.Count];
        Optimizer = Optim.Optimizer.Create(options.Optimizer, model.ParameterCount, options.Momentum);
    }

    /// <summary>Position, history and early-stopping state; restore it to resume.</summary>
    public TrainingState State { get; private set; } = new();

    /// <summary>The optimizer and its state.</summary>
    public Optimizer Optimizer { get; }

    /// <summary>Steps in one epoch.</summary>
    public int StepsPerEpoch => (_train.Count + _options.BatchSize - 1) / _options.BatchSize;

    /// <summary>Adds an observer.</summary>
    public void Observe(ITrainingObserver observer) => _observers.Add(observer);

    /// <summary>Trains until the epochs are done or early stopping ends the run; returns the history.</summary>
    public async Task<IReadOnlyList<EpochRecord>> RunAsync(CancellationToken cancellationToken = default)
    {
        var state = State;
        var parameters = _model.Parameters;
        while (state.Epoch < _options.Epochs && !state.StoppedEarly)
        {
            var epoch = state.Epoch;
            var lr = _options.Schedule.RateAt(_options.LearningRate, epoch);
            EpochOrder(epoch);
            if (state.StepInEpoch == 0)
            {
                foreach (var o in _observers)
                {
                    o.OnEpochStart(epoch, StepsPerEpoch);
                }
            }

            while (state.StepInEpoch < StepsPerEpoch)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var started = Stopwatch.GetTimestamp();
                var start = state.StepInEpoch * _options.BatchSize;
                var count = Math.Min(_options.BatchSize, _train.Count - start);
                var work = new StepWork(epoch, state.GlobalStep, _order.AsMemory(start, count), parameters, _gradient);
                var stats = await _source.ComputeAsync(work, cancellationToken).ConfigureAwait(false);
                if (stats.Count != count)
                {
                    throw new InvalidOperationException($"Step {state.GlobalStep} covered {stats.Count} samples instead of {count}.");
                }

                var norm = ApplyStep(lr, count, epoch, state.StepInEpoch);
                var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                state.StepInEpoch++;
                state.GlobalStep++;
                state.EpochStats += stats;
                state.EpochSeconds += seconds;
                var report = new StepReport(epoch, state.StepInEpoch, StepsPerEpoch, state.GlobalStep, stats, lr, norm, seconds);
                foreach (var o in _observers)
                {
                    o.OnStep(report);
                }
            }

            FinishEpoch(epoch, lr);
        }

        if (state.StoppedEarly && state.BestParameters is not null)
        {
            state.BestParameters.CopyTo(parameters, 0);
        }

        return state.History;
    }

    /// <summary>The run's fingerprint, which a checkpoint must carry to resume it.</summary>
    public string Fingerprint => Checkpoint.FingerprintOf(Run);

    private Dictionary<string, string> Run => Checkpoint.RunOf(Models.ModelJson.Export(_model, includeWeights: false), _options, _train.Count, _train.FeatureCount);

    /// <summary>Captures the complete state at the current step boundary.</summary>
    public Checkpoint Capture()
    {
        var s = State;
        var run = Run;
        return new Checkpoint
        {
            Fingerprint = Checkpoint.FingerprintOf(run),
            Run = run,
            Header = new CheckpointHeader
            {
                Epoch = s.Epoch,
                StepInEpoch = s.StepInEpoch,
                GlobalStep = s.GlobalStep,
                EpochLossSum = s.EpochStats.LossSum,
                EpochCorrect = s.EpochStats.Correct,
                EpochSquaredError = s.EpochStats.SquaredErrorSum,
                EpochCount = s.EpochStats.Count,
                EpochSeconds = s.EpochSeconds,
                OptimizerSteps = Optimizer.Steps,
                BestValidationLoss = s.BestValidationLoss,
                BestEpoch = s.BestEpoch,
                EpochsWithoutImprovement = s.EpochsWithoutImprovement,
                StoppedEarly = s.StoppedEarly,
                History = [.. s.History],
                Seed = _options.Seed,
            },
            Parameters = (float[])_model.Parameters.Clone(),
            OptimizerState = [.. Optimizer.StateBuffers.Select(b => (float[])b.Clone())],
            BestParameters = s.BestParameters is null ? null : (float[])s.BestParameters.Clone(),
        };
    }

    /// <summary>Continues from a checkpoint of the same run (same architecture, options and data size).</summary>
    public void Restore(Checkpoint checkpoint)
    {
        var run = Run;
        if (checkpoint.Fingerprint != Checkpoint.FingerprintOf(run))
        {
            // Says what differs where the checkpoint keeps its fields (those written before did not).
            var differences = checkpoint.Run is not { } then ? [] : run.Where(f => then.GetValueOrDefault(f.Key) != f.Value)
                .Select(f => f.Key == Checkpoint.Architecture ? f.Key : $"{f.Key} ({then.GetValueOrDefault(f.Key) ?? "not recorded"} in the checkpoint, {f.Value} now)").ToList();
            var what = differences.Count > 0 ? string.Join("; ", differences) : "architecture, training options or data differ";
            throw new InvalidDataException($"The checkpoint belongs to a different run ({what}); use the checkpoint's options, or start a new run without --resume (checkpointing to another folder).");
        }

        var buffers = Optimizer.StateBuffers;
        if (checkpoint.Parameters.Length != _model.ParameterCount || checkpoint.OptimizerState.Count != buffers.Count)
        {
            throw new InvalidDataException("The checkpoint's buffers do not fit this model and optimizer.");
        }

        checkpoint.Parameters.CopyTo(_model.Parameters, 0);
        for (var i = 0; i < buffers.Count; i++)
        {
            checkpoint.OptimizerState[i].CopyTo(buffers[i], 0);
        }

        Optimizer.RestoreSteps(checkpoint.Header.OptimizerSteps);
        var h = checkpoint.Header;
        var state = new TrainingState
        {
            Epoch = h.Epoch,
            StepInEpoch = h.StepInEpoch,
            GlobalStep = h.GlobalStep,
            EpochStats = new BatchStats(h.EpochLossSum, h.EpochCorrect, h.EpochSquaredError, h.EpochCount),
            EpochSeconds = h.EpochSeconds,
            BestValidationLoss = h.BestValidationLoss,
            BestEpoch = h.BestEpoch,
            BestParameters = checkpoint.BestParameters,
            EpochsWithoutImprovement = h.EpochsWithoutImprovement,
            StoppedEarly = h.StoppedEarly,
        };
        state.History.AddRange(h.History);
        State = state;
    }

    /// <summary>Loss and accuracy of the current parameters on <paramref name="data"/>.</summary>
    public BatchStats Evaluate(Dataset data) => _evaluator.Evaluate(data, _model.Parameters, _evalBatch);

    private double ApplyStep(float lr, int count, int epoch, int step)
    {
        var gradient = _gradient.AsSpan();
        var norm = Math.Sqrt(ElementwiseKernels.DivideAndSumSquares(gradient, count));
        if (!double.IsFinite(norm))
        {
            throw new TrainingDivergedException($"The gradient at epoch {epoch + 1}, step {step + 1} is not finite (NaN or infinity); the step was not applied. Lower the learning rate or check the data.");
        }

        Regularization.Apply(_model, _model.Parameters, gradient, _options.L1, _options.L2);
        Optimizer.Step(_model.Parameters, gradient, lr);
        return norm;
    }

    private void EpochOrder(int epoch)
    {
        if (_options.Shuffle)
        {
            CounterRandom.EpochPermutation(_options.Seed, epoch, _order);
        }
        else
        {
            for (var i = 0; i < _order.Length; i++)
            {
                _order[i] = i;
            }
        }
    }

    private void FinishEpoch(int epoch, float lr)
    {
        var state = State;
        var stats = state.EpochStats;
        var classification = _train.IsClassification;
        var validation = _validation is null ? (BatchStats?)null : Evaluate(_validation);
        var test = _test is null ? (BatchStats?)null : Evaluate(_test);
        var record = new EpochRecord
        {
            Epoch = epoch + 1,
            TrainLoss = stats.MeanLoss,
            TrainAccuracy = classification ? stats.Accuracy : null,
            TrainRmse = classification ? null : stats.Rmse(_model.OutputSize),
            ValidationLoss = validation?.MeanLoss,
            ValidationAccuracy = classification ? validation?.Accuracy : null,
            TestLoss = test?.MeanLoss,
            TestAccuracy = classification ? test?.Accuracy : null,
            TestRmse = classification ? null : test?.Rmse(_model.OutputSize),
            Seconds = state.EpochSeconds,
            SamplesPerSecond = state.EpochSeconds > 0 ? stats.Count / state.EpochSeconds : 0,
            LearningRate = lr,
            Steps = state.StepInEpoch,
            Samples = stats.Count,
        };
        state.History.Add(record);
        state.Epoch = epoch + 1;
        state.StepInEpoch = 0;
        state.EpochStats = default;
        state.EpochSeconds = 0;
        if (_options.EarlyStoppingPatience > 0 && validation is { } v)
        {
            if (v.MeanLoss < state.BestValidationLoss)
            {
                state.BestValidationLoss = v.MeanLoss;
                state.BestEpoch = epoch + 1;
                state.BestParameters = (float[])_model.Parameters.Clone();
                state.EpochsWithoutImprovement = 0;
            }
            else if (++state.EpochsWithoutImprovement >= _options.EarlyStoppingPatience)
            {
                state.StoppedEarly = true;
            }
        }

        foreach (var o in _observers)
        {
            o.OnEpochEnd(record);
        }
    }
}
