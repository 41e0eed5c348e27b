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
/// microseconds in training) and then sleep, so an idle team costs nothing. A team that does not spin (more threads
/// than cores) sleeps at once, and a job wakes only the members it uses.
/// </summary>
public sealed class ThreadTeam : IDisposable
{
    private static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 200 microseconds

    // Polls of a shared flag, a few nanoseconds apart, before a waiting thread backs off (some microseconds).
    private const int ClosePolls = 1000;

    // Without spinning: a handful of polls (a job may already be there), then sleep or yield the core.
    private const int BriefPolls = 20;
    private readonly Thread[] _members;
    private readonly Sleeper[] _sleepers;
    private readonly int _polls;
    private ITeamWork? _work;

    // The job's generation (high 32 bits) and part count (low 32 bits), read in one load so that a member never pairs
    // one job's generation with another's part count.
    private long _job;
    private int _pending;
    private volatile bool _disposed;
    private ExceptionDispatchInfo? _failure;

    /// <summary>
    /// Creates a team of <paramref name="size"/> threads, the caller counting as one. <paramref name="spin"/>: whether
    /// waiting threads spin before they sleep (by default, when the team fits the machine's processors); threads that
    /// spin on a core another team thread needs slow the whole job down, several times over.
    /// </summary>
    public ThreadTeam(int size, bool? spin = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        Size = size;
        Spins = spin ?? size <= Environment.ProcessorCount;
        _polls = Spins ? ClosePolls : BriefPolls;
        _members = new Thread[size - 1];
        _sleepers = new Sleeper[size];
        for (var i = 0; i < _members.Length; i++)
        {
            var part = i + 1;
            _sleepers[part] = new Sleeper();
            _members[i] = new Thread(() => MemberLoop(part)) { IsBackground = true, Name = $"compute-{part}" };
            _members[i].Start();
        }
    }

    /// <summary>Threads in the team, the caller included.</summary>
    public int Size { get; }

    /// <summary>Whether waiting threads spin before they sleep.</summary>
    public bool Spins { get; }

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
        Volatile.Write(ref _pending, parts - 1);
        var generation = unchecked((int)(Volatile.Read(ref _job) >> 32) + 1);
        // A full fence on each side (this exchange, and the sleeper flag's in MemberLoop): either a member about to
        // sleep sees the new job, or this thread sees its flag and wakes it. Spinning members see the job without a lock.
        Interlocked.Exchange(ref _job, ((long)generation << 32) | (uint)parts);
        for (var part = 1; part < parts; part++)
        {
            var sleeper = _sleepers[part];
            if (Volatile.Read(ref sleeper.Asleep) != 0)
            {
                lock (sleeper)
                {
                    Monitor.Pulse(sleeper);
                }
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
                Pause(ref polls, ref spinner, _polls);
            }

            _work = null;
        }

        var failure = Interlocked.Exchange(ref _failure, null);
        failure?.Throw();
    }

    private void MemberLoop(int part)
    {
        var sleeper = _sleepers[part];
        var seen = 0L;
        while (true)
        {
            long job;
            var start = Stopwatch.GetTimestamp();
            var polls = 0;
            var spinner = default(SpinWait);
            while ((job = Volatile.Read(ref _job)) == seen && !_disposed)
            {
                // The next product of a training step comes within microseconds; after the spin window, sleep.
                if (polls >= _polls && (!Spins || Stopwatch.GetTimestamp() - start > SpinTicks))
                {
                    lock (sleeper)
                    {
                        Interlocked.Exchange(ref sleeper.Asleep, 1);
                        while (Volatile.Read(ref _job) == seen && !_disposed)
                        {
                            Monitor.Wait(sleeper);
                        }

                        Volatile.Write(ref sleeper.Asleep, 0);
                    }
                }
                else
                {
                    Pause(ref polls, ref spinner, _polls);
                }
            }

            if (_disposed)
            {
                return;
            }

            seen = job;
            if (part >= (int)(job & uint.MaxValue))
            {
                // Not in this job: the caller waits for the others only.
                continue;
            }

            try
            {
                _work!.Execute(part);
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
    private static void Pause(ref int polls, ref SpinWait spinner, int closePolls)
    {
        if (++polls < closePolls)
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

        _disposed = true;
        for (var part = 1; part < Size; part++)
        {
            lock (_sleepers[part])
            {
                Monitor.Pulse(_sleepers[part]);
            }
        }

        foreach (var member in _members)
        {
            member.Join();
        }
    }

    /// <summary>A member's lock to sleep on, and whether it sleeps (1) or may be about to.</summary>
    private sealed class Sleeper
    {
        public int Asleep;
    }
}
