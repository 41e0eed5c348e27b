using Cluster.Compute.Backends;
using Cluster.Compute.Models;
using Cluster.Compute.Training;
using Cluster.Contracts.Grains;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Cluster.Coordinator.Runs;
using Microsoft.Extensions.Logging;

namespace Cluster.Coordinator.Grains;

/// <summary>
/// The coordinator grain. Keeps the membership (admitting and retiring workers at step boundaries), plans shards,
/// and drives the shared <see cref="Trainer"/> as its <see cref="IGradientSource"/>: each step is split by shard
/// ownership, computed by the members side by side, and their gradient sums are added in rank order. The trainer
/// divides by the total count and applies the optimizer, whose state lives only here.
/// </summary>
public sealed partial class CoordinatorGrain : ICoordinatorGrain, IGradientSource
{
    private readonly Lock _sync = new();
    private readonly ClusterOptions _options;
    private readonly PreparedRun _run;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly List<Member> _members = [];
    private readonly SortedSet<int> _workerThreads = [];
    private readonly SortedSet<string> _workerBackends = new(StringComparer.Ordinal);
    private readonly List<Member> _pending = [];
    // Steps each worker id answered with NaN or infinity while another member's answer was finite (see JoinAsync).
    private readonly Dictionary<string, int> _nonFiniteAnswers = new(StringComparer.Ordinal);
    private readonly ShardEncoder _encoder;
    private readonly int[] _owner;
    private readonly string _modelJson;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _nextGeneration;
    private string _state = "waiting";
    private int[] _remaining = [];
    private int[] _failed = [];
    private (double Gather, double Compute, double Codec, double Sum) _pendingTiming;
    private ITimer? _leaseTimer;
    private CheckpointStore? _checkpoints;
    // The step of the last checkpoint written or resumed from (0: none).
    private long _savedStep;
    private readonly SampleAccounting _accounting;
    private readonly List<EpochRecord> _history = [];
    private readonly (long Step, double Loss)[] _recent = new (long, double)[2000];
    private long _recentCount;
    private int _resumedSamplesInEpoch;
    private double _lastLoss = double.NaN;
    private double? _testAccuracy;
    private long _stepsPerEpoch;
    private double _samplesPerSecond;

    /// <summary>Steps a worker id may answer with NaN or infinity, while others answer with finite numbers, before it is refused.</summary>
    public const int MaxNonFiniteAnswers = 3;

    /// <summary>Creates the grain for a prepared run.</summary>
    public CoordinatorGrain(PreparedRun run, ClusterOptions options, ComputeBackend evalBackend, ILogger logger, TimeProvider? time = null)
    {
        if (options.MinWorkers < 1 || options.MaxWorkers < options.MinWorkers)
        {
            throw new ArgumentException($"Need 1 <= --min-workers ({options.MinWorkers}) <= --max-workers ({options.MaxWorkers}).");
        }

        _run = run;
        _options = options;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _encoder = new ShardEncoder(run.Train, run.Model.OutputSize, options.ShardChunkSamples);
        _owner = new int[run.Train.Count];
        _modelJson = ModelJson.Export(run.Model, includeWeights: false);
        RunId = $"run-{_time.GetUtcNow():yyyyMMdd-HHmmss}-{Environment.ProcessId}";
        Trainer = new Trainer(run.Model, run.Options, this, run.Train, run.Validation, run.Test, evalBackend);
        _stepsPerEpoch = Trainer.StepsPerEpoch;
        _remaining = new int[run.Options.BatchSize];
        _accounting = new SampleAccounting(run.Train.Count);
        _failed = new int[run.Options.BatchSize];
        var checkpointDirectory = options.CheckpointDirectory ?? options.ResumeDirectory;
        _checkpoints = checkpointDirectory is null ? null : new CheckpointStore(checkpointDirectory, options.CheckpointKeep);
    }

    /// <summary>The run's id.</summary>
    public string RunId { get; }

    /// <summary>The shared training loop.</summary>
    public Trainer Trainer { get; }

    /// <summary>Where step time goes.</summary>
    public StepTimings Timings { get; } = new();

    /// <summary>Membership and fault events.</summary>
    public ClusterCounters Counters { get; } = new();

    /// <summary>Finished epochs (a copy safe to read from any thread).</summary>
    public IReadOnlyList<EpochRecord> History
    {
        get
        {
            lock (_sync)
            {
                return [.. _history];
            }
        }
    }

    /// <summary>The loss of the most recent steps, oldest first (at most 2000).</summary>
    public IReadOnlyList<(long Step, double Loss)> RecentLoss
    {
        get
        {
            lock (_sync)
            {
                var n = (int)Math.Min(_recentCount, _recent.Length);
                var list = new List<(long, double)>(n);
                for (var i = _recentCount - n; i < _recentCount; i++)
                {
                    list.Add(_recent[i % _recent.Length]);
                }

                return list;
            }
        }
    }

