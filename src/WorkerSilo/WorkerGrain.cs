using System.Diagnostics;
using Cluster.Compute;
using Cluster.Compute.Backends;
using Cluster.Compute.Data;
using Cluster.Compute.Models;
using Cluster.Contracts.Grains;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;

namespace Cluster.WorkerSilo;

/// <summary>
/// The worker grain: holds its shard of the training set and a copy of the model, and computes the sum of
/// per-sample gradients of each step's samples at the step's weights. One call at a time.
/// </summary>
public sealed class WorkerGrain : IWorkerGrain, IDisposable
{
    private readonly ComputeBackend _backend;
    private readonly string? _dataDir;
    private readonly Dataset? _trainingSet;
    private readonly SemaphoreSlim _turn = new(1, 1);
    private Sequential? _model;
    private GradientEngine? _engine;
    private Batch? _batch;
    private FloatBuffer _gradient = new(0);
    private float[] _weights = [];
    private int[] _local = [];
    private ulong _seed;
    private ShardStore? _shard;
    private ShardStore? _incoming;
    private ComputeLane? _lane;

    /// <summary>
    /// Creates a worker computing with <paramref name="threads"/> threads on <paramref name="backend"/>; <paramref name="dataDir"/>
    /// lets it load MNIST itself. <paramref name="spinBetweenSteps"/>: its steps' thread spins briefly between steps instead
    /// of sleeping, for an in-process worker whose threads have cores to themselves. <paramref name="computeSpins"/>:
    /// whether its compute threads spin between products (by default, when they fit the processors; false when other
    /// workers' threads share them). <paramref name="trainingSet"/>: for a worker in its coordinator's process, the
    /// coordinator's own training set, from which it reads its shard's rows in place (see
    /// <see cref="IWorkerGrain.TrainingSetInPlace"/>).
    /// </summary>
    public WorkerGrain(string workerId, string backend = "auto", int threads = 1, string? dataDir = null, bool spinBetweenSteps = false, bool? computeSpins = null, Dataset? trainingSet = null)
    {
        if (string.IsNullOrWhiteSpace(workerId))
        {
            throw new ArgumentException("A worker needs a non-empty id.", nameof(workerId));
        }

        WorkerId = workerId;
        _backend = BackendFactory.Create(backend, threads, computeSpins);
        _dataDir = dataDir;
        _trainingSet = trainingSet;
        SpinsBetweenSteps = spinBetweenSteps;
    }

    /// <inheritdoc/>
    public string WorkerId { get; }

    /// <summary>Compute threads.</summary>
    public int Threads => _backend.Threads;

    /// <summary>Backend name.</summary>
    public string BackendName => _backend.Name;

    /// <summary>True when started with a local data folder.</summary>
    public bool HasLocalData => _dataDir is not null;

    /// <summary>The last admission received (null before any).</summary>
    public Admission? Admission { get; private set; }

    /// <summary>Generation of the shard now held (-1 before any).</summary>
    public long ShardGeneration => _shard?.Generation ?? -1;

    /// <summary>Samples in the shard now held.</summary>
    public int ShardSize => _shard?.Count ?? 0;

    /// <inheritdoc/>
    public object? TrainingSetInPlace => _trainingSet;

    /// <summary>Whether the current shard is read from <see cref="TrainingSetInPlace"/> instead of a copy.</summary>
    public bool ShardInPlace => _shard?.InPlace ?? false;

    /// <summary>
    /// The weights of the last step computed (the worker's model copy), except where a silo computes on its
    /// shared-memory file's weights in place (<see cref="ComputeInPlace"/>): then the file holds the copy.
    /// </summary>
    public ReadOnlySpan<float> Weights => _weights;

    /// <summary>The model copy's buffer, which a silo host may decode a step's weights into directly.</summary>
    internal float[] WeightsBuffer => _weights;

    /// <summary>The last step's gradient sum as the wire's float32 bytes (what a silo host sends).</summary>
    internal byte[] GradientBytes => _gradient.Bytes;

    /// <summary>The last step's gradient sum.</summary>
    internal ReadOnlySpan<float> Gradient => _gradient.GetSpan();

    /// <summary>Weights version (step) of <see cref="Weights"/>; -1 before any step.</summary>
    public long WeightsVersion { get; private set; } = -1;

    /// <summary>Raised when the coordinator stops the run.</summary>
    public event Action<Stop>? Stopped;

    /// <inheritdoc/>
    public async Task AdmitAsync(Admission admission, CancellationToken cancellationToken)
    {
        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Admission = admission;
            if (!admission.Admitted)
            {
                return;
            }

            if (admission.MaxBatch < 1)
            {
                throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "Admission without a positive max_batch.");
            }

            var model = ModelJson.Import(admission.ModelJson, requireWeights: false);
            if (_model is null || !_model.SameArchitecture(model) || _engine!.Capacity < admission.MaxBatch)
            {
                _model = model;
                _engine = new GradientEngine(model, _backend, admission.MaxBatch);
                _batch = new Batch(admission.MaxBatch, model.InputSize, model.OutputSize);
                _gradient = new FloatBuffer(model.ParameterCount);
                _weights = new float[model.ParameterCount];
                _local = new int[admission.MaxBatch];
            }

