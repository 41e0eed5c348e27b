using System.Diagnostics;
using Cluster.Contracts.Grains;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Cluster.Coordinator.Grains;
using Google.Protobuf;

namespace Cluster.Coordinator.Hosting;

/// <summary>
/// The coordinator's reference to a worker in another process: grain calls become messages on the worker's Join
/// stream, and the replies that come back on it complete them.
/// </summary>
internal sealed class RemoteWorker : IWorkerGrain, IHeartbeatingWorker
{
    private readonly Stream _output;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly WeightsCache _weights;
    private readonly TransportCounters _counters;
    private readonly float[] _gradient;
    private TaskCompletionSource<ShardReady>? _shardReady;
    private TaskCompletionSource<GradientResult>? _gradientResult;
    private long _expectedStep = -1;
    private volatile string? _brokenReason;

    public RemoteWorker(string workerId, Stream output, WeightsCache weights, TransportCounters counters, int parameterCount)
    {
        WorkerId = workerId;
        _output = output;
        _weights = weights;
        _counters = counters;
        _gradient = new float[parameterCount];
    }

    public string WorkerId { get; }

    /// <summary>Gradients that arrived for a step other than the one awaited (dropped, never applied).</summary>
    public long StaleGradients { get; private set; }

    public Task AdmitAsync(Admission admission, CancellationToken cancellationToken) =>
        WriteAsync(new CoordinatorMessage { Admission = admission }, cancellationToken);

    public async Task LoadShardAsync(ShardData chunk, CancellationToken cancellationToken)
    {
        TaskCompletionSource<ShardReady>? ready = null;
        if (chunk.Last)
        {
            ready = new TaskCompletionSource<ShardReady>(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _shardReady, ready);
        }

        await WriteAsync(new CoordinatorMessage { Shard = chunk }, cancellationToken).ConfigureAwait(false);
        if (ready is not null)
        {
            var ack = await ready.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (ack.Generation != chunk.Generation)
            {
                throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"Shard acknowledged for generation {ack.Generation}, sent {chunk.Generation}.");
            }
        }
    }

    public async Task<GradientReply> ComputeAsync(StepCommand command, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var plan = new StepPlan
        {
            Step = command.Step,
            Epoch = command.Epoch,
            ShardGeneration = command.ShardGeneration,
            Weights = _weights.Get(command.Step, command.Weights.Span),
            Indices = TensorCodec.FromInts(command.Indices.Span),
        };
        var pending = new TaskCompletionSource<GradientResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _expectedStep, command.Step);
        Volatile.Write(ref _gradientResult, pending);
        var encode = Stopwatch.GetElapsedTime(started).TotalSeconds;
        await WriteAsync(new CoordinatorMessage { Step = plan }, cancellationToken).ConfigureAwait(false);
        var result = await pending.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        started = Stopwatch.GetTimestamp();
        TensorCodec.ToFloats(result.GradientSum, _gradient, "GradientResult.gradient_sum");
        var decode = Stopwatch.GetElapsedTime(started).TotalSeconds;
        return new GradientReply(result.Step, _gradient, result.Count, result.LossSum, result.Correct, result.SquaredErrorSum, result.ComputeSeconds, result.CodecSeconds + encode + decode);
    }

    public Task StopAsync(Stop stop, CancellationToken cancellationToken) =>
        WriteAsync(new CoordinatorMessage { Stop = stop }, cancellationToken);

    /// <summary>Routes a message that came up the stream; returns false for a message that breaks the protocol.</summary>
    public bool Deliver(WorkerMessage message, out string? problem)
    {
        problem = null;
        switch (message.BodyCase)
        {
            case WorkerMessage.BodyOneofCase.ShardReady:
                var ready = Interlocked.Exchange(ref _shardReady, null);
                if (ready is null)
                {
                    problem = "a shard acknowledgement nobody asked for";
                    return false;
                }

                ready.TrySetResult(message.ShardReady);
                return true;
            case WorkerMessage.BodyOneofCase.Gradient:
                if (message.Gradient.Step != Volatile.Read(ref _expectedStep))
                {
                    // A late answer for an older weight version: dropped, never applied.
                    StaleGradients++;
                    _counters.StaleGradients++;
                    problem = $"stale gradient for step {message.Gradient.Step} (awaiting {Volatile.Read(ref _expectedStep)}) dropped";
                    return true;
                }

                var pending = Interlocked.Exchange(ref _gradientResult, null);
                if (pending is null)
                {
                    problem = "a gradient nobody asked for";
                    return false;
                }

                pending.TrySetResult(message.Gradient);
                return true;
            default:
                problem = $"unexpected {message.BodyCase} message";
                return false;
        }
    }

    /// <summary>Fails whatever is awaited: the stream is gone.</summary>
    public void Break(string reason)
    {
        _brokenReason = reason;
        var error = new GrpcStatusException(GrpcStatusCode.Unavailable, $"Worker {WorkerId} disconnected: {reason}");
        Interlocked.Exchange(ref _shardReady, null)?.TrySetException(error);
        Interlocked.Exchange(ref _gradientResult, null)?.TrySetException(error);
    }

    private async Task WriteAsync(CoordinatorMessage message, CancellationToken cancellationToken)
    {
        if (_brokenReason is { } reason)
        {
            throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"Worker {WorkerId} disconnected: {reason}");
        }

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var size = message.CalculateSize();
            await GrpcFraming.WriteAsync(_output, message, cancellationToken).ConfigureAwait(false);
            Interlocked.Add(ref _counters.BytesSent, size + GrpcFraming.HeaderSize);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
        {
            throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"Worker {WorkerId}: the stream broke ({ex.Message}).", ex);
        }
        finally
        {
            _writeLock.Release();
        }
    }
}

/// <summary>The weights of the current step encoded once and shared by every worker's plan.</summary>
internal sealed class WeightsCache
{
    private readonly Lock _lock = new();
    private readonly byte[][] _buffers = [[], []];
    private long _step = -1;
    private ByteString _bytes = ByteString.Empty;

    public ByteString Get(long step, ReadOnlySpan<float> weights)
    {
        lock (_lock)
        {
            if (_step != step || _bytes.Length != weights.Length * sizeof(float))
            {
                // Two buffers in turn: every plan of the previous step was written out before this step began,
                // and a retried step re-encodes into the other buffer.
                var slot = (int)(step & 1);
                if (_buffers[slot].Length != weights.Length * sizeof(float))
                {
                    _buffers[slot] = new byte[weights.Length * sizeof(float)];
                }

                TensorCodec.CopyFloats(weights, _buffers[slot]);
                _bytes = TensorCodec.Wrap(_buffers[slot], _buffers[slot].Length);
                _step = step;
            }

            return _bytes;
        }
    }
}

/// <summary>Bytes and events counted by the transport.</summary>
internal sealed class TransportCounters
{
    public long BytesSent;
    public long BytesReceived;
    public long StaleGradients;
    public long RejectedCalls;
}
