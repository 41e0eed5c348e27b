using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace Cluster.Compute.Kernels;

/// <summary>Work that a <see cref="ThreadTeam"/> runs on every member at once.</summary>
public interface ITeamWork
{
    /// <summary>Runs part <paramref name="part"/> of the work.</summary>
    void Execute(int part);
}

/// <summary>
/// A fixed team of threads for fork-join kernels. Members spin briefly between jobs (a GEMM per layer comes every few
/// microseconds in training) and then sleep, so an idle team costs nothing.
/// </summary>
public sealed class ThreadTeam : IDisposable
{
    private static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 200 microseconds

    // Polls of a shared flag, a few nanoseconds apart, before a waiting thread backs off (some microseconds).
    private const int ClosePolls = 1000;
    private readonly Thread[] _members;
    private readonly object _lock = new();
    private ITeamWork? _work;
    private int _parts;
    private int _generation;
    private int _pending;
    private int _sleepers;
    private volatile bool _disposed;
    private ExceptionDispatchInfo? _failure;

    /// <summary>Creates a team of <paramref name="size"/> threads, the caller counting as one.</summary>
    public ThreadTeam(int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        Size = size;
        _members = new Thread[size - 1];
        for (var i = 0; i < _members.Length; i++)
        {
            var part = i + 1;
            _members[i] = new Thread(() => MemberLoop(part)) { IsBackground = true, Name = $"compute-{part}" };
            _members[i].Start();
        }
    }

    /// <summary>Threads in the team, the caller included.</summary>
    public int Size { get; }

    /// <summary>Runs parts 0..parts-1 of <paramref name="work"/>, part 0 on the calling thread, and returns when all are done.</summary>
    public void Run(ITeamWork work, int parts)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        parts = Math.Clamp(parts, 1, Size);
        if (parts == 1)
        {
            work.Execute(0);
            return;
        }

        _work = work;
        _parts = parts;
        Volatile.Write(ref _pending, Size - 1);
        // A full fence on each side (this increment, and the sleeper count's in MemberLoop): either a member about to
        // sleep sees the new generation, or this thread sees it counted as a sleeper and wakes it. Spinning members
        // see the generation change without the lock.
        Interlocked.Increment(ref _generation);
        if (Volatile.Read(ref _sleepers) > 0)
        {
            lock (_lock)
            {
                Monitor.PulseAll(_lock);
            }
        }

        try
        {
            work.Execute(0);
        }
        finally
        {
            // The other parts are about as long as this one.
            var polls = 0;
            var spinner = default(SpinWait);
            while (Volatile.Read(ref _pending) != 0)
            {
                Pause(ref polls, ref spinner);
            }

            _work = null;
        }

        var failure = Interlocked.Exchange(ref _failure, null);
        failure?.Throw();
    }

    private void MemberLoop(int part)
    {
        var seen = 0;
        while (true)
        {
            int generation;
            var start = Stopwatch.GetTimestamp();
            var polls = 0;
            var spinner = default(SpinWait);
            while ((generation = Volatile.Read(ref _generation)) == seen && !_disposed)
            {
                // The next product of a training step comes within microseconds; after the spin window, sleep.
                if (polls >= ClosePolls && Stopwatch.GetTimestamp() - start > SpinTicks)
                {
                    lock (_lock)
                    {
                        Interlocked.Increment(ref _sleepers);
                        while (Volatile.Read(ref _generation) == seen && !_disposed)
                        {
                            Monitor.Wait(_lock);
                        }

                        Interlocked.Decrement(ref _sleepers);
                    }
                }
                else
                {
                    Pause(ref polls, ref spinner);
                }
            }

            if (_disposed)
            {
                return;
            }

            seen = generation;
            try
            {
                if (part < _parts)
                {
                    _work!.Execute(part);
                }
            }
            catch (Exception ex)
            {
                Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(ex), null);
            }
            finally
            {
                Interlocked.Decrement(ref _pending);
            }
        }
    }

    /// <summary>
    /// One wait for a shared flag: close polls at first, so a microsecond-long job is not overslept several times
    /// over, then a backed-off spin that yields, in case the thread being waited for needs this core.
    /// </summary>
    private static void Pause(ref int polls, ref SpinWait spinner)
    {
        if (++polls < ClosePolls)
        {
            Thread.SpinWait(1);
        }
        else
        {
            spinner.SpinOnce(-1);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        lock (_lock)
        {
            _disposed = true;
            Monitor.PulseAll(_lock);
        }

        foreach (var member in _members)
        {
            member.Join();
        }
    }
}
