using Cluster.Tests.Shared;
using Cluster.Compute.Backends;
using Cluster.Contracts.Grains;
using Cluster.Contracts.V1;
using Cluster.Coordinator.Grains;
using Cluster.WorkerSilo;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.Coordinator.Tests;

public sealed class LeaseTests
{
    /// <summary>A remote-looking worker that accepts its shard, then never answers a step and never heartbeats.</summary>
    private sealed class SilentWorker : IWorkerGrain, IHeartbeatingWorker
    {
        public TaskCompletionSource Asked { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string WorkerId => "silent";

        public Task AdmitAsync(Admission admission, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task LoadShardAsync(ShardData chunk, CancellationToken cancellationToken) => Task.CompletedTask;

        public async Task<GradientReply> ComputeAsync(StepCommand command, CancellationToken cancellationToken)
        {
            Asked.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            throw new InvalidOperationException("unreachable");
        }

        public Task StopAsync(Stop stop, CancellationToken cancellationToken) => Task.CompletedTask;

        public List<string> Dropped { get; } = [];

        public void Drop(string reason)
        {
            lock (Dropped)
            {
                Dropped.Add(reason);
            }
        }
    }

    [Fact]
    public async Task Lease_ExpiresOnTheInjectedClock_SilentWorkerIsDroppedAndItsSliceRecomputed()
    {
        var time = new ManualTime();
        var run = TestRuns.Run(epochs: 1);
        var expected = await TestRuns.SingleProcessAsync(TestRuns.Run(epochs: 1));
        using var eval = new ManagedBackend(1);
        var grain = new CoordinatorGrain(run, new ClusterOptions { MinWorkers = 1, Lease = TimeSpan.FromSeconds(10), StepTimeout = TimeSpan.FromHours(1) }, eval, NullLogger.Instance, time);
        using var real = new WorkerGrain("real");
        var silent = new SilentWorker();
        await grain.JoinAsync(new Hello { WorkerId = "real", ProtocolVersion = 1 }, real, CancellationToken.None);
        await grain.JoinAsync(new Hello { WorkerId = "silent", ProtocolVersion = 1 }, silent, CancellationToken.None);
        var training = grain.RunAsync(CancellationToken.None);
        await silent.Asked.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(training.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(0, grain.Counters.Failures);
        time.Advance(TimeSpan.FromSeconds(8));
        await training.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(1, grain.Counters.Failures);
        // Told, so that a worker still alive joins again.
        Assert.Equal(["no heartbeat for 10 s (lease expired)"], silent.Dropped);
        Assert.True(grain.Counters.ReassignedSamples > 0);
        Assert.All(grain.Accounting, a => Assert.Equal((a.Samples, 0), (a.Used, a.Duplicates)));
        TestRuns.AssertClose(expected, run.Model.Parameters, 1e-5);
    }

    [Fact]
    public async Task BelowMinWorkers_RunPausesAndResumesWhenAWorkerJoins()
    {
        var run = TestRuns.Run(epochs: 1);
        using var eval = new ManagedBackend(1);
        var grain = new CoordinatorGrain(run, new ClusterOptions { MinWorkers = 2 }, eval, NullLogger.Instance);
        using var a = new WorkerGrain("a");
        using var b = new WorkerGrain("b");
        await grain.JoinAsync(new Hello { WorkerId = "a", ProtocolVersion = 1 }, a, CancellationToken.None);
        var training = grain.RunAsync(CancellationToken.None);
        await TestRuns.WaitForAsync(() => grain.GetStatusAsync().Result.State == "waiting", "the run to wait for a second worker", () => grain.GetStatusAsync().Result.State);
        Assert.Equal(0, grain.Trainer.State.GlobalStep);
        Assert.False(training.IsCompleted);
        await grain.JoinAsync(new Hello { WorkerId = "b", ProtocolVersion = 1 }, b, CancellationToken.None);
        await training.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal("finished", (await grain.GetStatusAsync()).State);
    }

    [Fact]
    public async Task AboveMaxWorkers_ExtraWorkerIsToldToWait()
    {
        var run = TestRuns.Run(epochs: 1);
        using var eval = new ManagedBackend(1);
        var grain = new CoordinatorGrain(run, new ClusterOptions { MinWorkers = 1, MaxWorkers = 1 }, eval, NullLogger.Instance);
        using var a = new WorkerGrain("a");
        using var b = new WorkerGrain("b");
        await grain.JoinAsync(new Hello { WorkerId = "a", ProtocolVersion = 1 }, a, CancellationToken.None);
        await grain.JoinAsync(new Hello { WorkerId = "b", ProtocolVersion = 1 }, b, CancellationToken.None);
        await grain.RunAsync(CancellationToken.None);
        Assert.True(a.Admission!.Admitted);
        Assert.False(b.Admission!.Admitted);
        Assert.Contains("--max-workers", b.Admission.Reason);
        Assert.Equal(0, b.ShardSize);
    }
}
