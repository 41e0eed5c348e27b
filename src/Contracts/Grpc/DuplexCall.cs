using System.Buffers;
using Cluster.Contracts.Grpc.Http2;
using Google.Protobuf;

namespace Cluster.Contracts.Grpc;

/// <summary>A bidirectional gRPC stream from the client's side. Writes are serialised; reads come from one reader.</summary>
public sealed class DuplexCall<TResponse> : IAsyncDisposable
    where TResponse : class, IMessage<TResponse>
{
    private readonly Http2ClientStream _stream;
    private readonly MessageParser<TResponse> _parser;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly FrameReader _frames;
    private readonly ResponseBodyStream _body;
    private IReadOnlyList<HeaderField>? _headers;

    internal DuplexCall(Http2ClientStream stream, MessageParser<TResponse> parser, int maxMessageBytes)
    {
        _stream = stream;
        _parser = parser;
        _frames = new FrameReader(maxMessageBytes);
        _body = new ResponseBodyStream(stream);
    }

    /// <summary>
    /// When true, a read waiting for the next message resumes on the connection's read loop as the message arrives
    /// (see <see cref="Http2ClientStream.InlineReader"/>): for a reader whose waits are all awaits.
    /// </summary>
    public bool InlineReads
    {
        get => _stream.InlineReader;
        set => _stream.InlineReader = value;
    }

    /// <summary>Bytes written so far (frames included).</summary>
    public long BytesSent { get; private set; }

    /// <summary>Sends one message.</summary>
    public ValueTask WriteAsync(IMessage message, CancellationToken cancellationToken) =>
        WriteLockedAsync(async () =>
        {
            var frame = GrpcFraming.Frame(message);
            await _stream.WriteAsync(frame, default, endStream: false, cancellationToken).ConfigureAwait(false);
            return frame.Length;
        }, cancellationToken);

    /// <summary>Sends <paramref name="inner"/> as field <paramref name="outerField"/> of the envelope, with a tensor written in place (see <see cref="GrpcFraming.WriteWithTensorAsync"/>): one DATA frame where the server allows it.</summary>
    public ValueTask WriteWithTensorAsync(int outerField, IMessage inner, int tensorField, ReadOnlyMemory<byte> tensor, CancellationToken cancellationToken) =>
        WriteLockedAsync(async () =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent(GrpcFraming.TensorPrefixCapacity(inner));
            try
            {
                var (prefix, frame) = GrpcFraming.WriteTensorPrefix(buffer, outerField, inner, tensorField, tensor.Length);
                await _stream.WriteAsync(buffer.AsMemory(0, prefix), tensor, endStream: false, cancellationToken).ConfigureAwait(false);
                return frame;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }, cancellationToken);

    private async ValueTask WriteLockedAsync(Func<ValueTask<int>> write, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            BytesSent += await write().ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            // A server that refused the call (bad token) may have answered already: report its status, not the write.
            if (_stream.ResponseHeaders.IsCompletedSuccessfully)
            {
                var headers = _stream.ResponseHeaders.Result;
                GrpcClient.CheckResponse(headers);
                GrpcClient.ThrowIfError(_stream.Trailers, headers);
            }

            throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"The stream to the server broke: {ex.Message}", ex);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Ends the request stream (the server sees end of input) once the writes already queued are out.</summary>
    public void CompleteWrites() => _ = CompleteWritesAsync();

    private async Task CompleteWritesAsync()
    {
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            await _stream.CompleteWritesAsync().ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Reads the next message; null when the server ended the stream with OK. A non-OK end throws its status.</summary>
    public async ValueTask<TResponse?> ReadAsync(CancellationToken cancellationToken) =>
        await ReadFrameAsync(cancellationToken).ConfigureAwait(false) is { } frame ? GrpcFraming.Parse(_parser, frame.Span) : null;

    /// <summary>
    /// Reads the next message's protobuf bytes without parsing them (valid until the next read); null when the server
    /// ended the stream with OK. A non-OK end throws its status.
    /// </summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadFrameAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (_headers is null)
            {
                _headers = await _stream.ResponseHeaders.WaitAsync(cancellationToken).ConfigureAwait(false);
                GrpcClient.CheckResponse(_headers);
            }

            // In place when the message fits the receive buffer whole; otherwise copied out as it arrives.
            var frame = await _stream.LendMessageAsync(_frames.MaxMessageBytes, cancellationToken).ConfigureAwait(false)
                ?? await _frames.ReadAsync(_body, cancellationToken).ConfigureAwait(false);
            if (frame is null)
            {
                GrpcClient.ThrowIfError(_stream.Trailers, _headers);
            }

            return frame;
        }
        catch (IOException ex)
        {
            throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"The stream from the server broke: {ex.Message}", ex);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await CompleteWritesAsync().WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or IOException or ObjectDisposedException)
        {
            // The call is being torn down; its outcome no longer matters.
        }

        _stream.Abort();
        _writeLock.Dispose();
    }
}
