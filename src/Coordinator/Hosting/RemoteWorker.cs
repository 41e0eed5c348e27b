using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
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
    private readonly PipeWriter _output;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly TransportCounters _counters;
    private readonly float[] _gradient;
    private readonly WeightDeltas _deltas;
    private readonly bool _offerShared;
    private volatile bool _blocks;
    // The shared-memory file offered on this stream: null when none was offered, the worker could not use it, or the
    // stream is gone. In use once the worker sent a gradient through it; only then do its plans carry weights_shared.
    private SharedTensorFile? _shared;
    private volatile bool _sharedInUse;
    private volatile bool _sharedDeclined;
    private long _held = -1;
    private TaskCompletionSource<ShardReady>? _shardReady;
    private TaskCompletionSource<GradientResult>? _gradientResult;
    private long _expectedStep = -1;
    private long _expectedGeneration = -1;
    private int _expectedCount;
    private volatile string? _brokenReason;
    private volatile bool _refusedNonFinite;
    private readonly CancellationTokenSource _dropped = new();
    private volatile string? _droppedReason;
    private double _decodeSeconds;

    /// <summary>
    /// Creates the reference; a worker whose admission agrees on block tensors gets weight deltas from <paramref name="deltas"/>,
    /// and with <paramref name="offerSharedMemory"/> its admissions offer a shared-memory file for the tensors.
    /// </summary>
    public RemoteWorker(string workerId, PipeWriter output, TransportCounters counters, int parameterCount, WeightDeltas deltas, bool offerSharedMemory = false)
    {
        _deltas = deltas;
        _offerShared = offerSharedMemory;
        WorkerId = workerId;
        _output = output;
        _counters = counters;
        _gradient = new float[parameterCount];
    }

    public string WorkerId { get; }

    /// <inheritdoc/>
    public bool ChecksFinite => true;


    public Task AdmitAsync(Admission admission, CancellationToken cancellationToken)
    {
        // The worker forgets which weights it holds on an admission, and so does this side.
        Volatile.Write(ref _held, -1);
        _blocks = admission.Admitted && admission.BlockTensors;
        if (admission.Admitted && Offer() is { } file)
        {
            admission = admission.Clone();
            admission.SharedMemoryPath = file.FilePath;
            admission.SharedMemoryNonce = ByteString.CopyFrom(file.Nonce);
        }

        return WriteAsync(new CoordinatorMessage { Admission = admission }, cancellationToken);
    }

    /// <summary>
    /// The file to offer in an admission: the stream's file (a re-admission offers the same one, which the worker keeps
    /// by its nonce), created on the first admission; null where none is offered, the worker could not use the last
    /// offer, or /dev/shm has no room.
    /// </summary>
    private SharedTensorFile? Offer()
    {
        if (!_offerShared || _sharedDeclined || _brokenReason is not null)
        {
            return null;
        }

        if (Volatile.Read(ref _shared) is { } file)
        {
            return file;
        }

        try
        {
            file = SharedTensorFile.Create(_gradient.Length);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _sharedDeclined = true;
            return null;
        }

        Volatile.Write(ref _shared, file);
        if (_brokenReason is not null)
        {
            CloseShared();
            return null;
        }

        return file;
    }

    public async Task LoadShardAsync(ShardData chunk, CancellationToken cancellationToken)
    {
        TaskCompletionSource<ShardReady>? ready = null;
        if (chunk.Last)
        {
            ready = new TaskCompletionSource<ShardReady>(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _expectedGeneration, chunk.Generation);
            Volatile.Write(ref _shardReady, ready);
        }

        await WriteAsync(new CoordinatorMessage { Shard = chunk }, cancellationToken).ConfigureAwait(false);
        if (ready is not null)
        {
            await ready.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
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
            Indices = TensorCodec.FromInts(command.Indices.Span),
        };
        var pending = new TaskCompletionSource<GradientResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _expectedStep, command.Step);
        Volatile.Write(ref _expectedCount, command.Indices.Length);
        Volatile.Write(ref _gradientResult, pending);
        var shared = _sharedInUse ? Volatile.Read(ref _shared) : null;
        var (mask, kept) = shared is null ? Delta(plan, command) : (ReadOnlyMemory<byte>.Empty, 0);
        var encode = Stopwatch.GetElapsedTime(started).TotalSeconds;
        // The weights are copied from the coordinator's own buffer straight into the stream's pipe, once per worker, or
        // into the worker's shared-memory file, the plan then saying so.
        try
        {
            if (shared is not null)
            {
                started = Stopwatch.GetTimestamp();
                shared.WriteWeights(command.Step, command.Weights.Span);
                Interlocked.Add(ref _counters.SharedMemoryBytes, command.Weights.Length * sizeof(float));
                encode += Stopwatch.GetElapsedTime(started).TotalSeconds;
                plan.WeightsShared = true;
                await WriteAsync(new CoordinatorMessage { Step = plan }, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await WriteAsync(output => mask.IsEmpty
                ? GrpcFraming.WriteWithTensorAsync(output, CoordinatorMessage.StepFieldNumber, plan, StepPlan.WeightsFieldNumber, command.Weights, cancellationToken)
                : GrpcFraming.WriteWithBlocksAsync(output, CoordinatorMessage.StepFieldNumber, plan, StepPlan.WeightsFieldNumber, command.Weights, mask, kept, cancellationToken), cancellationToken).ConfigureAwait(false);
            }

            Volatile.Write(ref _held, command.Step);
        }
        catch
        {
            Volatile.Write(ref _held, -1);
            throw;
        }

        GradientResult result;
        try
        {
            result = await pending.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_refusedNonFinite)
        {
            // The refusal also ends the membership, which cancels this call: the step still learns the reason.
            throw new NonFiniteAnswerException($"Worker {WorkerId} disconnected: {_brokenReason ?? "its answer was NaN or infinite"}");
        }

        var decode = _decodeSeconds;
        return new GradientReply(result.Step, _gradient, result.Count, result.LossSum, result.Correct, result.SquaredErrorSum, result.ComputeSeconds, result.CodecSeconds + encode + decode);
    }

    /// <summary>
    /// Fills in the plan's block delta where the worker agreed on block tensors and holds the previous step's weights;
    /// returns the plan's copy of the mask (empty: the whole buffer goes) and the values it marks.
    /// </summary>
    private (ReadOnlyMemory<byte> Mask, int Kept) Delta(StepPlan plan, StepCommand command)
    {
        if (!_blocks)
        {
            return (ReadOnlyMemory<byte>.Empty, command.Weights.Length);
        }

        var (shared, baseStep, kept) = _deltas.For(command.Step, command.Weights.Span, Volatile.Read(ref _held));
        if (shared.IsEmpty)
        {
            return (ReadOnlyMemory<byte>.Empty, command.Weights.Length);
        }

        // The plan's own copy of the mask also drives the write, so a later step's mask cannot reach this plan's bytes.
        plan.WeightsMask = ByteString.CopyFrom(shared.Span);
        plan.WeightsBase = baseStep;
        return (plan.WeightsMask.Memory, kept);
    }

    public Task StopAsync(Stop stop, CancellationToken cancellationToken)
    {
        Stopped = true;
        return WriteAsync(new CoordinatorMessage { Stop = stop }, cancellationToken);
    }

    /// <summary>True once the coordinator told this worker the run is over (its stream closing then is no failure).</summary>
    public bool Stopped { get; private set; }

    /// <summary>
    /// Routes a message that came up the stream. A message that breaks the protocol throws the status the stream ends
    /// with (the worker is then dropped and its part recomputed elsewhere); a late gradient is dropped and returns a note.
    /// </summary>
    public string? Deliver(WorkerMessage message)
    {
        switch (message.BodyCase)
        {
            case WorkerMessage.BodyOneofCase.ShardReady:
                var ready = Volatile.Read(ref _shardReady);
                if (ready is null || message.ShardReady.Generation != Volatile.Read(ref _expectedGeneration))
                {
                    throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, $"Shard generation {message.ShardReady.Generation} acknowledged, but it was not the shard being sent.");
                }

                Interlocked.Exchange(ref _shardReady, null)?.TrySetResult(message.ShardReady);
                return null;
            case WorkerMessage.BodyOneofCase.Gradient:
                return DeliverGradient(message.Gradient, new ReadOnlySequence<byte>(message.Gradient.GradientSum.Memory));
            default:
                throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, $"Unexpected {message.BodyCase} message on the Join stream.");
        }
    }

    /// <summary>
    /// Accepts a gradient whose tensor bytes are <paramref name="sum"/> (the message's own field, or the bytes split from
    /// its frame where they lie in the request pipe): decoded into this worker's gradient buffer, checked, and handed to
    /// the step waiting for it.
    /// </summary>
    public string? DeliverGradient(GradientResult gradient, in ReadOnlySequence<byte> sum)
    {
        var expected = Volatile.Read(ref _expectedStep);
        if (gradient.Step < expected)
        {
            // A late answer for an older weight version: dropped, never applied.
            _counters.Late();
            return $"stale gradient for step {gradient.Step} dropped (step {expected} is current)";
        }

        var pending = Volatile.Read(ref _gradientResult);
        if (pending is null || gradient.Step != expected)
        {
            throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, $"Gradient for step {gradient.Step} was not asked for (replayed or from the future).");
        }

        if (!gradient.GradientMask.IsEmpty && !_blocks)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "A block-sparse gradient, but the admission did not agree on block tensors.");
        }

        var shared = Volatile.Read(ref _shared);
        if (gradient.GradientShared)
        {
            if (shared is null)
            {
                throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "A gradient in shared memory, but no shared-memory file was offered on this stream.");
            }

            if (sum.Length != 0 || !gradient.GradientMask.IsEmpty)
            {
                throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "A gradient in shared memory also carries gradient bytes or a mask.");
            }
        }
        else if (gradient.GradientMask.IsEmpty && sum.Length != _gradient.Length * sizeof(float))
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"Gradient of {sum.Length} bytes; the model has {_gradient.Length} parameters ({_gradient.Length * sizeof(float)} bytes).");
        }

        if (gradient.Count != Volatile.Read(ref _expectedCount))
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"Gradient covers {gradient.Count} samples; {Volatile.Read(ref _expectedCount)} were given.");
        }

        if (gradient.Correct < 0 || gradient.Correct > gradient.Count)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"Accuracy count {gradient.Correct} of {gradient.Count} samples is impossible; rejected.");
        }

        if (!double.IsFinite(gradient.LossSum) || !double.IsFinite(gradient.SquaredErrorSum))
        {
            _refusedNonFinite = true;
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "Loss contains NaN or infinity; rejected.");
        }

        // Decoded before it is checked: only the step that asked for this gradient reads the buffer, and only after the
        // result below is set, so a rejected gradient (the step is then recomputed elsewhere) is never read.
        var started = Stopwatch.GetTimestamp();
        if (gradient.GradientShared)
        {
            // A gradient marked with another step throws before anything is copied.
            shared!.ReadGradient(gradient.Step, _gradient);
            Interlocked.Add(ref _counters.SharedMemoryBytes, _gradient.Length * sizeof(float));
        }
        else if (gradient.GradientMask.IsEmpty)
        {
            sum.CopyTo(MemoryMarshal.AsBytes(_gradient.AsSpan()));
        }
        else
        {
            // Only the non-zero blocks came; the rest are zeros. A mask or length that does not fit throws first.
            TensorBlocks.Scatter(sum, gradient.GradientMask.Span, _gradient, clearUnmarked: true, "GradientResult.gradient_sum");
        }

        if (!float.IsFinite(System.Numerics.Tensors.TensorPrimitives.Sum(_gradient)))
        {
            _refusedNonFinite = true;
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "Gradient contains NaN or infinity; rejected.");
        }

        if (gradient.GradientShared && !_sharedInUse)
        {
            // The worker mapped the file (and removed its name): weights go through it from the next step.
            _sharedInUse = true;
            shared!.Unlink();
        }
        else if (!gradient.GradientShared && shared is not null && !_sharedInUse)
        {
            // The worker answered without it: it could not open the file (another machine or container, another user).
            _sharedDeclined = true;
            CloseShared();
        }

        _decodeSeconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        Interlocked.Exchange(ref _gradientResult, null)?.TrySetResult(gradient);
        return null;
    }

    /// <summary>Cancelled when the coordinator drops this worker: its stream's read loop then ends the stream.</summary>
    public CancellationToken Dropped => _dropped.Token;

    /// <summary>Why the coordinator dropped this worker; null while it has not.</summary>
    public string? DroppedReason => _droppedReason;

    /// <inheritdoc/>
    public void Drop(string reason)
    {
        _droppedReason ??= reason;
        // Asynchronously: the read loop must not resume on the caller's thread, which may be the step's.
        _ = _dropped.CancelAsync();
    }

    /// <summary>Fails whatever is awaited: the stream is gone.</summary>
    public void Break(string reason)
    {
        _brokenReason = reason;
        CloseShared();
        var error = new GrpcStatusException(GrpcStatusCode.Unavailable, $"Worker {WorkerId} disconnected: {reason}");
        Interlocked.Exchange(ref _shardReady, null)?.TrySetException(error);
        // The step learns why: a NaN answer may be the model's (every member sends one), not this worker's fault.
        Interlocked.Exchange(ref _gradientResult, null)?.TrySetException(_refusedNonFinite ? new NonFiniteAnswerException($"Worker {WorkerId} disconnected: {reason}") : error);
    }

    /// <summary>Removes and unmaps the shared-memory file, if any (a copy under way on another thread finishes first).</summary>
    private void CloseShared()
    {
        if (Interlocked.Exchange(ref _shared, null) is { } file)
        {
            file.Unlink();
            file.Dispose();
        }
    }

    private Task WriteAsync(CoordinatorMessage message, CancellationToken cancellationToken) =>
        WriteAsync(output => GrpcFraming.WriteAsync(output, message, cancellationToken), cancellationToken);

    private async Task WriteAsync(Func<PipeWriter, ValueTask<int>> write, CancellationToken cancellationToken)
    {
        if (_brokenReason is { } reason)
        {
            throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"Worker {WorkerId} disconnected: {reason}");
        }

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var written = await write(_output).ConfigureAwait(false);
            Interlocked.Add(ref _counters.BytesSent, written);
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

/// <summary>Bytes and events counted by the transport.</summary>
internal sealed class TransportCounters(Grains.ClusterCounters events)
{
    public void Late() => events.Late();

    public long BytesSent;
    public long BytesReceived;
    public long SharedMemoryBytes;
    public long RejectedCalls;
}
