using System.Diagnostics;

namespace Cluster.WorkerSilo;

/// <summary>
/// A thread of its own for an in-process worker's steps, one at a time. Between steps it spins for a short while
/// before it sleeps, so the next step, which usually follows within a tenth of a millisecond, starts at once instead of
/// after a sleeping thread-pool thread wakes (0.1-0.2 ms on a virtual machine's idle core, the whole of a small step).
/// A step's task completes with its continuations sent to the thread pool, never run on this thread: a caller that
/// resumed here would hold the thread its next step needs.
/// </summary>
internal sealed class ComputeLane : IDisposable
{
    /// <summary>How long the thread spins for the next step before it sleeps.</summary>
    internal static readonly TimeSpan SpinBeforeSleep = TimeSpan.FromMilliseconds(1);

    private readonly long _spinTicks;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _signal = new(false);
    private Work? _pending;
    private volatile bool _disposed;

    /// <summary>Starts the thread, named <paramref name="name"/>, which spins for <paramref name="spinBeforeSleep"/> (default <see cref="SpinBeforeSleep"/>) between steps.</summary>
    public ComputeLane(string name, TimeSpan? spinBeforeSleep = null)
    {
        _spinTicks = (long)((spinBeforeSleep ?? SpinBeforeSleep).TotalSeconds * Stopwatch.Frequency);
        _thread = new Thread(Loop) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the lane's thread and gives its result; <paramref name="after"/> runs there too, once
    /// it is done and before the task completes, whatever the outcome. One step waits at a time: a call made while the
    /// previous step has not yet started is refused (a worker's turn keeps its calls from overlapping at all).
    /// </summary>
    public Task<T> Run<T>(Func<T> work, Action after)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var item = new Work<T>(work, after);
        if (Interlocked.CompareExchange(ref _pending, item, null) is not null)
        {
            throw new InvalidOperationException("The compute lane already holds a step that has not started.");
        }

        _signal.Set();
        return item.Task;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _signal.Set();
        if (Thread.CurrentThread != _thread)
        {
            _thread.Join();
        }

        // A step handed over just before the lane stopped is not lost silently.
        Interlocked.Exchange(ref _pending, null)?.Abandon();
        _signal.Dispose();
    }

    private void Loop()
    {
        while (Take() is { } work)
        {
            work.Execute();
        }
    }

    private Work? Take()
    {
        var spinUntil = Stopwatch.GetTimestamp() + _spinTicks;
        var spinner = default(SpinWait);
        while (true)
        {
            if (Interlocked.Exchange(ref _pending, null) is { } work)
            {
                return work;
            }

            if (_disposed)
            {
                return null;
            }

            if (Stopwatch.GetTimestamp() < spinUntil)
            {
                // Yields now and then, so a thread waiting for this core gets it (more workers than cores).
                spinner.SpinOnce(sleep1Threshold: -1);
                continue;
            }

            // Reset, then look again, then sleep: a step handed over in between has set the signal after the reset.
            _signal.Reset();
            if (Volatile.Read(ref _pending) is null && !_disposed)
            {
                _signal.Wait();
            }

            spinUntil = Stopwatch.GetTimestamp() + _spinTicks;
            spinner.Reset();
        }
    }

    private abstract class Work
    {
        public abstract void Execute();

        public abstract void Abandon();
    }

    private sealed class Work<T>(Func<T> work, Action after) : Work
    {
        private readonly TaskCompletionSource<T> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<T> Task => _completion.Task;

        public override void Execute()
        {
            T result;
            try
            {
                result = work();
            }
            catch (Exception ex)
            {
                after();
                _completion.SetException(ex);
                return;
            }

            after();
            _completion.SetResult(result);
        }

        public override void Abandon()
        {
            after();
            _completion.SetException(new ObjectDisposedException(nameof(ComputeLane), "The worker was disposed before its step started."));
        }
    }
}
