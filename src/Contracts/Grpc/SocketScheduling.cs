namespace Cluster.Contracts.Grpc;

/// <summary>
/// Where socket completions run in the coordinator and worker processes. By default .NET hands every completed socket
/// operation from its I/O thread to the thread pool, and Kestrel hands its pipe continuations there again: a step's
/// tensors then cross several threads at each end, and on a machine with few cores each wake-up waits for a core.
/// With inline completions the I/O thread runs the continuation itself. It suits these processes because nothing
/// they run on a socket continuation blocks: their waits are awaits.
/// </summary>
public static class SocketScheduling
{
    /// <summary>The runtime's switch; it is read once, when the process first uses a socket.</summary>
    public const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>
    /// Turns inline completions on unless the environment already says either way (set the variable to 0 to keep the
    /// thread-pool hand-off). Call it first thing in Main, before any socket exists; later it has no effect.
    /// </summary>
    public static void PreferInlineCompletions()
    {
        if (Environment.GetEnvironmentVariable(InlineCompletionsVariable) is null)
        {
            Environment.SetEnvironmentVariable(InlineCompletionsVariable, "1");
        }
    }

    /// <summary>True when this process runs socket completions inline (Kestrel is then told to do the same).</summary>
    public static bool InlineCompletions => Environment.GetEnvironmentVariable(InlineCompletionsVariable) == "1";
}
