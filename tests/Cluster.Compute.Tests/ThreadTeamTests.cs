using System.Diagnostics;
using Cluster.Compute.Kernels;

namespace Cluster.Compute.Tests;

public sealed class ThreadTeamTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Run_EveryPartRunsOnce_WhetherMembersSpinOrSleep(bool spin)
    {
        // Jobs come back to back (members still polling), after a pause inside the spin window (backing off), and
        // after one past it (members asleep, woken by the fork). A lost wake-up would hang a Run: the loop runs on
        // its own thread and must finish. Without spinning, members sleep at once and a job wakes only its parts.
        using var team = new ThreadTeam(3, spin);
        Assert.Equal(spin, team.Spins);
        var work = new CountingWork(3);
        var gaps = new[] { 0.0, 0.00002, 0.0001, 0.0003, 0.002 };
        await Within(60, "a Run never returned: a member missed its wake-up", () =>
        {
            for (var i = 0; i < 400; i++)
            {
                Pause(gaps[i % gaps.Length]);
                var parts = 1 + i % 3;
                work.Reset();
                team.Run(work, parts);
                for (var part = 0; part < 3; part++)
                {
                    Assert.True(work.Runs(part) == (part < parts ? 1 : 0), $"job {i}: part {part} of {parts} ran {work.Runs(part)} times");
                }
            }
        });
    }

    [Fact]
    public void Spins_ByDefault_OnlyWhenTheTeamFitsTheProcessors()
    {
        using var fits = new ThreadTeam(Math.Min(2, Environment.ProcessorCount));
        using var over = new ThreadTeam(Environment.ProcessorCount + 1);
        Assert.True(fits.Spins);
        Assert.False(over.Spins);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Run_AMemberThrows_TheCallerGetsTheExceptionAndTheTeamStaysUsable(bool spin)
    {
        using var team = new ThreadTeam(2, spin);
        await Within(30, "a Run never returned", () =>
        {
            var ex = Assert.Throws<InvalidOperationException>(() => team.Run(new ThrowingWork(part: 1), 2));
            Assert.Equal("part 1", ex.Message);
            Thread.Sleep(20); // past the spin window: the member sleeps and must be woken
            var work = new CountingWork(2);
            team.Run(work, 2);
            Assert.Equal(1, work.Runs(0));
            Assert.Equal(1, work.Runs(1));
        });
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Dispose_WithMembersAsleep_ReturnsAndRefusesNewWork(bool spin)
    {
        var team = new ThreadTeam(3, spin);
        await Within(30, "a Run or the Dispose never returned (sleeping members not woken)", () =>
        {
            team.Run(new CountingWork(3), 3);
            Thread.Sleep(20); // past the spin window: the members sleep
            team.Dispose();
        });
        Assert.Throws<ObjectDisposedException>(() => team.Run(new CountingWork(3), 3));
    }

    /// <summary>Runs <paramref name="body"/> on its own thread; a hang fails the test instead of stalling the run.</summary>
    private static async Task Within(int seconds, string hangMessage, Action body)
    {
        var task = Task.Factory.StartNew(body, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.True(await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(seconds))) == task, hangMessage);
        await task;
    }

    private static void Pause(double seconds)
    {
        if (seconds >= 0.001)
        {
            Thread.Sleep(TimeSpan.FromSeconds(seconds));
            return;
        }

        var end = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < end)
        {
            Thread.SpinWait(10);
        }
    }

    private sealed class CountingWork(int parts) : ITeamWork
    {
        private readonly int[] _runs = new int[parts];

        public void Execute(int part) => Interlocked.Increment(ref _runs[part]);

        public int Runs(int part) => Volatile.Read(ref _runs[part]);

        public void Reset() => Array.Clear(_runs);
    }

    private sealed class ThrowingWork(int part) : ITeamWork
    {
        public void Execute(int p)
        {
            if (p == part)
            {
                throw new InvalidOperationException($"part {p}");
            }
        }
    }
}
