using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Cluster.Contracts.Configuration;

/// <summary>Asks a child process to stop the way a terminal or Kubernetes would: SIGTERM (a kill where there is none).</summary>
public static partial class ChildProcesses
{
    private const int SigTerm = 15;

    /// <summary>Sends SIGTERM to <paramref name="process"/> if it is still running; on Windows, kills it.</summary>
    public static void Terminate(Process process)
    {
        if (process.HasExited)
        {
            return;
        }

        if (OperatingSystem.IsWindows())
        {
            process.Kill(entireProcessTree: true);
            return;
        }

        // ESRCH (it exited meanwhile) is not an error here.
        _ = Kill(process.Id, SigTerm);
    }

    /// <summary>
    /// Stops <paramref name="process"/>: waits <paramref name="grace"/> for it to exit by itself, then sends SIGTERM and
    /// waits <paramref name="grace"/> again, then kills it and its children. Returns how it ended.
    /// </summary>
    public static async Task<string> StopAsync(Process process, TimeSpan grace)
    {
        if (await ExitedWithinAsync(process, grace).ConfigureAwait(false))
        {
            return "exited";
        }

        Terminate(process);
        if (await ExitedWithinAsync(process, grace).ConfigureAwait(false))
        {
            return "terminated";
        }

        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync().ConfigureAwait(false);
        return "killed";
    }

    private static async Task<bool> ExitedWithinAsync(Process process, TimeSpan wait)
    {
        using var timeout = new CancellationTokenSource(wait);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
