using System.Buffers;
using System.IO.Pipelines;

namespace Cluster.Contracts.Grpc;

/// <summary>
/// Reads framed messages from a <see cref="PipeReader"/> (Kestrel's request body) where they lie: a message is
/// returned as a slice of the pipe's own buffers, valid until the next read, so a megabyte tensor is copied once,
/// straight to its destination, rather than first into a frame buffer.
/// </summary>
/// <remarks>
/// Waiting for a whole message with its bytes unconsumed does not hold back the sender: Kestrel returns HTTP/2
/// flow-control credit for bytes examined, so a message larger than the stream window still arrives
/// (EndpointTests.MessageLargerThanTheStreamWindow_IsReadWhole sends one of 40 MB).
/// </remarks>
public sealed class PipeFrameReader(PipeReader reader, int maxMessageBytes)
{
    private SequencePosition? _consumed;

    /// <summary>The next message's protobuf bytes; null at a clean end of stream. Framing errors throw their gRPC status.</summary>
    public async ValueTask<ReadOnlySequence<byte>?> ReadAsync(CancellationToken cancellationToken)
    {
        if (_consumed is { } consumed)
        {
            // The previous message has been handled: its bytes go back to the pipe.
            _consumed = null;
            reader.AdvanceTo(consumed);
        }

        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (buffer.Length >= GrpcFraming.HeaderSize)
            {
                var length = ReadLength(buffer);
                if (buffer.Length - GrpcFraming.HeaderSize >= length)
                {
                    var message = buffer.Slice(GrpcFraming.HeaderSize, length);
                    _consumed = message.End;
                    return message;
                }

                if (result.IsCompleted)
                {
                    throw new GrpcStatusException(GrpcStatusCode.Internal, $"Truncated frame: the message says {length} bytes but the stream ended after {buffer.Length - GrpcFraming.HeaderSize}.");
                }
            }
            else if (result.IsCompleted)
            {
                reader.AdvanceTo(buffer.End);
                if (buffer.Length == 0)
                {
                    return null;
                }

                throw new GrpcStatusException(GrpcStatusCode.Internal, $"Truncated frame: the stream ended inside a message prefix ({buffer.Length} of {GrpcFraming.HeaderSize} bytes).");
            }

            // Nothing whole yet: keep every byte and wait for more.
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private int ReadLength(in ReadOnlySequence<byte> buffer)
    {
        Span<byte> header = stackalloc byte[GrpcFraming.HeaderSize];
        buffer.Slice(0, GrpcFraming.HeaderSize).CopyTo(header);
        return GrpcFraming.CheckHeader(header, maxMessageBytes);
    }
}
