namespace Cluster.WorkerSilo.Tests;

public sealed class ComputeLaneTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private static async Task<T> Within<T>(Task<T> task, string what)
    {
        try
        {
            return await task.WaitAsync(Patience);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{what}: not done within {Patience.TotalSeconds} s (status {task.Status})");
            throw;
        }
    }

    [Fact]
    public async Task Run_ComputesOnTheLanesThread_AndRunsAfterBeforeTheTaskCompletes()
    {
        using var lane = new ComputeLane("lane-a");
        Task<string?>? task = null;
        bool? completedBeforeAfter = null;
        using var handedOver = new ManualResetEventSlim();
        task = lane.Run(() =>
        {
            handedOver.Wait(Patience);
            return Thread.CurrentThread.Name;
        }, () => completedBeforeAfter = task!.IsCompleted);
        handedOver.Set();
        Assert.Equal("lane-a", await Within(task, "the step"));
        Assert.False(completedBeforeAfter);
    }

    [Fact]
    public async Task Run_WorkThrows_TheTaskFaults_AndAfterStillRuns()
    {
        using var lane = new ComputeLane("lane-b");
        var after = 0;
        var task = lane.Run<int>(() => throw new InvalidOperationException("bad step"), () => after++);
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => Within(task, "the failing step"));
        Assert.Equal("bad step", ex.Message);
        Assert.Equal(1, after);
        // The lane goes on with the next step.
        Assert.Equal(7, await Within(lane.Run(() => 7, () => after++), "the step after the failure"));
        Assert.Equal(2, after);
    }

    [Fact]
    public async Task Run_ContinuationsNeverRunOnTheLane()
    {
        using var lane = new ComputeLane("lane-c");
        using var gate = new ManualResetEventSlim();
        var task = lane.Run(() => gate.Wait(Patience), () => { });
        // Registered before the step ends, and asking to run synchronously: it would run on the lane's thread, holding
        // the thread the next step needs, unless the lane sends continuations elsewhere.
        var continuation = task.ContinueWith(_ => Thread.CurrentThread.Name, TaskContinuationOptions.ExecuteSynchronously);
        gate.Set();
        Assert.True(await Within(task, "the gated step"));
        Assert.NotEqual("lane-c", await Within(continuation, "the continuation"));
    }

    [Fact]
    public async Task Run_WhileAStepWaitsToStart_IsRefused_AndTheStepsRunInOrder()
    {
        using var lane = new ComputeLane("lane-d");
        using var started = new ManualResetEventSlim();
        using var gate = new ManualResetEventSlim();
        var order = new List<int>();
        var first = lane.Run(() =>
        {
            started.Set();
            gate.Wait(Patience);
            order.Add(1);
            return 1;
        }, () => { });
        Assert.True(started.Wait(Patience), "the first step never started");
        var second = lane.Run(() =>
        {
            order.Add(2);
            return 2;
        }, () => { });
        Assert.Throws<InvalidOperationException>(() => { _ = lane.Run(() => 3, () => { }); });
        gate.Set();
        Assert.Equal(1, await Within(first, "the first step"));
        Assert.Equal(2, await Within(second, "the second step"));
        Assert.Equal([1, 2], order);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.05)]
    public async Task Run_StepAfterStep_EachIsTakenWhetherTheLaneSpinsOrSleeps(double spinMilliseconds)
    {
        // With no spin the lane sleeps between steps: a step handed over while it goes to sleep must still wake it.
        using var lane = new ComputeLane("lane-e", TimeSpan.FromMilliseconds(spinMilliseconds));
        var sum = 0L;
        for (var i = 1; i <= 500; i++)
        {
            var value = i;
            sum += await Within(lane.Run(() => value, () => { }), $"step {i}");
            if (i % 50 == 0)
            {
                // Long enough for the spinning lane to fall asleep.
                Thread.Sleep(2);
            }
        }

        Assert.Equal(500L * 501 / 2, sum);
    }

    [Fact]
    public async Task Dispose_FinishesTheStepsHandedOver_AndRefusesLaterOnes()
    {
        var lane = new ComputeLane("lane-f");
        using var started = new ManualResetEventSlim();
        using var gate = new ManualResetEventSlim();
        var first = lane.Run(() =>
        {
            started.Set();
            gate.Wait(Patience);
            return 1;
        }, () => { });
        Assert.True(started.Wait(Patience), "the first step never started");
        var second = lane.Run(() => 2, () => { });
        var disposing = Task.Run(lane.Dispose);
        gate.Set();
        await disposing.WaitAsync(Patience);
        Assert.True(first.IsCompletedSuccessfully && second.IsCompletedSuccessfully, $"steps {first.Status}, {second.Status}");
        Assert.Throws<ObjectDisposedException>(() => { _ = lane.Run(() => 3, () => { }); });
        lane.Dispose();
    }
}
