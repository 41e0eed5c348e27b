using System.Diagnostics;
using Cluster.Contracts.Grains;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Cluster.WorkerSilo;

/// <summary>
/// Runs a <see cref="WorkerGrain"/> against a remote coordinator: dials it, holds the Join stream, answers
/// admissions, shards and step plans, sends heartbeats, and reconnects with backoff when the stream breaks.
/// </summary>
public sealed partial class SiloHost
{
    /// <summary>Protocol version spoken.</summary>
    public const int ProtocolVersion = 1;

    private readonly WorkerOptions _options;
    private readonly ILogger _logger;
    private readonly WorkerGrain _grain;
    private readonly WorkerMetrics? _metrics;
    private long _lastContact;

    /// <summary>Creates the host.</summary>
    public SiloHost(WorkerOptions options, WorkerGrain grain, ILogger logger, WorkerMetrics? metrics = null)
    {
        _options = options;
        _grain = grain;
        _logger = logger;
        _metrics = metrics;
    }

    /// <summary>Bytes written to the coordinator.</summary>
    public long BytesSent { get; private set; }

    /// <summary>Bytes read from the coordinator.</summary>
    public long BytesReceived { get; private set; }

    /// <summary>Steps computed by this process.</summary>
    public long StepsComputed { get; private set; }

    /// <summary>Samples computed by this process.</summary>
    public long SamplesComputed { get; private set; }

    /// <summary>True while joined and admitted.</summary>
    public bool Ready { get; private set; }

    /// <summary>
    /// Serves the coordinator until it stops the run (returns 0), or <paramref name="cancellationToken"/> is cancelled
    /// (graceful leave: the step in progress is finished and a goodbye is sent; returns 0), or the coordinator cannot
    /// be reached for <see cref="WorkerOptions.ConnectTimeout"/> (returns 2), or it refuses this worker for good: its
    /// token, its id, its protocol version, or its repeated NaN (returns 3).
    /// </summary>
    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        await using var client = new GrpcClient(_options.Coordinator, new GrpcClientOptions
        {
            Token = _options.Token,
            MaxMessageBytes = _options.MaxMessageBytes,
            TrustedCertificatePath = _options.TrustedCertificate,
        });
        var backoff = TimeSpan.FromMilliseconds(200);
        _lastContact = Stopwatch.GetTimestamp();
        while (!cancellationToken.IsCancellationRequested)
        {
            var contactBefore = _lastContact;
            string? lost = null;
            try
            {
                var outcome = await ServeAsync(client, cancellationToken).ConfigureAwait(false);
                if (outcome is not null)
                {
                    return outcome.Value;
                }

                backoff = TimeSpan.FromMilliseconds(200);
            }
            catch (GrpcStatusException ex) when (ex.Status is GrpcStatusCode.Unauthenticated or GrpcStatusCode.PermissionDenied or GrpcStatusCode.AlreadyExists or GrpcStatusCode.Unimplemented)
            {
                LogRejected(_logger, ex.Status.ToString(), ex.Message);
                return 3;
            }
            catch (GrpcStatusException ex) when (ex.Status is GrpcStatusCode.InvalidArgument or GrpcStatusCode.FailedPrecondition && _lastContact == contactBefore)
            {
                // Refused at its hello, before the coordinator said a word (an id it does not take, a protocol it does not
                // speak, a worker it will not admit again): asking again gets the same answer.
                LogRejected(_logger, ex.Status.ToString(), ex.Message);
                return 3;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // Anything else that ends a connection is retried: the coordinator may be restarting.
                lost = ex.Message;
            }

            Ready = false;
            if (_lastContact != contactBefore)
            {
                // The coordinator spoke on that connection, which held until now (a worker told to wait may hear nothing for
                // an hour): the timeout and the backoff start again.
                _lastContact = Stopwatch.GetTimestamp();
                backoff = TimeSpan.FromMilliseconds(200);
            }

            // Counted from the end of the last connection the coordinator spoke on, however it ended: a worker that trained
            // for an hour before its coordinator was killed still waits its whole timeout for the coordinator to come back.
            var left = _options.ConnectTimeout - Stopwatch.GetElapsedTime(_lastContact);
            if (left < TimeSpan.Zero)
            {
                // Said once, with the last reason, instead of a "retrying in" that does not come.
                LogGaveUp(_logger, _options.Coordinator.ToString(), _options.ConnectTimeout.TotalSeconds, lost ?? "the connection ended");
                return 2;
            }

            // The last wait ends at the timeout, so the last try is made then and not up to a backoff later.
            var delay = TimeSpan.FromTicks(Math.Min((backoff + TimeSpan.FromMilliseconds(Random.Shared.Next(100))).Ticks, left.Ticks));
            if (lost is not null)
            {
                LogDisconnected(_logger, lost, delay.TotalSeconds);
            }

            try
            {
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
        }

        return 0;
    }

