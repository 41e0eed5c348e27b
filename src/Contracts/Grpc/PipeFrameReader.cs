using System.Buffers;
using System.IO.Pipelines;

namespace Cluster.Contracts.Grpc;

/// <summary>
/// Reads framed messages from a <see cref="PipeReader"/> (Kestrel's request body) where they lie: a message is
/// returned as a slice of the pipe's own buffers, valid until the next read, so a megabyte tensor is copied once,
/// straight to its destination, rather than first into a frame buffer.
/// </summary>
/// <remarks>
/// Bytes left in the pipe hold the sender's HTTP/2 flow-control window: Kestrel returns credit only for bytes
/// consumed. A message longer than <see cref="InPlaceLimit"/> (well inside the server's stream window) is therefore
/// gathered into a buffer of the reader's own as it arrives, or a message larger than the window would never finish.
/// </remarks>
public sealed class PipeFrameReader(PipeReader reader, int maxMessageBytes)
{
    /// <summary>The longest message awaited in the pipe; longer ones are copied out as they arrive.</summary>
    public const int InPlaceLimit = 4 * 1024 * 1024;

    private SequencePosition? _consumed;
    private byte[] _large = [];

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
                    throw Truncated(length, buffer.Length - GrpcFraming.HeaderSize);
                }

                if (length > InPlaceLimit)
                {
                    return await GatherAsync(buffer, length, cancellationToken).ConfigureAwait(false);
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

    /// <summary>Copies a long message out of the pipe as it arrives, consuming each piece so the sender may go on.</summary>
    private async ValueTask<ReadOnlySequence<byte>?> GatherAsync(ReadOnlySequence<byte> buffer, int length, CancellationToken cancellationToken)
    {
        if (_large.Length < length)
        {
            _large = new byte[length];
        }

        var body = buffer.Slice(GrpcFraming.HeaderSize);
        body.CopyTo(_large);
        var got = (int)body.Length;
        reader.AdvanceTo(buffer.End);
        while (got < length)
        {
            var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var piece = result.Buffer;
            var take = (int)Math.Min(piece.Length, length - got);
            piece.Slice(0, take).CopyTo(_large.AsSpan(got));
            got += take;
            if (got == length)
            {
                reader.AdvanceTo(piece.GetPosition(take));
                break;
            }

            if (result.IsCompleted)
            {
                reader.AdvanceTo(piece.End);
                throw Truncated(length, got);
            }

            reader.AdvanceTo(piece.End);
        }

        return new ReadOnlySequence<byte>(_large, 0, length);
    }

    private static GrpcStatusException Truncated(int length, long got) =>
        new(GrpcStatusCode.Internal, $"Truncated frame: the message says {length} bytes but the stream ended after {got}.");

    private int ReadLength(in ReadOnlySequence<byte> buffer)
    {
        Span<byte> header = stackalloc byte[GrpcFraming.HeaderSize];
        buffer.Slice(0, GrpcFraming.HeaderSize).CopyTo(header);
        return GrpcFraming.CheckHeader(header, maxMessageBytes);
    }
}