            _seed = admission.Seed;
        }
        finally
        {
            _turn.Release();
        }
    }

    /// <inheritdoc/>
    public async Task LoadShardAsync(ShardData chunk, CancellationToken cancellationToken)
    {
        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var model = _model ?? throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, "A shard arrived before the admission.");
            if (_incoming is null || _incoming.Generation != chunk.Generation)
            {
                _incoming = new ShardStore(chunk, model);
            }

            if (chunk.LoadLocally && _trainingSet is not null)
            {
                _incoming.UseInPlace(_trainingSet);
            }
            else if (chunk.LoadLocally)
            {
                var dir = _dataDir ?? throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, "The coordinator asked this worker to load its shard locally, but it has no --data-dir.");
                await Task.Run(() => _incoming.LoadLocal(dir, Admission?.Dataset ?? ""), cancellationToken).ConfigureAwait(false);
            }
            else
            {
                _incoming.Add(chunk);
            }

            if (chunk.Last)
            {
                _incoming.Complete();
                _shard = _incoming;
                _incoming = null;
            }
        }
        finally
        {
            _turn.Release();
        }
    }

    /// <inheritdoc/>
    public bool InProcess => true;

    /// <inheritdoc/>
    public bool SpinsBetweenSteps { get; }

    /// <inheritdoc/>
    public Task<GradientReply> ComputeAsync(StepCommand command, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<GradientReply>(cancellationToken);
        }

        // The turn is free unless a shard is loading: then wait for it off this thread.
        return _turn.Wait(0) ? ComputeHoldingTurn(command) : ComputeAfterTurnAsync(command, cancellationToken);
    }

    private async Task<GradientReply> ComputeAfterTurnAsync(StepCommand command, CancellationToken cancellationToken)
    {
        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        return await ComputeHoldingTurn(command).ConfigureAwait(false);
    }

    /// <summary>Computes a step while holding the turn, which is released when the step is done.</summary>
    private Task<GradientReply> ComputeHoldingTurn(StepCommand command)
    {
        // The last member the caller starts computes on the caller's thread, which would only wait otherwise; the others
        // compute side by side: on a lane of their own that spins between steps where they have cores to themselves,
        // otherwise on the thread pool, whose thread then runs the caller's continuation too (one wake-up a step).
        if (command.OnCallingThread)
        {
            try
            {
                return Task.FromResult(Compute(command));
            }
            catch (Exception ex)
            {
                return Task.FromException<GradientReply>(ex);
            }
            finally
            {
                _turn.Release();
            }
        }

        if (!SpinsBetweenSteps)
        {
            return Task.Run(() =>
            {
                try
                {
                    return Compute(command);
                }
                finally
                {
                    _turn.Release();
                }
            });
        }

        try
        {
            _lane ??= new ComputeLane($"{WorkerId} compute");
            return _lane.Run(() => Compute(command), () => _turn.Release());
        }
        catch (Exception ex)
        {
            _turn.Release();
            return Task.FromException<GradientReply>(ex);
        }
    }

    /// <summary>The computation of a step, on the calling thread.</summary>
    public GradientReply Compute(StepCommand command) => Compute(command, default, default, inPlace: false);

    /// <summary>
    /// The computation of a step on the calling thread, reading the weights from <paramref name="weights"/> and writing the
    /// gradient sum into <paramref name="gradient"/> in place (a silo's shared-memory file, which is then this worker's
    /// model copy) instead of the grain's own buffers; the command's own weights are not read.
    /// </summary>
    internal GradientReply ComputeInPlace(StepCommand command, ReadOnlySpan<float> weights, Span<float> gradient) => Compute(command, weights, gradient, inPlace: true);

    private GradientReply Compute(StepCommand command, ReadOnlySpan<float> sharedWeights, Span<float> sharedGradient, bool inPlace)
    {
        var engine = _engine ?? throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, "A step arrived before the admission.");
        var shard = _shard ?? throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, "A step arrived before the shard.");
        if (command.ShardGeneration != shard.Generation)
        {
            throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, $"The step is for shard generation {command.ShardGeneration}, this worker holds {shard.Generation}.");
        }

        var weightCount = inPlace ? sharedWeights.Length : command.Weights.Length;
        if (weightCount != _weights.Length || (inPlace && sharedGradient.Length != _weights.Length))
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"The step carries {weightCount} weights; the model has {_weights.Length}.");
        }

        var indices = command.Indices.Span;
        if (indices.Length > engine.Capacity)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"The step gives {indices.Length} samples; the admission allowed {engine.Capacity}.");
        }

        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < indices.Length; i++)
        {
            _local[i] = shard.LocalRow(indices[i]);
        }

        // Keep the model copy at the step's version; in-process the weights are the coordinator's own buffer.
        if (!inPlace && !command.Weights.Span.Overlaps(_weights))
        {
            command.Weights.Span.CopyTo(_weights);
        }

        WeightsVersion = command.Step;
        _batch!.Gather(shard.Data, _local.AsSpan(0, indices.Length), indices);
        var stats = inPlace
            ? engine.ComputeGradient(_batch, sharedWeights, sharedGradient, new DropoutKey(_seed, command.Epoch))
            : engine.ComputeGradient(_batch, _weights, _gradient.GetSpan(), new DropoutKey(_seed, command.Epoch));
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        return new GradientReply(command.Step, inPlace ? ReadOnlyMemory<float>.Empty : _gradient.Memory, (int)stats.Count, stats.LossSum, stats.Correct, stats.SquaredErrorSum, seconds, 0);
    }

    /// <inheritdoc/>
    public Task StopAsync(Stop stop, CancellationToken cancellationToken)
    {
        Stopped?.Invoke(stop);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _lane?.Dispose();
        _backend.Dispose();
        _turn.Dispose();
    }
}
