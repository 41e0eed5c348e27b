using System.Diagnostics;

namespace Cluster.Coordinator.Runs;

/// <summary>
/// Drains a child process's redirected output line by line on two dedicated background threads.
/// </summary>
/// <remarks>
/// <see cref="Process.BeginOutputReadLine"/> reads an anonymous pipe synchronously on a thread-pool thread for
/// as long as the child lives; with a few children that starves the pool, and a coordinator's gRPC replies (or
/// a test's polling) then wait the better part of a second for the pool to grow. Threads of their own cost
/// nothing of the pool and end with the pipe.
/// </remarks>
internal static class ChildOutput
{
    /// <summary>
    /// Starts reading the child's standard output and error; <paramref name="onLine"/> sees each line (from either
    /// thread). The task completes when both pipes have ended, or faults with what <paramref name="onLine"/> threw.
    /// </summary>
    public static Task Pump(Process process, string name, Action<string> onLine)
    {
        ArgumentNullException.ThrowIfNull(process);
        ArgumentNullException.ThrowIfNull(onLine);
        return Task.WhenAll(Start(process.StandardOutput, $"{name}-stdout", onLine), Start(process.StandardError, $"{name}-stderr", onLine));
    }

    private static Task Start(StreamReader reader, string name, Action<string> onLine)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                while (reader.ReadLine() is { } line)
                {
                    onLine(line);
                }
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException)
            {
                // The process object was disposed or the pipe broke: nothing more to read.
            }
            catch (Exception ex)
            {
                // A failing onLine ends this reader; the task carries the exception instead of the process dying.
                done.TrySetException(ex);
            }
            finally
            {
                done.TrySetResult();
            }
        })
        {
            IsBackground = true,
            Name = name,
        };
        thread.Start();
        return done.Task;
    }
}
