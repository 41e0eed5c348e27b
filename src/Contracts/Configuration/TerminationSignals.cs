using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting;

namespace Cluster.Contracts.Configuration;

/// <summary>
/// Ctrl+C (SIGINT) and SIGTERM for a whole process: the first one cancels <see cref="Token"/>, so the command in hand
/// stops the way it stops on any cancellation (a coordinator tells its workers and stops its child processes, a worker
/// finishes its step and says goodbye), however long that takes; a second one ends the process at once.
/// </summary>
public sealed class TerminationSignals : IDisposable
{
    private readonly CancellationTokenSource _cancel;
    private readonly PosixSignalRegistration[] _registrations;
    private int _received;

    /// <summary>Starts handling both signals; <see cref="Token"/> is also cancelled with <paramref name="outer"/>.</summary>
    public TerminationSignals(CancellationToken outer = default)
    {
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(outer);
        _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];
    }

    /// <summary>Cancelled by the first signal.</summary>
    public CancellationToken Token => _cancel.Token;

    /// <summary>
    /// The exit code of a process that stopped on a signal, by the shell's convention (128 + the signal's number: 130 for
    /// SIGINT, 143 for SIGTERM) in place of the command's 130 for "cancelled"; <paramref name="code"/> otherwise.
    /// </summary>
    public int ExitCode(int code) => Volatile.Read(ref _received) is var signal and > 0 && code == 130 ? 128 + signal : code;

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }

        _cancel.Dispose();
    }

    private void Handle(PosixSignalContext context)
    {
        // The second signal keeps its default action: the process ends without waiting for a clean stop.
        if (Interlocked.CompareExchange(ref _received, context.Signal == PosixSignal.SIGTERM ? 15 : 2, 0) != 0)
        {
            return;
        }

        context.Cancel = true;
        _cancel.Cancel();
    }
}

/// <summary>
/// The host lifetime of the project's web servers: unlike ASP.NET Core's console lifetime it leaves SIGINT and SIGTERM
/// to the process (<see cref="TerminationSignals"/>), which stops its servers itself once the run has stopped cleanly;
/// the console lifetime would stop them at the signal, before a coordinator could tell its workers.
/// </summary>
public sealed class ProcessOwnedLifetime : IHostLifetime
{
    /// <inheritdoc/>
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
