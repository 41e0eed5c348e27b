using System.Diagnostics;
using Cluster.Contracts.Configuration;

namespace Cluster.Contracts.Tests;

/// <summary>Stopping a child process: its own exit, then SIGTERM, then a kill.</summary>
public sealed class ChildProcessesTests
{
    private static Process Start(string script) =>
        Process.Start(new ProcessStartInfo("sh", ["-c", script]) { UseShellExecute = false })!;

    [Fact]
    public async Task StopAsync_WaitsForAnExit_ThenTerminates_ThenKills()
    {
        using var finishing = Start("exit 0");
        Assert.Equal("exited", await ChildProcesses.StopAsync(finishing, TimeSpan.FromSeconds(10)));

        // A process that exits on SIGTERM (the shell forwards nothing; sleep is the shell's last command).
        using var sleeping = Start("exec sleep 60");
        var clock = Stopwatch.StartNew();
        Assert.Equal("terminated", await ChildProcesses.StopAsync(sleeping, TimeSpan.FromMilliseconds(300)));
        Assert.True(sleeping.HasExited);
        Assert.Equal(143, sleeping.ExitCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30));

        // One that ignores SIGTERM is killed.
        using var stubborn = Start("trap '' TERM; while true; do sleep 0.05; done");
        Assert.Equal("killed", await ChildProcesses.StopAsync(stubborn, TimeSpan.FromMilliseconds(300)));
        Assert.True(stubborn.HasExited);
    }
}