    /// <summary>Configured minimum of workers.</summary>
    public int MinWorkers => _options.MinWorkers;

    /// <summary>Per-epoch proof that every sample was used exactly once.</summary>
    public IReadOnlyList<EpochAccounting> Accounting => _accounting.Epochs;

    /// <summary>The checkpoint the run resumed from, if any.</summary>
    public string? ResumedFrom { get; private set; }

    /// <summary>
    /// The folder whose newest checkpoint holds the step at which a stopped run ended; null until the run is stopped,
    /// and when it keeps no checkpoints or the last could not be written.
    /// </summary>
    public string? StopCheckpointDirectory { get; private set; }

    /// <summary>Most members active at once.</summary>
    public int PeakWorkers { get; private set; }

    /// <summary>
    /// The compute threads each admitted worker said it has (its hello), over the whole run, in rising order: one value
    /// when every worker had the same. A coordinator's own --threads says nothing of remote workers'.
    /// </summary>
    public IReadOnlyList<int> WorkerThreads
    {
        get
        {
            lock (_sync)
            {
                return [.. _workerThreads];
            }
        }
    }

    /// <summary>The compute backends the admitted workers said they use (their hellos), over the whole run, by name.</summary>
    public IReadOnlyList<string> WorkerBackends
    {
        get
        {
            lock (_sync)
            {
                return [.. _workerBackends];
            }
        }
    }

    /// <summary>Members active now.</summary>
    public int ActiveWorkers
    {
        get
        {
            lock (_sync)
            {
                return _members.Count;
            }
        }
    }


