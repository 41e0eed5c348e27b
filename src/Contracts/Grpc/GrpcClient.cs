using System.Net.Sockets;
using Cluster.Contracts.Grpc.Http2;
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
/// A minimal gRPC client over its own HTTP/2 connection (h2c with prior knowledge for http://, TLS with ALPN for
/// https://): unary calls and bidirectional streams with standard framing, deadlines and trailers. One connection is
/// kept and reopened when it breaks. It speaks HTTP/2 itself rather than through HttpClient so that a megabyte tensor
/// leaves in one gathered write as one DATA frame (HttpClient sends 16 KiB frames, one system call each) and arrives
/// in one frame read straight into the stream's buffer.
/// </summary>
public sealed class GrpcClient : IDisposable, IAsyncDisposable
{
    private readonly Uri _address;
    private readonly GrpcClientOptions _options;
    private readonly Http2ClientSettings _settings;
    private readonly SemaphoreSlim _connectLock = new(1, 1);
    private Http2ClientConnection? _connection;
    private bool _disposed;

    /// <summary>Creates a client for the server at <paramref name="address"/>.</summary>
    public GrpcClient(Uri address, GrpcClientOptions? options = null)
    {
        if (address.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException($"The coordinator address must be http:// or https://, not '{address}'.", nameof(address));
        }

        _address = address;
        _options = options ?? new GrpcClientOptions();
        SslClientAuthenticationOptions? tls = null;
        if (address.Scheme == "https")
        {
            tls = new SslClientAuthenticationOptions { TargetHost = address.IdnHost };
            if (_options.TrustedCertificatePath is { } path)
            {
                var trusted = X509CertificateLoader.LoadCertificateFromFile(path);
                tls.RemoteCertificateValidationCallback = (_, certificate, _, errors) => Validate(trusted, certificate, errors);
            }
        }

        _settings = new Http2ClientSettings { Tls = tls, ConnectTimeout = _options.ConnectTimeout };
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

        Http2ClientStream? stream = null;
        try
        {
            stream = await OpenAsync(path, deadline, timeout.Token).ConfigureAwait(false);
            try
            {
                await stream.WriteAsync(GrpcFraming.Frame(request), default, endStream: true, timeout.Token).ConfigureAwait(false);
            }
            catch (IOException) when (stream.ResponseHeaders.IsCompletedSuccessfully)
            {
                // The server answered before it read the request (an unknown method, a refused token) and reset the
                // stream: its answer, read below, is the call's outcome, not the write that lost the race.
            }

            var headers = await stream.ResponseHeaders.WaitAsync(timeout.Token).ConfigureAwait(false);
            CheckResponse(headers);
            var body = new ResponseBodyStream(stream);
            var reply = await GrpcFraming.ReadAsync(body, parser, _options.MaxMessageBytes, timeout.Token).ConfigureAwait(false);
            await DrainAsync(body, timeout.Token).ConfigureAwait(false);
            ThrowIfError(stream.Trailers, headers);
            return reply ?? throw new GrpcStatusException(GrpcStatusCode.Internal, "The server ended the call without a response message.");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && deadline is not null)
        {
            throw new GrpcStatusException(GrpcStatusCode.DeadlineExceeded, $"Deadline of {deadline} exceeded calling {path}.");
        }
        catch (IOException ex)
        {
            throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"The call to {_address} failed: {ex.Message}", ex);
        }
        finally
        {
            stream?.Abort();
        }
    }

    /// <summary>Opens a bidirectional stream.</summary>
    public async Task<DuplexCall<TResponse>> DuplexAsync<TResponse>(string path, MessageParser<TResponse> parser, CancellationToken cancellationToken = default)
        where TResponse : class, IMessage<TResponse>
    {
        try
        {
            var stream = await OpenAsync(path, null, cancellationToken).ConfigureAwait(false);
            return new DuplexCall<TResponse>(stream, parser, _options.MaxMessageBytes);
        }
        catch (IOException ex)
        {
            throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"The call to {_address} failed: {ex.Message}", ex);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _disposed = true;
        var connection = Interlocked.Exchange(ref _connection, null);
        connection?.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
    }

    /// <summary>Closes the connection without blocking a thread: prefer it in async code, where the synchronous
    /// <see cref="Dispose"/> ties up a thread-pool thread while the connection says goodbye.</summary>
    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        var connection = Interlocked.Exchange(ref _connection, null);
        if (connection is not null)
        {
            await connection.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
    }

    private async Task<Http2ClientStream> OpenAsync(string path, TimeSpan? deadline, CancellationToken cancellationToken)
    {
        var headers = new List<HeaderField>
        {
            new(":method", "POST"),
            new(":scheme", _address.Scheme),
            new(":path", path),
            new(":authority", _address.IsDefaultPort ? _address.IdnHost : $"{_address.IdnHost}:{_address.Port}"),
            new("content-type", GrpcProtocol.ContentType),
            new("te", "trailers"),
            new("user-agent", "cluster-grpc/1"),
        };
        if (deadline is { } d)
        {
            headers.Add(new(GrpcProtocol.TimeoutHeader, GrpcProtocol.FormatTimeout(d)));
        }

        if (_options.Token is { } token)
        {
            headers.Add(new("authorization", "Bearer " + token));
        }

        // A connection that broke between calls is replaced once; a second failure is the caller's to see.
        for (var attempt = 0; ; attempt++)
        {
            var connection = await ConnectionAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                return await connection.OpenStreamAsync(headers, endStream: false, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException) when (attempt == 0 && !connection.IsUsable)
            {
            }
        }
    }

    private async Task<Http2ClientConnection> ConnectionAsync(CancellationToken cancellationToken)
    {
        await _connectLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_connection is { IsUsable: true } live)
            {
                return live;
            }

            if (_connection is { } old)
            {
                _ = old.DisposeAsync().AsTask();
                _connection = null;
            }

            try
            {
                _connection = await Http2ClientConnection.ConnectAsync(_address.IdnHost, _address.Port, _settings, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or SocketException or System.Security.Authentication.AuthenticationException)
            {
                // A failed handshake reads as "a corrupted frame was received" when the server speaks no TLS at all.
                var hint = ex is System.Security.Authentication.AuthenticationException
                    ? " (the TLS handshake failed: a coordinator without --tls-cert needs an http:// address, and one with a self-signed certificate needs --ca-file)"
                    : "";
                throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"Cannot reach {_address}: {ex.Message}{hint}", ex);
            }

            return _connection;
        }
        finally
        {
            _connectLock.Release();
        }
    }

    internal static void CheckResponse(IReadOnlyList<HeaderField> headers)
    {
        var code = Header(headers, ":status");
        if (code != "200")
        {
            // The HTTP-to-gRPC status mapping of the protocol specification.
            var status = code switch
            {
                "400" => GrpcStatusCode.Internal,
                "401" => GrpcStatusCode.Unauthenticated,
                "403" => GrpcStatusCode.PermissionDenied,
                "404" => GrpcStatusCode.Unimplemented,
                "429" or "502" or "503" or "504" => GrpcStatusCode.Unavailable,
                _ => GrpcStatusCode.Unknown,
            };
            throw new GrpcStatusException(status, $"HTTP {code} from the server.");
        }

        // Trailers-only responses carry the status in the headers.
        if (Header(headers, GrpcProtocol.StatusHeader) is { } s && s != "0")
        {
            ThrowIfError(null, headers);
        }
    }

    internal static void ThrowIfError(IReadOnlyList<HeaderField>? trailers, IReadOnlyList<HeaderField> headers)
    {
        var status = (trailers is null ? null : Header(trailers, GrpcProtocol.StatusHeader)) ?? Header(headers, GrpcProtocol.StatusHeader);
        if (status is null)
        {
            throw new GrpcStatusException(GrpcStatusCode.Internal, "The response carried no grpc-status.");
        }

        if (status == "0")
        {
            return;
        }

        var message = (trailers is null ? null : Header(trailers, GrpcProtocol.MessageHeader)) ?? Header(headers, GrpcProtocol.MessageHeader);
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

    private static string? Header(IReadOnlyList<HeaderField> headers, string name)
    {
        foreach (var h in headers)
        {
            if (h.Name == name)
            {
                return h.Value;
            }
        }

        return null;
    }

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
}

/// <summary>The response body of a stream as a read-only <see cref="Stream"/>, for the frame reader.</summary>
internal sealed class ResponseBodyStream(Http2ClientStream stream) : Stream
{
    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => stream.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => stream.ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => stream.ReadAsync(buffer.AsMemory(offset, count), CancellationToken.None).AsTask().GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
