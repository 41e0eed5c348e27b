using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;

namespace Cluster.Contracts.Grpc;

/// <summary>
/// The gRPC length-prefixed message framing shared by both ends: a compressed-flag byte, a 4-byte big-endian length,
/// then the protobuf bytes. Framing errors become gRPC statuses: a message over the limit RESOURCE_EXHAUSTED,
/// compression UNIMPLEMENTED, truncation or garbage INTERNAL.
/// </summary>
public static class GrpcFraming
{
    /// <summary>Bytes of the prefix.</summary>
    public const int HeaderSize = 5;

    /// <summary>Writes one message and flushes.</summary>
    public static async ValueTask WriteAsync(Stream stream, IMessage message, CancellationToken cancellationToken)
    {
        var size = message.CalculateSize();
        var buffer = ArrayPool<byte>.Shared.Rent(HeaderSize + size);
        try
        {
            var frame = Encode(message, size, buffer);
            await stream.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Writes, as one framed message, the embedded message <paramref name="inner"/> as field <paramref name="outerField"/>
    /// of its envelope, with <paramref name="tensor"/> appended as its bytes field <paramref name="tensorField"/> (which
    /// <paramref name="inner"/> must leave empty). The tensor goes to the stream from where it lies instead of through an
    /// encoded copy; protobuf parsers accept fields in any order, so the bytes on the wire mean the same message.
    /// Returns the bytes written.
    /// </summary>
    public static async ValueTask<int> WriteWithTensorAsync(Stream stream, int outerField, IMessage inner, int tensorField, ReadOnlyMemory<byte> tensor, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(TensorPrefixCapacity(inner));
        try
        {
            var (prefix, frame) = WriteTensorPrefix(buffer, outerField, inner, tensorField, tensor.Length);
            await stream.WriteAsync(buffer.AsMemory(0, prefix), cancellationToken).ConfigureAwait(false);
            await stream.WriteAsync(tensor, cancellationToken).ConfigureAwait(false);
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
            return frame;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Bytes a buffer needs for <see cref="WriteTensorPrefix"/>.</summary>
    public static int TensorPrefixCapacity(IMessage inner) => HeaderSize + inner.CalculateSize() + 32;

    /// <summary>
    /// Writes into <paramref name="buffer"/> everything of the frame described at <see cref="WriteWithTensorAsync"/> that
    /// comes before the tensor's bytes; returns that prefix's length and the whole frame's length.
    /// </summary>
    public static (int PrefixLength, int FrameLength) WriteTensorPrefix(byte[] buffer, int outerField, IMessage inner, int tensorField, int tensorLength) =>
        WriteTensorPrefix(buffer.AsSpan(), outerField, inner, tensorField, tensorLength);

    /// <summary>The same prefix written into any span of at least <see cref="TensorPrefixCapacity"/> bytes.</summary>
    public static (int PrefixLength, int FrameLength) WriteTensorPrefix(Span<byte> buffer, int outerField, IMessage inner, int tensorField, int tensorLength)
    {
        var innerSize = inner.CalculateSize();
        var tensorTag = (uint)(tensorField << 3) | 2;
        var body = innerSize + CodedOutputStream.ComputeRawVarint32Size(tensorTag) + CodedOutputStream.ComputeRawVarint32Size((uint)tensorLength) + tensorLength;
        var outerTag = (uint)(outerField << 3) | 2;
        var messageSize = CodedOutputStream.ComputeRawVarint32Size(outerTag) + CodedOutputStream.ComputeRawVarint32Size((uint)body) + body;
        buffer[0] = 0;
        BinaryPrimitives.WriteInt32BigEndian(buffer[1..], messageSize);
        var p = HeaderSize;
        p += WriteVarint(buffer[p..], outerTag);
        p += WriteVarint(buffer[p..], (uint)body);
        inner.WriteTo(buffer.Slice(p, innerSize));
        p += innerSize;
        p += WriteVarint(buffer[p..], tensorTag);
        p += WriteVarint(buffer[p..], (uint)tensorLength);
        return (p, HeaderSize + messageSize);
    }

    private static int WriteVarint(Span<byte> destination, uint value)
    {
        var i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[i++] = (byte)value;
        return i;
    }

    /// <summary>Writes the frame of <paramref name="message"/> into <paramref name="buffer"/> and returns its extent.</summary>
    public static ReadOnlyMemory<byte> Encode(IMessage message, int size, byte[] buffer)
    {
        buffer[0] = 0;
        BinaryPrimitives.WriteInt32BigEndian(buffer.AsSpan(1), size);
        message.WriteTo(buffer.AsSpan(HeaderSize, size));
        return buffer.AsMemory(0, HeaderSize + size);
    }

    /// <summary>The whole frame of a message as a new array.</summary>
    public static byte[] Frame(IMessage message)
    {
        var size = message.CalculateSize();
        var buffer = new byte[HeaderSize + size];
        Encode(message, size, buffer);
        return buffer;
    }

    /// <summary>Reads one message; null at a clean end of stream (no partial frame).</summary>
    public static async ValueTask<T?> ReadAsync<T>(Stream stream, MessageParser<T> parser, int maxMessageBytes, CancellationToken cancellationToken)
        where T : class, IMessage<T>
    {
        var frame = await new FrameReader(maxMessageBytes).ReadAsync(stream, cancellationToken).ConfigureAwait(false);
        return frame is { } bytes ? Parse(parser, bytes.Span) : null;
    }

    /// <summary>Validates a prefix and returns the message length.</summary>
    public static int CheckHeader(ReadOnlySpan<byte> header, int maxMessageBytes)
    {
        var flag = header[0];
        if (flag == 1)
        {
            throw new GrpcStatusException(GrpcStatusCode.Unimplemented, "Compressed messages are not supported; send with grpc-encoding identity.");
        }

        if (flag != 0)
        {
            throw new GrpcStatusException(GrpcStatusCode.Internal, $"Malformed frame: compressed-flag byte is {flag}, expected 0 or 1.");
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
        if (length > (uint)maxMessageBytes)
        {
            throw new GrpcStatusException(GrpcStatusCode.ResourceExhausted, $"Received message larger than max ({length} vs. {maxMessageBytes})");
        }

        return (int)length;
    }

    /// <summary>Parses protobuf bytes, turning malformed input into INTERNAL.</summary>
    public static T Parse<T>(MessageParser<T> parser, ReadOnlySpan<byte> bytes)
        where T : IMessage<T>
    {
        try
        {
            return parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new GrpcStatusException(GrpcStatusCode.Internal, $"Malformed message: {ex.Message}", ex);
        }
    }

    /// <summary>Parses message bytes that may lie in several buffers; malformed bytes throw INTERNAL, as for a span.</summary>
    public static T Parse<T>(MessageParser<T> parser, in ReadOnlySequence<byte> bytes)
        where T : IMessage<T>
    {
        if (bytes.IsSingleSegment)
        {
            return Parse(parser, bytes.FirstSpan);
        }

        try
        {
            return parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new GrpcStatusException(GrpcStatusCode.Internal, $"Malformed message: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Writes one framed message whose last field (of the embedded message <paramref name="outerField"/>) is a float32
    /// tensor, as <see cref="WriteWithTensorAsync"/> does, into a pipe: the tensor is copied once, from where it lies
    /// into the pipe's buffers. Returns the frame's length in bytes.
    /// </summary>
    public static async ValueTask<int> WriteWithTensorAsync(System.IO.Pipelines.PipeWriter writer, int outerField, IMessage inner, int tensorField, ReadOnlyMemory<float> tensor, CancellationToken cancellationToken)
    {
        var bytes = tensor.Length * sizeof(float);
        var span = writer.GetSpan(TensorPrefixCapacity(inner));
        var (prefix, frame) = WriteTensorPrefix(span, outerField, inner, tensorField, bytes);
        writer.Advance(prefix);
        writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(tensor.Span));
        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        return frame;
    }

    /// <summary>
    /// <see cref="WriteWithTensorAsync(System.IO.Pipelines.PipeWriter, int, IMessage, int, ReadOnlyMemory{float}, CancellationToken)"/>
    /// with only the blocks of <paramref name="tensor"/> that <paramref name="mask"/> marks (see <see cref="TensorBlocks"/>;
    /// <paramref name="kept"/> is how many values they hold), each run of them copied once into the pipe.
    /// </summary>
    public static async ValueTask<int> WriteWithBlocksAsync(System.IO.Pipelines.PipeWriter writer, int outerField, IMessage inner, int tensorField, ReadOnlyMemory<float> tensor, ReadOnlyMemory<byte> mask, int kept, CancellationToken cancellationToken)
    {
        var span = writer.GetSpan(TensorPrefixCapacity(inner));
        var (prefix, frame) = WriteTensorPrefix(span, outerField, inner, tensorField, kept * sizeof(float));
        writer.Advance(prefix);
        WriteRuns(writer, tensor.Span, mask.Span);
        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        return frame;
    }

    private static void WriteRuns(System.Buffers.IBufferWriter<byte> writer, ReadOnlySpan<float> tensor, ReadOnlySpan<byte> mask)
    {
        var block = 0;
        while (TensorBlocks.NextRun(mask, tensor.Length, ref block, out var start, out var count))
        {
            writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(tensor.Slice(start, count)));
        }
    }

    /// <summary>Writes one framed message into a pipe and flushes it; returns the frame's length in bytes.</summary>
    public static async ValueTask<int> WriteAsync(System.IO.Pipelines.PipeWriter writer, IMessage message, CancellationToken cancellationToken)
    {
        var size = message.CalculateSize();
        var span = writer.GetSpan(HeaderSize + size);
        span[0] = 0;
        BinaryPrimitives.WriteInt32BigEndian(span[1..], size);
        message.WriteTo(span.Slice(HeaderSize, size));
        writer.Advance(HeaderSize + size);
        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        return HeaderSize + size;
    }

    internal static async ValueTask<int> FillAsync(Stream stream, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer[total..], cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }
}