    /// <inheritdoc/>
    public Task JoinAsync(Hello hello, IWorkerGrain worker, CancellationToken cancellationToken)
    {
        var id = hello.WorkerId;
        if (WorkerIds.Problem(id) is { } problem)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"The hello's worker_id is refused: {problem}");
        }

        if (hello.ProtocolVersion != 1)
        {
            throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, $"Protocol version {hello.ProtocolVersion} is not spoken here (1 is).");
        }

        lock (_sync)
        {
            if (_nonFiniteAnswers.GetValueOrDefault(id) >= MaxNonFiniteAnswers)
            {
                // A worker that keeps computing NaN where the others do not is broken (its memory, its CPU, its local data):
                // taking it back would cost a re-plan and a shard each time, for ever. Refused at its hello, it exits with
                // this message instead of rejoining.
                throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, $"Worker '{id}' answered {MaxNonFiniteAnswers} steps of this run with a gradient or loss that is NaN or infinite while the other workers' were finite, so it is not admitted again in this run. Check the machine it runs on and its --data-dir.");
            }

            if (_members.Concat(_pending).Any(m => m.Id == id && m.IsLive))
            {
                throw new GrpcStatusException(GrpcStatusCode.AlreadyExists, $"A worker with id '{id}' is already a member.");
            }

            _pending.Add(new Member(id, worker, hello, _time.GetTimestamp()));
        }

        Counters.Join();
        LogJoined(_logger, id, hello.Address);
        Signal();
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task LeaveAsync(string workerId, string reason, bool graceful)
    {
        List<Member> leaving;
        lock (_sync)
        {
            leaving = [.. _members.Concat(_pending).Where(m => m.Id == workerId && m.IsLive)];
            foreach (var m in leaving)
            {
                m.State = graceful ? MemberState.Left : MemberState.Failed;
                m.FailureReason = reason;
            }
        }

        // Whatever it was asked and has not answered is given to the others (outside the lock: cancellation runs
        // continuations that take it again).
        leaving.ForEach(CancelCall);
        var found = leaving.Count > 0;
        if (!found)
        {
            return Task.CompletedTask;
        }

        if (graceful)
        {
            Counters.Leave();
        }
        else
        {
            Counters.Failure();
        }

        LogLeft(_logger, workerId, reason, graceful);
        Signal();
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task HeartbeatAsync(string workerId)
    {
        lock (_sync)
        {
            foreach (var m in _members.Concat(_pending).Where(m => m.Id == workerId))
            {
                m.LastSeenTicks = _time.GetTimestamp();
            }
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task<StatusReply> GetStatusAsync()
    {
        lock (_sync)
        {
            var state = Trainer.State;
            var reply = new StatusReply
            {
                State = _state,
                Epoch = Math.Min(state.Epoch + 1, _run.Options.Epochs),
                Epochs = _run.Options.Epochs,
                Step = state.GlobalStep,
                Workers = _members.Count,
                LastLoss = _lastLoss,
                HasTestAccuracy = _testAccuracy.HasValue,
                TestAccuracy = _testAccuracy ?? 0,
                RunId = RunId,
                StepsPerEpoch = _stepsPerEpoch,
                SamplesPerSecond = _samplesPerSecond,
            };
            foreach (var m in _members.Concat(_pending))
            {
                reply.Members.Add(new MemberStatus
                {
                    WorkerId = m.Id,
                    Rank = m.Rank,
                    State = m.State.ToString().ToLowerInvariant(),
                    SamplesPerSecond = m.LastSamplesPerSecond,
                    Address = m.Hello.Address,
                    Samples = m.Samples,
                });
            }

            return Task.FromResult(reply);
        }
    }

    /// <summary>Waits for enough workers, trains, evaluates, and stops the workers; returns the history.</summary>
    public async Task<IReadOnlyList<EpochRecord>> RunAsync(CancellationToken cancellationToken)
    {
        var observer = new Observer(this);
        Trainer.Observe(observer);
        if (_options.ResumeDirectory is { } resume)
        {
            Resume(resume);
        }

        var period = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(50).Ticks, _options.Lease.Ticks / 4));
        _leaseTimer = _time.CreateTimer(_ => CheckLeases(), null, period, period);
        try
        {
            await ApplyMembershipAsync(cancellationToken).ConfigureAwait(false);
            SetState("training");
            var history = await Trainer.RunAsync(cancellationToken).ConfigureAwait(false);
            if (_run.Test is not null)
            {
                _testAccuracy = Trainer.Evaluate(_run.Test).Accuracy;
            }

            SetState("finished");
            await StopAllAsync(new Stop { Completed = true, Reason = "training finished" }).ConfigureAwait(false);
            return history;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Cancelled between steps or within one, whose gradients are then dropped: the model stands at a step
            // boundary, and a checkpoint of it lets --resume go on without losing a step.
            SetState("stopped");
            SaveCheckpointOnStop();
            if (!_options.KeepWorkersOnCancel)
            {
                await StopAllAsync(new Stop { Completed = false, Reason = "coordinator stopped" }).ConfigureAwait(false);
            }

            throw;
        }
        catch (Exception ex)
        {
            SetState("failed");
            await StopAllAsync(new Stop { Completed = false, Reason = ex is OperationCanceledException ? "coordinator stopped" : "coordinator failed: " + ex.Message }).ConfigureAwait(false);
            throw;
        }
        finally
        {
            _leaseTimer?.Dispose();
        }
    }

    private void Resume(string directory)
    {
        var store = new CheckpointStore(directory, _options.CheckpointKeep);
        var checkpoint = store.LoadLatest(out var skipped);
        foreach (var problem in skipped)
        {
            LogCorruptCheckpoint(_logger, problem);
        }

        if (checkpoint is null)
        {
            LogNoCheckpoint(_logger, directory);
            return;
        }

        Trainer.Restore(checkpoint);
        _savedStep = checkpoint.Header.GlobalStep;
        _resumedSamplesInEpoch = (int)checkpoint.Header.EpochCount;
        lock (_sync)
        {
            _history.AddRange(checkpoint.Header.History);
        }
        ResumedFrom = $"step {checkpoint.Header.GlobalStep} (epoch {checkpoint.Header.Epoch + 1}, step {checkpoint.Header.StepInEpoch} of it)";
        SkippedCheckpoints = skipped;
        LogResumed(_logger, checkpoint.Header.GlobalStep, directory);
    }

    /// <summary>Corrupt checkpoints passed over when resuming.</summary>
    public IReadOnlyList<string> SkippedCheckpoints { get; private set; } = [];

    private void SaveCheckpoint()
    {
        if (_checkpoints is null)
        {
            return;
        }

        var path = _checkpoints.Save(Trainer.Capture());
        _savedStep = Trainer.State.GlobalStep;
        LogCheckpoint(_logger, path);
    }

    /// <summary>A checkpoint of a stopping run, unless the newest one (or the one it resumed from) already holds its step.</summary>
    private void SaveCheckpointOnStop()
    {
        if (_checkpoints is null || Trainer.State.GlobalStep == 0)
        {
            // Nothing trained yet: nothing to keep.
            return;
        }

        try
        {
            if (Trainer.State.GlobalStep != _savedStep)
            {
                SaveCheckpoint();
            }

            LogStoppedAt(_logger, Trainer.State.GlobalStep, _checkpoints.Directory);
            StopCheckpointDirectory = _checkpoints.Directory;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogCheckpointFailed(_logger, ex.Message);
        }
    }

    private void SetState(string state)
    {
        lock (_sync)
        {
            _state = state;
        }
    }
}
