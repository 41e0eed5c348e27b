using System.Net;
using System.Security.Cryptography;
using System.Text;
using Cluster.Contracts.Grains;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.Coordinator.Hosting;

/// <summary>
/// The coordinator's gRPC endpoint on Kestrel: HTTP/2 (cleartext, or TLS with a certificate), the Join stream and
/// GetStatus unary call, standard framing and trailers, deadlines, a message-size limit, and the cluster token.
/// The plain HTTP/1.1 endpoints (health, metrics, dashboard) are a separate <see cref="Contracts.Metrics.MetricsHost"/>.
/// </summary>
public sealed partial class CoordinatorEndpoint : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ICoordinatorGrain _grain;
    private readonly WeightDeltas _deltas = new();
    private readonly EndpointOptions _options;
    private readonly ILogger _logger;
    private readonly int _parameterCount;
    private readonly byte[]? _tokenHash;
    // Cancelled when the endpoint closes: open calls (the workers' Join streams) end with UNAVAILABLE at once, which a
    // worker retries, instead of holding the server's shutdown for its timeout.
    private readonly CancellationTokenSource _closing = new();

    private CoordinatorEndpoint(WebApplication app, ICoordinatorGrain grain, EndpointOptions options, ILogger logger, int parameterCount)
    {
        _app = app;
        _grain = grain;
        _options = options;
        _logger = logger;
        _parameterCount = parameterCount;
        _tokenHash = options.Token is null ? null : SHA256.HashData(Encoding.UTF8.GetBytes(options.Token));
    }

    /// <summary>The gRPC address actually bound (with the real port when 0 was asked).</summary>
    public Uri GrpcAddress { get; private set; } = null!;

    /// <summary>Transport figures.</summary>
    internal TransportCounters Counters { get; private set; } = null!;

    /// <summary>Starts listening.</summary>
    public static async Task<CoordinatorEndpoint> StartAsync(ICoordinatorGrain grain, EndpointOptions options, ILoggerFactory loggerFactory, int parameterCount)
    {
        // Said before listening: every gradient would be refused, and every worker would join again and again.
        if (GrpcProtocol.MessageLimitProblem(options.MaxMessageBytes, parameterCount) is { } problem)
        {
            throw new ArgumentException(problem);
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<Microsoft.Extensions.Hosting.IHostLifetime, Cluster.Contracts.Configuration.ProcessOwnedLifetime>();
        builder.Services.AddSingleton(loggerFactory);
        // 64 KiB transport blocks instead of 4 KiB: a step's tensors are read in a few system calls instead of hundreds.
        builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>, LargeBlockMemoryPoolFactory>();
        // With inline completions (see SocketScheduling) Kestrel runs its socket and pipe continuations on the I/O thread
        // as well, instead of handing each one to the thread pool.
        builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = SocketScheduling.InlineCompletions);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.Limits.MaxResponseBufferSize = null;
            kestrel.Limits.MaxRequestBufferSize = 64 * 1024 * 1024;
            kestrel.Limits.MinRequestBodyDataRate = null;
            kestrel.Limits.MinResponseDataRate = null;
            kestrel.Limits.KeepAliveTimeout = TimeSpan.FromMinutes(10);
            // Megabyte tensors: large windows so a step's weights and gradients are not throttled by flow control.
            kestrel.Limits.Http2.InitialConnectionWindowSize = 32 * 1024 * 1024;
            kestrel.Limits.Http2.InitialStreamWindowSize = 16 * 1024 * 1024;
            kestrel.Limits.Http2.MaxFrameSize = 1024 * 1024;
            kestrel.Limits.Http2.MaxStreamsPerConnection = 100;
            kestrel.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(30);
            kestrel.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(30);
            var listen = options.Listen;
            var address = listen.Host is "0.0.0.0" or "*" or "+" ? IPAddress.Any : listen.Host is "[::]" or "::" ? IPAddress.IPv6Any : IPAddress.TryParse(listen.Host, out var ip) ? ip : IPAddress.Loopback;
            kestrel.Listen(address, listen.Port, o =>
            {
                o.Protocols = HttpProtocols.Http2;
                if (options.Certificate is { } certificate)
                {
                    o.UseHttps(certificate);
                }
                else if (listen.Scheme == "https")
                {
                    throw new ArgumentException("An https:// listen address needs a certificate (--tls-cert and --tls-key).");
                }
            });
        });
        var app = builder.Build();
        var endpoint = new CoordinatorEndpoint(app, grain, options, loggerFactory.CreateLogger("Cluster.Coordinator.Endpoint"), parameterCount);
        if (options.SharedMemory)
        {
            // Files a coordinator killed between an admission and its worker's first answer left in /dev/shm.
            foreach (var orphan in SharedTensorFile.RemoveOrphans())
            {
                LogOrphanRemoved(endpoint._logger, orphan);
            }
        }

        endpoint.Counters = new TransportCounters(grain is Grains.CoordinatorGrain g ? g.Counters : new Grains.ClusterCounters());
        app.Run(endpoint.HandleAsync);
        await app.StartAsync().ConfigureAwait(false);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal))).ToList();
        endpoint.GrpcAddress = new UriBuilder(options.Certificate is null ? "http" : "https", addresses[0].Host, addresses[0].Port).Uri;
        return endpoint;
    }

    /// <summary>Handles every request on the HTTP/2 port: the gRPC methods.</summary>
    private async Task HandleAsync(HttpContext context)
    {
        if (!HttpMethods.IsPost(context.Request.Method) || context.Request.ContentType?.StartsWith(GrpcProtocol.ContentType, StringComparison.Ordinal) != true)
        {
            // The protocol answers a non-gRPC request with HTTP 415 and a status for clients that read it anyway.
            context.Response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
            context.Response.Headers[GrpcProtocol.StatusHeader] = ((int)GrpcStatusCode.Internal).ToString(System.Globalization.CultureInfo.InvariantCulture);
            context.Response.Headers[GrpcProtocol.MessageHeader] = GrpcProtocol.EncodeMessage($"Content-Type '{context.Request.ContentType}' is not supported");
            return;
        }

        context.Response.ContentType = GrpcProtocol.ContentType;
        var status = GrpcStatusCode.Ok;
        var message = "";
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _closing.Token);
        try
        {
            if (context.Request.Headers.TryGetValue(GrpcProtocol.TimeoutHeader, out var timeoutValue))
            {
                var timeout = GrpcProtocol.ParseTimeout(timeoutValue.ToString())
                    ?? throw new GrpcStatusException(GrpcStatusCode.Internal, $"Malformed grpc-timeout '{timeoutValue}'.");
                deadline.CancelAfter(timeout);
            }

            if (context.Request.Headers.TryGetValue(GrpcProtocol.EncodingHeader, out var encoding) && encoding != "identity")
            {
                // Messages are never compressed here; a compressed one is refused when it arrives.
                LogCall(_logger, context.Request.Path, $"grpc-encoding {encoding} announced");
            }

            switch (context.Request.Path.Value)
            {
                case GrpcProtocol.GetStatusPath:
                    await GetStatusAsync(context, deadline.Token).ConfigureAwait(false);
                    break;
                case GrpcProtocol.JoinPath:
                    Authenticate(context);
                    await JoinAsync(context, deadline.Token).ConfigureAwait(false);
                    break;
                default:
                    throw new GrpcStatusException(GrpcStatusCode.Unimplemented, $"Method not found: {context.Request.Path}");
            }
        }
        catch (GrpcStatusException ex)
        {
            status = ex.Status;
            message = ex.Message;
        }
        catch (OperationCanceledException) when (_closing.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested)
        {
            status = GrpcStatusCode.Unavailable;
            message = "The coordinator is shutting down.";
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested)
        {
            status = GrpcStatusCode.DeadlineExceeded;
            message = "Deadline exceeded";
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }
        catch (IOException) when (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        // A call this endpoint ends because it is closing was refused by no one: not counted, not logged as a failure.
        if (status != GrpcStatusCode.Ok && !_closing.IsCancellationRequested)
        {
            Interlocked.Increment(ref Counters.RejectedCalls);
            LogCallFailed(_logger, context.Request.Path, status.ToString(), message);
        }

        WriteStatus(context, status, message);
    }

    private static void WriteStatus(HttpContext context, GrpcStatusCode status, string message)
    {
        var code = ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (!context.Response.HasStarted)
        {
            // Trailers-only response: the status travels in the headers of an empty body.
            context.Response.Headers[GrpcProtocol.StatusHeader] = code;
            if (message.Length > 0)
            {
                context.Response.Headers[GrpcProtocol.MessageHeader] = GrpcProtocol.EncodeMessage(message);
            }

            return;
        }

        context.Response.AppendTrailer(GrpcProtocol.StatusHeader, code);
        if (message.Length > 0)
        {
            context.Response.AppendTrailer(GrpcProtocol.MessageHeader, GrpcProtocol.EncodeMessage(message));
        }
    }

    private void Authenticate(HttpContext context)
    {
        if (_tokenHash is null)
        {
            return;
        }

        var header = context.Request.Headers.Authorization.ToString();
        const string prefix = "Bearer ";
        if (!header.StartsWith(prefix, StringComparison.Ordinal))
        {
            throw new GrpcStatusException(GrpcStatusCode.Unauthenticated, "Missing cluster token: send 'authorization: Bearer <token>' (workers: --token-file or CLUSTER_TOKEN).");
        }

        // Hashes of equal length compared in constant time: neither length nor content leaks through timing.
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(header[prefix.Length..].Trim()));
        if (!CryptographicOperations.FixedTimeEquals(presented, _tokenHash))
        {
            throw new GrpcStatusException(GrpcStatusCode.Unauthenticated, "Wrong cluster token.");
        }
    }

    private async Task GetStatusAsync(HttpContext context, CancellationToken cancellationToken)
    {
        var request = await ReadAsync(context, StatusRequest.Parser, cancellationToken).ConfigureAwait(false)
            ?? throw new GrpcStatusException(GrpcStatusCode.Internal, "GetStatus needs one request message.");
        _ = request;
        if (await ReadAsync(context, StatusRequest.Parser, cancellationToken).ConfigureAwait(false) is not null)
        {
            throw new GrpcStatusException(GrpcStatusCode.Internal, "GetStatus takes exactly one request message.");
        }

        var reply = await _grain.GetStatusAsync().ConfigureAwait(false);
        await GrpcFraming.WriteAsync(context.Response.Body, reply, cancellationToken).ConfigureAwait(false);
    }

    private async Task JoinAsync(HttpContext context, CancellationToken cancellationToken)
    {
        // Frames are read where they lie in Kestrel's request pipe: a gradient is copied once, into its worker's buffer.
        var frames = new PipeFrameReader(context.Request.BodyReader, _options.MaxMessageBytes);
        var firstFrame = await frames.ReadAsync(cancellationToken).ConfigureAwait(false);
        var first = firstFrame is { } bytes ? GrpcFraming.Parse(WorkerMessage.Parser, bytes) : null;
        if (firstFrame is { } counted)
        {
            Interlocked.Add(ref Counters.BytesReceived, counted.Length + GrpcFraming.HeaderSize);
        }

        if (first?.BodyCase != WorkerMessage.BodyOneofCase.Hello)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "A Join stream must start with a hello.");
        }

        var hello = first.Hello;
        if (string.IsNullOrEmpty(hello.Address))
        {
            hello.Address = context.Connection.RemoteIpAddress?.ToString() ?? "";
        }

        await context.Response.StartAsync(cancellationToken).ConfigureAwait(false);
        // Shared memory is offered only to a worker that asks and connects over loopback: one on another machine could not
        // open the file, and would only hold its memory until its first answer.
        var offerShared = _options.SharedMemory && hello.SharedMemory && SharedTensorFile.Supported
            && context.Connection.RemoteIpAddress is { } peer && IPAddress.IsLoopback(peer);
        var worker = new RemoteWorker(hello.WorkerId, context.Response.BodyWriter, Counters, _parameterCount, _deltas, offerShared);
        await _grain.JoinAsync(hello, worker, cancellationToken).ConfigureAwait(false);
        var reason = "the worker closed its stream";
        var graceful = false;
        var rest = Array.Empty<byte>();
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, worker.Dropped);
        try
        {
            while (true)
            {
                if (await frames.ReadAsync(reading.Token).ConfigureAwait(false) is not { } frame)
                {
                    break;
                }

                Interlocked.Add(ref Counters.BytesReceived, frame.Length + GrpcFraming.HeaderSize);
                await _grain.HeartbeatAsync(hello.WorkerId).ConfigureAwait(false);
                if (WireSplitter.TrySplit(frame, WorkerMessage.GradientFieldNumber, GradientResult.GradientSumFieldNumber, ref rest, out var restLength, out var tensor))
                {
                    // A gradient: its tensor is decoded from the request pipe straight into the worker's buffer.
                    var header = GrpcFraming.Parse(GradientResult.Parser, rest.AsSpan(0, restLength));
                    if (worker.DeliverGradient(header, tensor) is { } late)
                    {
                        LogCall(_logger, context.Request.Path, late);
                    }

                    continue;
                }

                var message = GrpcFraming.Parse(WorkerMessage.Parser, frame);
                switch (message.BodyCase)
                {
                    case WorkerMessage.BodyOneofCase.Heartbeat:
                        continue;
                    case WorkerMessage.BodyOneofCase.Goodbye:
                        graceful = true;
                        reason = "goodbye: " + message.Goodbye.Reason;
                        await _grain.LeaveAsync(hello.WorkerId, reason, graceful: true).ConfigureAwait(false);
                        continue;
                    case WorkerMessage.BodyOneofCase.Hello:
                        throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "A second hello on one stream.");
                }

                if (worker.Deliver(message) is { } note)
                {
                    LogCall(_logger, context.Request.Path, note);
                }
            }
        }
        catch (GrpcStatusException ex)
        {
            reason = $"{ex.Status}: {ex.Message}";
            throw;
        }
        catch (OperationCanceledException) when (worker.DroppedReason is { } dropped && !cancellationToken.IsCancellationRequested)
        {
            reason = "dropped: " + dropped;
            throw new GrpcStatusException(GrpcStatusCode.Aborted, $"Dropped from the run ({dropped}); join again to take part.");
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            reason = "the stream was cut";
            throw;
        }
        finally
        {
            worker.Break(reason);
            if (!graceful && !worker.Stopped)
            {
                await _grain.LeaveAsync(hello.WorkerId, reason, graceful: false).ConfigureAwait(false);
            }
        }
    }

    private async Task<T?> ReadAsync<T>(HttpContext context, Google.Protobuf.MessageParser<T> parser, CancellationToken cancellationToken)
        where T : class, Google.Protobuf.IMessage<T>
    {
        var message = await GrpcFraming.ReadAsync(context.Request.Body, parser, _options.MaxMessageBytes, cancellationToken).ConfigureAwait(false);
        if (message is not null)
        {
            Interlocked.Add(ref Counters.BytesReceived, message.CalculateSize() + GrpcFraming.HeaderSize);
        }

        return message;
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _closing.CancelAsync().ConfigureAwait(false);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        }
        finally
        {
            await _app.DisposeAsync().ConfigureAwait(false);
            _closing.Dispose();
        }
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Call {Path} ended with {Status}: {Reason}")]
    private static partial void LogCallFailed(ILogger logger, string path, string status, string reason);

    [LoggerMessage(EventId = 22, Level = LogLevel.Information, Message = "Removed {Path}, a shared-memory file left by a coordinator that is no longer running")]
    private static partial void LogOrphanRemoved(ILogger logger, string path);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Call {Path}: {Note}")]
    private static partial void LogCall(ILogger logger, string path, string note);
}
