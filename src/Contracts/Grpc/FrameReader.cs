namespace Cluster.Contracts.Grpc;

/// <summary>
/// Reads framed messages from one stream into a buffer it keeps, so megabyte messages cost no allocation each: the
/// bytes returned stay valid until the next read.
/// </summary>
public sealed class FrameReader(int maxMessageBytes)
{
    private readonly byte[] _header = new byte[GrpcFraming.HeaderSize];
    private byte[] _buffer = [];

    /// <summary>Largest message accepted; a longer one is refused with RESOURCE_EXHAUSTED.</summary>
    public int MaxMessageBytes => maxMessageBytes;

    /// <summary>The next message's protobuf bytes; null at a clean end of stream. Framing errors throw their gRPC status.</summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadAsync(Stream stream, CancellationToken cancellationToken)
    {
        var got = await GrpcFraming.FillAsync(stream, _header, cancellationToken).ConfigureAwait(false);
        if (got == 0)
        {
            return null;
        }

        if (got < GrpcFraming.HeaderSize)
        {
            throw new GrpcStatusException(GrpcStatusCode.Internal, $"Truncated frame: the stream ended inside a message prefix ({got} of {GrpcFraming.HeaderSize} bytes).");
        }

        var length = GrpcFraming.CheckHeader(_header, maxMessageBytes);
        if (_buffer.Length < length)
        {
            _buffer = GC.AllocateUninitializedArray<byte>(length);
        }

        got = await GrpcFraming.FillAsync(stream, _buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
        if (got < length)
        {
            throw new GrpcStatusException(GrpcStatusCode.Internal, $"Truncated frame: the message says {length} bytes but the stream ended after {got}.");
        }

        return _buffer.AsMemory(0, length);
    }
}
