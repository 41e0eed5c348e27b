using System.Diagnostics;
using System.Numerics.Tensors;
using Cluster.Compute;
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
    private readonly List<Member> _pending = [];
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
    private readonly SampleAccounting _accounting;
    private readonly List<EpochRecord> _history = [];
    private readonly (long Step, double Loss)[] _recent = new (long, double)[2000];
    private long _recentCount;
    private int _resumedSamplesInEpoch;
    private double _lastLoss = double.NaN;
    private double? _testAccuracy;
    private long _stepsPerEpoch;
    private double _samplesPerSecond;

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

    /// <summary>Checkpoints written by this process.</summary>
    public int CheckpointsWritten { get; private set; }

    /// <summary>Most members active at once.</summary>
    public int PeakWorkers { get; private set; }

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

    /// <summary>Raised when membership changes (after a join, leave or failure).</summary>
    public event Action? MembershipChanged;

    /// <inheritdoc/>
    public Task JoinAsync(Hello hello, IWorkerGrain worker, CancellationToken cancellationToken)
    {
        var id = hello.WorkerId;
        if (string.IsNullOrWhiteSpace(id) || id.Length > 253)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "The hello needs a worker_id of 1 to 253 characters.");
        }

        if (hello.ProtocolVersion != 1)
        {
            throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, $"Protocol version {hello.ProtocolVersion} is not spoken here (1 is).");
        }

        lock (_sync)
        {
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
        CheckpointsWritten++;
        LogCheckpoint(_logger, path);
    }

    private void CheckLeases()
    {
        List<Member> expired = [];
        lock (_sync)
        {
            var now = _time.GetTimestamp();
            foreach (var m in _members.Concat(_pending))
            {
                if (m.IsLive && m.Worker is IHeartbeatingWorker && _time.GetElapsedTime(m.LastSeenTicks, now) > _options.Lease)
                {
                    expired.Add(m);
                }
            }
        }

        foreach (var m in expired)
        {
            Fail(m, $"no heartbeat for {_options.Lease.TotalSeconds:0.#} s (lease expired)");
        }
    }

    /// <inheritdoc/>
    async ValueTask<BatchStats> IGradientSource.ComputeAsync(StepWork work, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        if (_remaining.Length < work.Indices.Length)
        {
            _remaining = new int[work.Indices.Length];
        }

        work.Indices.Span.CopyTo(_remaining);
        var remaining = work.Indices.Length;
        work.GradientSum.Span.Clear();
        var stats = default(BatchStats);
        double compute = 0, codec = 0, sumSeconds = 0;
        var parts = 0;
        while (remaining > 0)
        {
            await ApplyMembershipAsync(cancellationToken).ConfigureAwait(false);
            Member[] members;
            lock (_sync)
            {
                members = [.. _members];
            }

            foreach (var m in members)
            {
                m.IndexCount = 0;
            }

            for (var i = 0; i < remaining; i++)
            {
                var m = members[_owner[_remaining[i]]];
                m.Indices[m.IndexCount++] = _remaining[i];
            }

            var calls = new Task<GradientReply>?[members.Length];
            for (var r = 0; r < members.Length; r++)
            {
                var m = members[r];
                if (m.IndexCount == 0)
                {
                    continue;
                }

                var call = new CancellationTokenSource(_options.StepTimeout, _time);
                var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, call.Token);
                lock (_sync)
                {
                    m.StepCall = linked;
                    if (!m.IsLive)
                    {
                        linked.Cancel();
                    }
                }

                var command = new StepCommand(work.Step, work.Epoch, m.Generation, work.Parameters, m.Indices.AsMemory(0, m.IndexCount));
                calls[r] = RunCallAsync(m.Worker.ComputeAsync(command, linked.Token), call, linked);
            }

            // Members answer in any order; their sums are added in rank order so a topology always gives the same bits.
            var failedIndices = 0;
            for (var r = 0; r < members.Length; r++)
            {
                if (calls[r] is not { } call)
                {
                    continue;
                }

                var m = members[r];
                GradientReply? reply = null;
                string? problem;
                try
                {
                    reply = await call.ConfigureAwait(false);
                    problem = Validate(reply, work, m);
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    problem = ex is OperationCanceledException
                        ? m.FailureReason ?? $"no answer within the step timeout of {_options.StepTimeout.TotalSeconds:0} s"
                        : ex.Message;
                }

                if (problem is not null || reply is null)
                {
                    Fail(m, problem ?? "no reply");
                    // Its slice goes back into the pool and is recomputed by the survivors in the next round.
                    m.Indices.AsSpan(0, m.IndexCount).CopyTo(_failed.AsSpan(failedIndices));
                    failedIndices += m.IndexCount;
                    continue;
                }

                var summing = Stopwatch.GetTimestamp();
                TensorPrimitives.Add(work.GradientSum.Span, reply.GradientSum.Span, work.GradientSum.Span);
                _accounting.Mark(m.Indices.AsSpan(0, m.IndexCount));
                sumSeconds += Stopwatch.GetElapsedTime(summing).TotalSeconds;
                stats += new BatchStats(reply.LossSum, reply.Correct, reply.SquaredErrorSum, reply.Count);
                m.Samples += reply.Count;
                m.ComputeSeconds += reply.ComputeSeconds;
                m.LastSamplesPerSecond = reply.ComputeSeconds > 0 ? reply.Count / reply.ComputeSeconds : 0;
                compute += reply.ComputeSeconds;
                codec += reply.CodecSeconds;
                parts++;
            }

            cancellationToken.ThrowIfCancellationRequested();
            if (failedIndices > 0)
            {
                Counters.Reassigned(failedIndices);
                Counters.RetriedStep();
                LogReassigned(_logger, failedIndices, work.Step);
            }

            _failed.AsSpan(0, failedIndices).CopyTo(_remaining);
            remaining = failedIndices;
        }

        _pendingTiming = (Stopwatch.GetElapsedTime(started).TotalSeconds, parts == 0 ? 0 : compute / parts, parts == 0 ? 0 : codec / parts, sumSeconds);
        return stats;
    }

    private static async Task<GradientReply> RunCallAsync(Task<GradientReply> call, CancellationTokenSource timeout, CancellationTokenSource linked)
    {
        try
        {
            return await call.ConfigureAwait(false);
        }
        finally
        {
            linked.Dispose();
            timeout.Dispose();
        }
    }

    private string? Validate(GradientReply reply, StepWork work, Member m)
    {
        if (reply.Step != work.Step)
        {
            return $"answered step {reply.Step} for step {work.Step}";
        }

        if (reply.Count != m.IndexCount)
        {
            return $"reported {reply.Count} samples for {m.IndexCount} given";
        }

        if (reply.GradientSum.Length != work.GradientSum.Length)
        {
            return $"sent {reply.GradientSum.Length} gradient values for {work.GradientSum.Length} parameters";
        }

        var sum = TensorPrimitives.Sum(reply.GradientSum.Span);
        if (!float.IsFinite(sum) || !double.IsFinite(reply.LossSum))
        {
            return "sent a gradient or loss that is NaN or infinite";
        }

        return null;
    }

    private void Fail(Member m, string reason)
    {
        lock (_sync)
        {
            if (!m.IsLive)
            {
                return;
            }

            m.State = MemberState.Failed;
            m.FailureReason = reason;
        }

        CancelCall(m);
        Counters.Failure();
        LogMemberFailed(_logger, m.Id, reason);
        Signal();
    }

    private static void CancelCall(Member m)
    {
        try
        {
            // Asynchronously: the awaiting step loop must not resume on this thread, inside a caller's lock.
            _ = m.StepCall?.CancelAsync();
        }
        catch (ObjectDisposedException)
        {
            // The call already finished.
        }
    }

    /// <summary>
    /// At a step boundary: drops failed and departed members, admits pending ones up to the maximum, waits while
    /// below the minimum, and re-plans and delivers shards when the membership changed.
    /// </summary>
    private async Task ApplyMembershipAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            List<Member> admitted = [];
            List<Member> toldToWait = [];
            bool changed;
            Task signal;
            CheckLeases();
            lock (_sync)
            {
                var before = _members.Count;
                _members.RemoveAll(m => !m.IsLive);
                _pending.RemoveAll(m => !m.IsLive);
                changed = _members.Count != before;
                while (_pending.Count > 0 && _members.Count < _options.MaxWorkers)
                {
                    var m = _pending[0];
                    _pending.RemoveAt(0);
                    m.State = MemberState.Active;
                    m.Indices = new int[_run.Options.BatchSize];
                    _members.Add(m);
                    admitted.Add(m);
                    changed = true;
                }

                // Ranks follow worker ids, so the same set of workers always sums in the same order.
                _members.Sort((a, b) => string.CompareOrdinal(a.Id, b.Id));
                foreach (var m in _pending.Where(m => m.State == MemberState.Pending))
                {
                    m.State = MemberState.Waiting;
                    toldToWait.Add(m);
                }

                signal = _changed.Task;
            }

            foreach (var m in admitted)
            {
                await TryAsync(m, m.Worker.AdmitAsync(Admission(m), cancellationToken)).ConfigureAwait(false);
            }

            foreach (var m in toldToWait)
            {
                var wait = new Admission { Admitted = false, RunId = RunId, Reason = $"the cluster is at --max-workers ({_options.MaxWorkers}); waiting for a free place" };
                await TryAsync(m, m.Worker.AdmitAsync(wait, cancellationToken)).ConfigureAwait(false);
            }

            int count;
            lock (_sync)
            {
                _members.RemoveAll(m => !m.IsLive);
                count = _members.Count;
                PeakWorkers = Math.Max(PeakWorkers, count);
            }

            if (count < _options.MinWorkers)
            {
                SetState(Trainer.State.GlobalStep == 0 && _state != "paused" ? "waiting" : "paused");
                LogWaitingForWorkers(_logger, count, _options.MinWorkers);
                await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            if (changed || admitted.Count > 0)
            {
                MembershipChanged?.Invoke();
                if (!await ReplanAsync(cancellationToken).ConfigureAwait(false))
                {
                    continue;
                }
            }

            if (_state is "paused" or "waiting" && Trainer.State.GlobalStep > 0)
            {
                SetState("training");
            }

            return;
        }
    }

    private Admission Admission(Member m) => new()
    {
        Admitted = true,
        RunId = RunId,
        ModelJson = _modelJson,
        Seed = _run.Options.Seed,
        MaxBatch = _run.Options.BatchSize,
        Rank = m.Rank,
        Dataset = LocalDataAllowed ? "mnist" : "",
    };

    private bool LocalDataAllowed => _options.AllowLocalData && _run.DatasetName == "mnist" && _run.Validation is null;

    /// <summary>Gives every member its range in rank order; returns false when a member failed meanwhile.</summary>
    private async Task<bool> ReplanAsync(CancellationToken cancellationToken)
    {
        Member[] members;
        lock (_sync)
        {
            members = [.. _members];
        }

        ShardPlan.Owners(members.Length, _owner);
        var deliveries = new List<Task<bool>>();
        for (var r = 0; r < members.Length; r++)
        {
            var m = members[r];
            m.Rank = r;
            var range = ShardPlan.RangeOf(r, members.Length, _owner.Length);
            if (m.Ranges is [var current] && current.Equals(range) && m.Generation >= 0)
            {
                continue;
            }

            var generation = Interlocked.Increment(ref _nextGeneration);
            IndexRange[] ranges = [range];
            deliveries.Add(DeliverAsync(m, generation, ranges, cancellationToken));
        }

        var results = await Task.WhenAll(deliveries).ConfigureAwait(false);
        LogPlanned(_logger, members.Length, _owner.Length);
        return results.All(ok => ok);
    }

    private async Task<bool> DeliverAsync(Member m, long generation, IndexRange[] ranges, CancellationToken cancellationToken)
    {
        var local = LocalDataAllowed && m.Hello.HasLocalData;
        try
        {
            foreach (var chunk in _encoder.Chunks(generation, ranges, local))
            {
                await m.Worker.LoadShardAsync(chunk, cancellationToken).ConfigureAwait(false);
            }

            m.Ranges = ranges;
            m.Generation = generation;
            return true;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Fail(m, "shard delivery failed: " + ex.Message);
            return false;
        }
    }

    private async Task TryAsync(Member m, Task call)
    {
        try
        {
            await call.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Fail(m, ex.Message);
        }
    }

    private async Task StopAllAsync(Stop stop)
    {
        Member[] all;
        lock (_sync)
        {
            all = [.. _members.Concat(_pending).Where(m => m.IsLive)];
        }

        foreach (var m in all)
        {
            try
            {
                await m.Worker.StopAsync(stop, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                LogMemberFailed(_logger, m.Id, "could not be told to stop: " + ex.Message);
            }
        }
    }

    private void Signal()
    {
        TaskCompletionSource old;
        lock (_sync)
        {
            old = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        old.TrySetResult();
    }

    private void SetState(string state)
    {
        lock (_sync)
        {
            _state = state;
        }
    }

    private sealed class Observer(CoordinatorGrain grain) : ITrainingObserver
    {
        public void OnStep(in StepReport report)
        {
            var (gather, compute, codec, sum) = grain._pendingTiming;
            grain.Timings.Add(report.Seconds, compute, codec, sum + Math.Max(0, report.Seconds - gather));
            grain._lastLoss = report.Stats.MeanLoss;
            lock (grain._sync)
            {
                grain._recent[grain._recentCount % grain._recent.Length] = (report.GlobalStep, report.Stats.MeanLoss);
                grain._recentCount++;
            }

            grain._samplesPerSecond = report.Seconds > 0 ? report.Stats.Count / report.Seconds : 0;
            var every = grain._options.CheckpointEvery;
            if (every > 0 && report.GlobalStep % every == 0 && report.StepInEpoch < report.StepsInEpoch)
            {
                grain.SaveCheckpoint();
            }
        }

        public void OnEpochEnd(EpochRecord record)
        {
            var accounting = grain._accounting.Close(record.Epoch, grain._resumedSamplesInEpoch);
            grain._resumedSamplesInEpoch = 0;
            if (accounting.Duplicates != 0 || accounting.Missing != 0)
            {
                grain.LogAccounting(record.Epoch, accounting.Duplicates, accounting.Missing);
            }

            grain.SaveCheckpoint();
            lock (grain._sync)
            {
                grain._history.Add(record);
            }

            grain._testAccuracy = record.TestAccuracy;
            grain.LogEpoch(record.Epoch, record.TrainLoss, record.TestAccuracy ?? double.NaN);
        }
    }

    private void LogEpoch(int epoch, double loss, double accuracy) => LogEpochDone(_logger, epoch, loss, accuracy);

    private void LogAccounting(int epoch, int duplicates, int missing) => LogAccountingBroken(_logger, epoch, duplicates, missing);

    [LoggerMessage(EventId = 12, Level = LogLevel.Error, Message = "Epoch {Epoch} sample accounting broken: {Duplicates} used twice, {Missing} not used")]
    private static partial void LogAccountingBroken(ILogger logger, int epoch, int duplicates, int missing);

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Worker {WorkerId} joined from {Address}")]
    private static partial void LogJoined(ILogger logger, string workerId, string address);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Worker {WorkerId} left: {Reason} (graceful: {Graceful})")]
    private static partial void LogLeft(ILogger logger, string workerId, string reason, bool graceful);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Worker {WorkerId} dropped: {Reason}")]
    private static partial void LogMemberFailed(ILogger logger, string workerId, string reason);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Waiting for workers: {Count} of at least {Minimum}")]
    private static partial void LogWaitingForWorkers(ILogger logger, int count, int minimum);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Shards planned over {Workers} workers ({Samples} samples)")]
    private static partial void LogPlanned(ILogger logger, int workers, int samples);

    [LoggerMessage(EventId = 7, Level = LogLevel.Warning, Message = "Reassigned {Samples} samples of step {Step} to the surviving workers")]
    private static partial void LogReassigned(ILogger logger, int samples, long step);

    [LoggerMessage(EventId = 8, Level = LogLevel.Error, Message = "Skipping corrupt checkpoint {Problem}")]
    private static partial void LogCorruptCheckpoint(ILogger logger, string problem);

    [LoggerMessage(EventId = 9, Level = LogLevel.Information, Message = "No usable checkpoint in {Directory}; starting from the beginning")]
    private static partial void LogNoCheckpoint(ILogger logger, string directory);

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Resumed at step {Step} from {Directory}")]
    private static partial void LogResumed(ILogger logger, long step, string directory);

    [LoggerMessage(EventId = 11, Level = LogLevel.Debug, Message = "Checkpoint written: {Path}")]
    private static partial void LogCheckpoint(ILogger logger, string path);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Epoch {Epoch} done: loss {Loss:0.0000}, test accuracy {Accuracy:P2}")]
    private static partial void LogEpochDone(ILogger logger, int epoch, double loss, double accuracy);
}
