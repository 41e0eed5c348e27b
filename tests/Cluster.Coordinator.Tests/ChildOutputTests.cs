using System.Collections.Concurrent;
using System.Diagnostics;
using Cluster.Coordinator.Runs;

namespace Cluster.Coordinator.Tests;

public sealed class ChildOutputTests
{
    private static Process Shell(string script)
    {
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        return Process.Start(psi)!;
    }

    [Fact]
    public async Task Pump_DeliversBothStreamsInOrder_OffThePool_AndEndsWithTheChild()
    {
        using var child = Shell("for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done");
        var lines = new ConcurrentQueue<string>();
        var onPool = 0;
        var drained = ChildOutput.Pump(child, "shell", line =>
        {
            if (Thread.CurrentThread.IsThreadPoolThread)
            {
                Interlocked.Increment(ref onPool);
            }

            lines.Enqueue(line);
        });

        await drained.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(child.WaitForExit(30_000));
        Assert.Equal(0, onPool);
        Assert.Equal(["out1", "out2", "out3", "out4", "out5"], lines.Where(l => l.StartsWith("out", StringComparison.Ordinal)));
        Assert.Equal(["err1", "err2", "err3", "err4", "err5"], lines.Where(l => l.StartsWith("err", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Pump_WhenTheCallbackThrows_FaultsTheTaskInsteadOfTheProcess()
    {
        using var child = Shell("echo boom");
        var drained = ChildOutput.Pump(child, "shell", line => throw new InvalidOperationException($"cannot take '{line}'"));
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => drained.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("cannot take 'boom'", error.Message);
        Assert.True(child.WaitForExit(30_000));
    }
}
