using System.Diagnostics;
using System.Numerics.Tensors;
using Cluster.Compute;
using Cluster.Compute.Kernels;
using Cluster.Compute.Training;
using Cluster.Contracts.Grains;

namespace Cluster.Coordinator.Grains;

/// <summary>The step: fan out by shard ownership, sum in rank order, recompute the slices of members that failed.</summary>
public sealed partial class CoordinatorGrain
{
    /// <summary>How long a step waits for an in-process member by spinning before it gives up its thread.</summary>
    private static readonly TimeSpan InProcessSpin = TimeSpan.FromMilliseconds(2);

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
        var stats = default(BatchStats);
        var summed = false;
        // The first sum of a round waits for the second, so the two are added in one pass instead of copy then add.
        ReadOnlyMemory<float> first = default;
        var holding = false;
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
            var timeouts = new (CancellationTokenSource Call, CancellationTokenSource Linked)[members.Length];
            var last = members.Length - 1;
            while (last >= 0 && members[last].IndexCount == 0)
            {
                last--;
            }

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

                // The last member called may compute on this thread, which has nothing else to do until it answers.
                var command = new StepCommand(work.Step, work.Epoch, m.Generation, work.Parameters, m.Indices.AsMemory(0, m.IndexCount)) { OnCallingThread = r == last };
                timeouts[r] = (call, linked);
                calls[r] = m.Worker.ComputeAsync(command, linked.Token);
            }

            // Members answer in any order; their sums are added in rank order so a topology always gives the same bits.
            var failedIndices = 0;
            var answered = 0;
            List<Member>? nonFinite = null;
            for (var r = 0; r < members.Length; r++)
            {
                if (calls[r] is not { } call)
                {
                    continue;
                }

                var m = members[r];
                GradientReply? reply = null;
                string? problem;
                var refusedNonFinite = false;
                try
                {
                    if (!call.IsCompleted && m.Worker.SpinsBetweenSteps)
                    {
                        SpinUntilDone(call);
                    }

                    reply = await call.ConfigureAwait(false);
                    problem = Validate(reply, work, m);
                }
                catch (NonFiniteAnswerException ex) when (!cancellationToken.IsCancellationRequested)
                {
                    problem = ex.Message;
                    refusedNonFinite = true;
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    problem = ex is OperationCanceledException
                        ? m.FailureReason ?? $"no answer within the step timeout of {_options.StepTimeout.TotalSeconds:0} s"
                        : ex.Message;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The run was stopped while this member failed (train --processes when its worker processes are
                    // killed: their streams break as the run learns that they are gone). The stop is what ends the
                    // run, as in a shard delivery; before, the member's error escaped as an unhandled exception.
                    throw new OperationCanceledException("The run was stopped during a step.", ex, cancellationToken);
                }
                finally
                {
                    // A step cancelled by the run's token leaves the later calls' sources to the collector.
                    timeouts[r].Linked.Dispose();
                    timeouts[r].Call.Dispose();
                }

                // An in-process member's NaN is the model's, and the trainer refuses the step; a remote member's (refused by
                // its stream, or found here) is judged once the round is over: a fault if another member answered with
                // finite numbers, else divergence.
                if (refusedNonFinite || (problem is null && reply is not null && !m.Worker.InProcess && !m.Worker.ChecksFinite && !IsFinite(reply)))
                {
                    answered++;
                    (nonFinite ??= []).Add(m);
                    m.Indices.AsSpan(0, m.IndexCount).CopyTo(_failed.AsSpan(failedIndices));
                    failedIndices += m.IndexCount;
                    continue;
                }

                if (problem is not null || reply is null)
                {
                    Fail(m, problem ?? "no reply");
                    // Its slice goes back into the pool and is recomputed by the survivors in the next round.
                    m.Indices.AsSpan(0, m.IndexCount).CopyTo(_failed.AsSpan(failedIndices));
                    failedIndices += m.IndexCount;
                    continue;
                }

                answered++;
                var summing = Stopwatch.GetTimestamp();
                if (summed)
                {
                    ElementwiseKernels.Add(work.GradientSum.Span, reply.GradientSum.Span, work.GradientSum.Span);
                }
                else if (holding)
                {
                    ElementwiseKernels.Add(first.Span, reply.GradientSum.Span, work.GradientSum.Span);
                    holding = false;
                    summed = true;
                }
                else
                {
                    first = reply.GradientSum;
                    holding = true;
                }

                _accounting.Mark(m.Indices.AsSpan(0, m.IndexCount));
                sumSeconds += Stopwatch.GetElapsedTime(summing).TotalSeconds;
                stats += new BatchStats(reply.LossSum, reply.Correct, reply.SquaredErrorSum, reply.Count);
                m.Samples += reply.Count;
                m.LastSamplesPerSecond = reply.ComputeSeconds > 0 ? reply.Count / reply.ComputeSeconds : 0;
                compute += reply.ComputeSeconds;
                codec += reply.CodecSeconds;
                parts++;
            }

            if (nonFinite is not null)
            {
                if (nonFinite.Count == answered)
                {
                    // Dropping them would leave the run waiting for members that do not come.
                    throw new TrainingDivergedException($"Every worker that answered step {work.Step + 1} (epoch {work.Epoch + 1}) sent a gradient or loss that is NaN or infinite; the step was not applied. Lower the learning rate or check the data.");
                }

                foreach (var m in nonFinite)
                {
                    lock (_sync)
                    {
                        _nonFiniteAnswers[m.Id] = _nonFiniteAnswers.GetValueOrDefault(m.Id) + 1;
                    }

                    Counters.NonFinite();

                    // A member refused by its stream has already left; the others go now.
                    Fail(m, NonFiniteProblem);
                }
            }

            if (holding)
            {
                // A lone part is copied, not added to zeros: the same bits as one worker. It is done before a retry
                // round, where its worker may compute again into the buffer that holds it.
                var copying = Stopwatch.GetTimestamp();
                first.Span.CopyTo(work.GradientSum.Span);
                sumSeconds += Stopwatch.GetElapsedTime(copying).TotalSeconds;
                holding = false;
                summed = true;
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

        if (!summed)
        {
            work.GradientSum.Span.Clear();
        }

        _pendingTiming = (Stopwatch.GetElapsedTime(started).TotalSeconds, parts == 0 ? 0 : compute / parts, parts == 0 ? 0 : codec / parts, sumSeconds);
        return stats;
    }

    /// <summary>
    /// Waits for an in-process member's step by spinning, for up to <see cref="InProcessSpin"/>: its compute ends at about
    /// the time this thread's own does, and a thread given up and woken again costs 0.1-0.2 ms on a virtual machine.
    /// Only for members that spin between steps, which have cores to themselves: on shared cores it takes theirs.
    /// </summary>
    private static void SpinUntilDone(Task call)
    {
        var until = Stopwatch.GetTimestamp() + (long)(InProcessSpin.TotalSeconds * Stopwatch.Frequency);
        var spinner = default(SpinWait);
        while (!call.IsCompleted && Stopwatch.GetTimestamp() < until)
        {
            spinner.SpinOnce(sleep1Threshold: -1);
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

        return null;
    }

    private const string NonFiniteProblem = "sent a gradient or loss that is NaN or infinite";

    private static bool IsFinite(GradientReply reply) => float.IsFinite(TensorPrimitives.Sum(reply.GradientSum.Span)) && double.IsFinite(reply.LossSum);
}