    /// <summary>One connection: null when it broke (reconnect), an exit code when the run is over.</summary>
    private async Task<int?> ServeAsync(GrpcClient client, CancellationToken stopToken)
    {
        await using var call = await client.DuplexAsync(GrpcProtocol.JoinPath, CoordinatorMessage.Parser, CancellationToken.None).ConfigureAwait(false);
        // A step plan is computed as soon as its last byte is read, on the thread that read it: the loop below only
        // awaits, and the coordinator sends nothing a step needs answered while it computes.
        call.InlineReads = true;
        await call.WriteAsync(new WorkerMessage
        {
            Hello = new Hello
            {
                WorkerId = _grain.WorkerId,
                ProtocolVersion = ProtocolVersion,
                Threads = _grain.Threads,
                Backend = _grain.BackendName,
                HasLocalData = _grain.HasLocalData,
                Address = _options.Address ?? "",
                BlockTensors = true,
                SharedMemory = _options.SharedMemory && SharedTensorFile.Supported,
            },
        }, CancellationToken.None).ConfigureAwait(false);
        using var connection = new CancellationTokenSource();
        var heartbeats = HeartbeatLoopAsync(call, connection.Token);
        var weights = Array.Empty<float>();
        var indices = Array.Empty<int>();
        var rest = Array.Empty<byte>();
        using var codec = new WorkerTensorCodec();
        var goodbyeSent = false;
        using var stopRegistration = stopToken.Register(() => connection.CancelAfter(TimeSpan.FromSeconds(30)));
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(stopToken, connection.Token);
        try
        {
            while (true)
            {
                if (stopToken.IsCancellationRequested && !goodbyeSent)
                {
                    // Graceful leave between steps: say goodbye, then wait for the coordinator to close the stream.
                    await call.WriteAsync(new WorkerMessage { Goodbye = new Goodbye { Reason = "shutting down" } }, CancellationToken.None).ConfigureAwait(false);
                    call.CompleteWrites();
                    goodbyeSent = true;
                    LogLeaving(_logger, _grain.WorkerId);
                }

                ReadOnlyMemory<byte>? frame;
                try
                {
                    frame = await call.ReadFrameAsync(goodbyeSent ? connection.Token : reading.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stopToken.IsCancellationRequested && !goodbyeSent)
                {
                    continue;
                }

                if (frame is not { } bytes)
                {
                    return goodbyeSent ? 0 : null;
                }

                BytesReceived += bytes.Length + GrpcFraming.HeaderSize;
                _lastContact = Stopwatch.GetTimestamp();
                if (WireSplitter.TrySplit(bytes.Span, CoordinatorMessage.StepFieldNumber, StepPlan.WeightsFieldNumber, ref rest, out var restLength, out var tensor))
                {
                    // A step plan: the weights are decoded from the frame straight into the model's buffer.
                    if (!goodbyeSent)
                    {
                        var plan = GrpcFraming.Parse(StepPlan.Parser, rest.AsSpan(0, restLength));
                        var result = Compute(plan, bytes.Span[tensor], weights, indices, codec);
                        await SendGradientAsync(call, result, codec).ConfigureAwait(false);
                    }

                    continue;
                }

                var message = GrpcFraming.Parse(CoordinatorMessage.Parser, bytes.Span);
                switch (message.BodyCase)
                {
                    case CoordinatorMessage.BodyOneofCase.Admission:
                        await _grain.AdmitAsync(message.Admission, CancellationToken.None).ConfigureAwait(false);
                        if (codec.Admit(message.Admission, _grain.WeightsBuffer.Length) is { } unshared)
                        {
                            LogNoSharedMemory(_logger, unshared);
                        }

                        if (message.Admission.Admitted && GrpcProtocol.MessageLimitProblem(_options.MaxMessageBytes, _grain.WeightsBuffer.Length) is { } tooSmall)
                        {
                            // Every step's weights would be refused, and joining again would change nothing.
                            LogMessageLimit(_logger, tooSmall);
                            return 1;
                        }

                        if (message.Admission.Admitted)
                        {
                            weights = _grain.WeightsBuffer;
                            indices = new int[message.Admission.MaxBatch];
                            Ready = true;
                            LogAdmitted(_logger, _grain.WorkerId, message.Admission.Rank, message.Admission.RunId);
                        }
                        else
                        {
                            LogWaiting(_logger, message.Admission.Reason);
                        }

                        break;
                    case CoordinatorMessage.BodyOneofCase.Shard:
                        try
                        {
                            await _grain.LoadShardAsync(message.Shard, CancellationToken.None).ConfigureAwait(false);
                        }
                        catch (Exception ex) when (message.Shard.LoadLocally && ex is IOException or InvalidDataException)
                        {
                            // Its own --data-dir failed it (checked at start, changed since): joining again would fail the same way.
                            LogLocalDataFailed(_logger, ex.Message);
                            return 1;
                        }

                        if (message.Shard.Last)
                        {
                            await call.WriteAsync(new WorkerMessage { ShardReady = new ShardReady { Generation = message.Shard.Generation } }, CancellationToken.None).ConfigureAwait(false);
                        }

                        break;
                    case CoordinatorMessage.BodyOneofCase.Step:
                        if (goodbyeSent)
                        {
                            break;
                        }

                        var reply = Compute(message.Step, message.Step.Weights.Span, weights, indices, codec);
                        await SendGradientAsync(call, reply, codec).ConfigureAwait(false);
                        break;
                    case CoordinatorMessage.BodyOneofCase.Stop:
                        LogStopped(_logger, message.Stop.Reason, message.Stop.Completed);
                        await _grain.StopAsync(message.Stop, CancellationToken.None).ConfigureAwait(false);
                        call.CompleteWrites();
                        return message.Stop.Completed ? 0 : 1;
                }
            }
        }
        finally
        {
            await connection.CancelAsync().ConfigureAwait(false);
            try
            {
                await heartbeats.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or GrpcStatusException)
            {
            }
        }
    }

    /// <summary>Computes a plan; the result leaves the gradient out, its bytes are the grain's <see cref="WorkerGrain.GradientBytes"/>.</summary>
    private GradientResult Compute(StepPlan plan, ReadOnlySpan<byte> weightBytes, float[] weights, int[] indices, WorkerTensorCodec codec)
    {
        var started = Stopwatch.GetTimestamp();
        // A weights_shared plan is computed in place in the shared-memory file: its weights read, its gradient written
        // there, no copy either way.
        var file = plan.WeightsShared ? codec.BeginSharedStep(plan, weightBytes) : null;
        if (file is null)
        {
            codec.ReadWeights(plan, weightBytes, weights);
        }

        var n = TensorCodec.ToInts(plan.Indices, indices, "StepPlan.indices");
        var decode = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var command = new StepCommand(plan.Step, plan.Epoch, plan.ShardGeneration, file is null ? weights : ReadOnlyMemory<float>.Empty, indices.AsMemory(0, n));
        var reply = file is null ? _grain.Compute(command) : _grain.ComputeInPlace(command, file.Weights, file.Gradient);
        if (file is not null)
        {
            codec.EndSharedStep(plan);
        }

        started = Stopwatch.GetTimestamp();
        var message = new GradientResult
        {
            Step = reply.Step,
            Count = reply.Count,
            LossSum = reply.LossSum,
            Correct = reply.Correct,
            SquaredErrorSum = reply.SquaredErrorSum,
            ComputeSeconds = reply.ComputeSeconds,
        };
        message.CodecSeconds = decode + Stopwatch.GetElapsedTime(started).TotalSeconds;
        StepsComputed++;
        SamplesComputed += reply.Count;
        _metrics?.Computed(reply.Count, reply.ComputeSeconds);
        return message;
    }

    /// <summary>
    /// Sends a computed gradient: straight from the grain's gradient buffer (already the wire's bytes), or its non-zero
    /// blocks where the admission agreed on block tensors.
    /// </summary>
    private async Task SendGradientAsync(DuplexCall<CoordinatorMessage> call, GradientResult result, WorkerTensorCodec codec)
    {
        var before = call.BytesSent;
        var started = Stopwatch.GetTimestamp();
        var tensor = codec.Gradient(_grain.Gradient, _grain.GradientBytes, result);
        result.CodecSeconds += Stopwatch.GetElapsedTime(started).TotalSeconds;
        await call.WriteWithTensorAsync(WorkerMessage.GradientFieldNumber, result, GradientResult.GradientSumFieldNumber, tensor, CancellationToken.None).ConfigureAwait(false);
        BytesSent += call.BytesSent - before;
    }

    private async Task HeartbeatLoopAsync(DuplexCall<CoordinatorMessage> call, CancellationToken cancellationToken)
    {
        long sequence = 0;
        using var timer = new PeriodicTimer(_options.HeartbeatInterval);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            await call.WriteAsync(new WorkerMessage { Heartbeat = new Heartbeat { Sequence = ++sequence } }, cancellationToken).ConfigureAwait(false);
        }
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Worker {WorkerId} admitted as rank {Rank} of run {RunId}")]
    private static partial void LogAdmitted(ILogger logger, string workerId, int rank, string runId);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Waiting for admission: {Reason}")]
    private static partial void LogWaiting(ILogger logger, string reason);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "Connection to the coordinator lost ({Reason}); retrying in {Seconds:0.0} s")]
    private static partial void LogDisconnected(ILogger logger, string reason, double seconds);

    [LoggerMessage(EventId = 103, Level = LogLevel.Error, Message = "The coordinator at {Address} could not be reached for {Seconds} s ({Reason}); giving up")]
    private static partial void LogGaveUp(ILogger logger, string address, double seconds, string reason);

    [LoggerMessage(EventId = 104, Level = LogLevel.Information, Message = "Run stopped by the coordinator: {Reason} (completed: {Completed})")]
    private static partial void LogStopped(ILogger logger, string reason, bool completed);

    [LoggerMessage(EventId = 105, Level = LogLevel.Error, Message = "The coordinator refused this worker ({Status}): {Reason}")]
    private static partial void LogRejected(ILogger logger, string status, string reason);

    [LoggerMessage(EventId = 107, Level = LogLevel.Information, Message = "Tensors go over the stream: the coordinator's shared-memory file cannot be used here ({Reason})")]
    private static partial void LogNoSharedMemory(ILogger logger, string reason);

    [LoggerMessage(EventId = 109, Level = LogLevel.Error, Message = "This worker cannot take part: {Reason}")]
    private static partial void LogMessageLimit(ILogger logger, string reason);

    [LoggerMessage(EventId = 108, Level = LogLevel.Error, Message = "This worker's --data-dir cannot give its shard: {Reason}")]
    private static partial void LogLocalDataFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 106, Level = LogLevel.Information, Message = "Worker {WorkerId} leaving: goodbye sent")]
    private static partial void LogLeaving(ILogger logger, string workerId);
}
