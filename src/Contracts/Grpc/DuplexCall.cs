using Google.Protobuf;

namespace Cluster.Contracts.Grpc;

/// <summary>A bidirectional gRPC stream from the client's side. Writes are serialised; reads come from one reader.</summary>
public sealed class DuplexCall<TResponse> : IAsyncDisposable
    where TResponse : class, IMessage<TResponse>
{
    private readonly Stream _requestStream;
    private readonly GrpcClient.PushContent _content;
    private readonly Task<HttpResponseMessage> _response;
    private readonly HttpRequestMessage _request;
    private readonly MessageParser<TResponse> _parser;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly FrameReader _frames;
    private Stream? _responseStream;
    private HttpResponseMessage? _responseMessage;

    internal DuplexCall(Stream requestStream, GrpcClient.PushContent content, Task<HttpResponseMessage> response, HttpRequestMessage request, MessageParser<TResponse> parser, int maxMessageBytes)
    {
        _requestStream = requestStream;
        _content = content;
        _response = response;
        _request = request;
        _parser = parser;
        _frames = new FrameReader(maxMessageBytes);
    }

    /// <summary>Bytes written so far (frames included).</summary>
    public long BytesSent { get; private set; }

    /// <summary>Sends one message.</summary>
    public ValueTask WriteAsync(IMessage message, CancellationToken cancellationToken) =>
        WriteLockedAsync(async () =>
        {
            await GrpcFraming.WriteAsync(_requestStream, message, cancellationToken).ConfigureAwait(false);
            return GrpcFraming.HeaderSize + message.CalculateSize();
        }, cancellationToken);

    /// <summary>Sends <paramref name="inner"/> as field <paramref name="outerField"/> of the envelope, with a tensor written in place (see <see cref="GrpcFraming.WriteWithTensorAsync"/>).</summary>
    public ValueTask WriteWithTensorAsync(int outerField, IMessage inner, int tensorField, ReadOnlyMemory<byte> tensor, CancellationToken cancellationToken) =>
        WriteLockedAsync(() => GrpcFraming.WriteWithTensorAsync(_requestStream, outerField, inner, tensorField, tensor, cancellationToken), cancellationToken);

    private async ValueTask WriteLockedAsync(Func<ValueTask<int>> write, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            BytesSent += await write().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or HttpRequestException or InvalidOperationException)
        {
            // A server that refused the call (bad token) may have answered already: report its status, not the write.
            if (_response.IsCompletedSuccessfully)
            {
                GrpcClient.CheckResponse(_response.Result);
                GrpcClient.ThrowIfError(_response.Result);
            }

            throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"The stream to the server broke: {ex.Message}", ex);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Ends the request stream (the server sees end of input).</summary>
    public void CompleteWrites() => _content.Complete();

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
            if (_responseStream is null)
            {
                _responseMessage = await _response.WaitAsync(cancellationToken).ConfigureAwait(false);
                GrpcClient.CheckResponse(_responseMessage);
                _responseStream = await _responseMessage.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            }

            var frame = await _frames.ReadAsync(_responseStream, cancellationToken).ConfigureAwait(false);
            if (frame is null)
            {
                GrpcClient.ThrowIfError(_responseMessage!);
            }

            return frame;
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"The stream from the server broke: {ex.Message}", ex);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        _content.Complete();
        _responseMessage?.Dispose();
        _request.Dispose();
        try
        {
            if (!_response.IsCompleted)
            {
                await _response.WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // The call is being torn down; its outcome no longer matters.
        }

        _writeLock.Dispose();
    }
}
