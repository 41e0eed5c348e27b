using Cluster.Contracts.V1;

namespace Cluster.Coordinator.Grains;

/// <summary>Membership at step boundaries: admission, leases, failures, shard plans and their delivery.</summary>
public sealed partial class CoordinatorGrain
{
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
        if (m.Worker is IHeartbeatingWorker remote)
        {
            remote.Drop(reason);
        }

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
                for (var r = 0; r < _members.Count; r++)
                {
                    _members[r].Rank = r;
                }

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
                foreach (var m in admitted.Where(m => m.IsLive))
                {
                    _workerThreads.Add(m.Hello.Threads);
                    _workerBackends.Add(m.Hello.Backend);
                }
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
        BlockTensors = _options.BlockTensors && m.Hello.BlockTensors,
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
        // A worker that loads MNIST itself, or an in-process one that reads this run's training set in place.
        var local = (LocalDataAllowed && m.Hello.HasLocalData) || (m.Worker.TrainingSetInPlace is { } set && ReferenceEquals(set, _run.Train));
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
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The run was stopped while this member failed: the stop is what ends the run, not this member's failure.
            throw new OperationCanceledException("The run was stopped during a shard delivery.", ex, cancellationToken);
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
}
