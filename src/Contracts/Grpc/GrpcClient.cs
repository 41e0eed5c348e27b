using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;

namespace Cluster.Contracts.Grpc;

/// <summary>How a <see cref="GrpcClient"/> connects.</summary>
public sealed record GrpcClientOptions
{
    /// <summary>Bearer token sent on every call, or null.</summary>
    public string? Token { get; init; }

    /// <summary>Largest message accepted from the server.</summary>
    public int MaxMessageBytes { get; init; } = GrpcProtocol.DefaultMaxMessageBytes;

    /// <summary>Certificate (PEM or DER) trusted as the server's issuer, for self-signed TLS; null uses the system store.</summary>
    public string? TrustedCertificatePath { get; init; }

    /// <summary>Time allowed to open the connection.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// A minimal gRPC client over HttpClient and HTTP/2 (h2c prior knowledge for http://, ALPN for https://): unary calls
/// and bidirectional streams with standard framing, deadlines and trailers.
/// </summary>
public sealed class GrpcClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly GrpcClientOptions _options;

    /// <summary>Creates a client for the server at <paramref name="address"/>.</summary>
    public GrpcClient(Uri address, GrpcClientOptions? options = null)
    {
        if (address.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException($"The coordinator address must be http:// or https://, not '{address}'.", nameof(address));
        }

        _options = options ?? new GrpcClientOptions();
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = _options.ConnectTimeout,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = TimeSpan.FromSeconds(20),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(20),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            InitialHttp2StreamWindowSize = 8 * 1024 * 1024,
            EnableMultipleHttp2Connections = false,
            AutomaticDecompression = DecompressionMethods.None,
        };
        if (_options.TrustedCertificatePath is { } path)
        {
            var trusted = X509CertificateLoader.LoadCertificateFromFile(path);
            handler.SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, errors) => Validate(trusted, certificate, errors),
            };
        }

        _http = new HttpClient(handler) { BaseAddress = address, Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>A unary call.</summary>
    public async Task<TResponse> UnaryAsync<TResponse>(string path, IMessage request, MessageParser<TResponse> parser, TimeSpan? deadline = null, CancellationToken cancellationToken = default)
        where TResponse : class, IMessage<TResponse>
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (deadline is { } d)
        {
            timeout.CancelAfter(d);
        }

        using var message = NewRequest(path, deadline);
        message.Content = new ByteArrayContent(GrpcFraming.Frame(request));
        message.Content.Headers.ContentType = new MediaTypeHeaderValue(GrpcProtocol.ContentType);
        try
        {
            using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            CheckResponse(response);
            await using var body = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false);
            var reply = await GrpcFraming.ReadAsync(body, parser, _options.MaxMessageBytes, timeout.Token).ConfigureAwait(false);
            await DrainAsync(body, timeout.Token).ConfigureAwait(false);
            ThrowIfError(response);
            return reply ?? throw new GrpcStatusException(GrpcStatusCode.Internal, "The server ended the call without a response message.");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && deadline is not null)
        {
            throw new GrpcStatusException(GrpcStatusCode.DeadlineExceeded, $"Deadline of {deadline} exceeded calling {path}.");
        }
        catch (HttpRequestException ex)
        {
            throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"Cannot reach {_http.BaseAddress}: {ex.Message}", ex);
        }
    }

    /// <summary>Opens a bidirectional stream.</summary>
    public async Task<DuplexCall<TResponse>> DuplexAsync<TResponse>(string path, MessageParser<TResponse> parser, CancellationToken cancellationToken = default)
        where TResponse : class, IMessage<TResponse>
    {
        var content = new PushContent();
        var message = NewRequest(path, null);
        message.Content = content;
        try
        {
            var send = _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            // The request body opens as soon as the request starts; a server that refuses the call (bad token, unknown
            // method) may answer first, with its status in a trailers-only response.
            if (await Task.WhenAny(content.Stream, send).ConfigureAwait(false) == send)
            {
                using var early = await send.ConfigureAwait(false);
                CheckResponse(early);
                ThrowIfError(early);
                throw new GrpcStatusException(GrpcStatusCode.Internal, "The server ended the call before the request stream opened.");
            }

            return new DuplexCall<TResponse>(await content.Stream.ConfigureAwait(false), content, send, message, parser, _options.MaxMessageBytes);
        }
        catch (HttpRequestException ex)
        {
            message.Dispose();
            throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"Cannot reach {_http.BaseAddress}: {ex.Message}", ex);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _http.Dispose();

    internal static void CheckResponse(HttpResponseMessage response)
    {
        if (response.StatusCode != HttpStatusCode.OK)
        {
            // The HTTP-to-gRPC status mapping of the protocol specification.
            var status = response.StatusCode switch
            {
                HttpStatusCode.BadRequest => GrpcStatusCode.Internal,
                HttpStatusCode.Unauthorized => GrpcStatusCode.Unauthenticated,
                HttpStatusCode.Forbidden => GrpcStatusCode.PermissionDenied,
                HttpStatusCode.NotFound => GrpcStatusCode.Unimplemented,
                HttpStatusCode.TooManyRequests or HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout => GrpcStatusCode.Unavailable,
                _ => GrpcStatusCode.Unknown,
            };
            throw new GrpcStatusException(status, $"HTTP {(int)response.StatusCode} from the server.");
        }

        // Trailers-only responses carry the status in the headers.
        if (Header(response.Headers, GrpcProtocol.StatusHeader) is { } s && s != "0")
        {
            ThrowIfError(response);
        }
    }

    internal static void ThrowIfError(HttpResponseMessage response)
    {
        var status = Header(response.TrailingHeaders, GrpcProtocol.StatusHeader) ?? Header(response.Headers, GrpcProtocol.StatusHeader);
        if (status is null)
        {
            throw new GrpcStatusException(GrpcStatusCode.Internal, "The response carried no grpc-status.");
        }

        if (status == "0")
        {
            return;
        }

        var message = Header(response.TrailingHeaders, GrpcProtocol.MessageHeader) ?? Header(response.Headers, GrpcProtocol.MessageHeader);
        var code = int.TryParse(status, out var c) && c is > 0 and <= 16 ? (GrpcStatusCode)c : GrpcStatusCode.Unknown;
        throw new GrpcStatusException(code, GrpcProtocol.DecodeMessage(message));
    }

    internal static async Task DrainAsync(Stream body, CancellationToken cancellationToken)
    {
        var scratch = new byte[256];
        while (await body.ReadAsync(scratch, cancellationToken).ConfigureAwait(false) > 0)
        {
        }
    }

    private static string? Header(HttpHeaders headers, string name) =>
        headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    private static bool Validate(X509Certificate2 trusted, X509Certificate? presented, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (presented is null)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(trusted);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var certificate = new X509Certificate2(presented);
        // Host-name mismatches stay fatal; only the issuer may be the configured one.
        return (errors & SslPolicyErrors.RemoteCertificateNameMismatch) == 0 && chain.Build(certificate);
    }

    private HttpRequestMessage NewRequest(string path, TimeSpan? deadline)
    {
        var message = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        message.Headers.TE.Add(new TransferCodingWithQualityHeaderValue("trailers"));
        if (_options.Token is { } token)
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (deadline is { } d)
        {
            message.Headers.TryAddWithoutValidation(GrpcProtocol.TimeoutHeader, GrpcProtocol.FormatTimeout(d));
        }

        return message;
    }

    /// <summary>Request content that stays open while the caller pushes messages.</summary>
    internal sealed class PushContent : HttpContent
    {
        private readonly TaskCompletionSource<Stream> _stream = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public PushContent() => Headers.ContentType = new MediaTypeHeaderValue(GrpcProtocol.ContentType);

        public Task<Stream> Stream => _stream.Task;

        public void Complete() => _done.TrySetResult();

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            _stream.TrySetResult(stream);
            return _done.Task;
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
