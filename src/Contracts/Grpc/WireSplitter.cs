using System.Buffers;

namespace Cluster.Contracts.Grpc;

/// <summary>
/// Finds a tensor in protobuf wire bytes without copying it: in a message whose only field is the embedded message
/// <c>outer</c>, the last occurrence of its bytes field <c>inner</c>. The embedded message's other fields are copied
/// (they are a few dozen bytes) so the generated parser can read them with full protobuf semantics, and the tensor is
/// left where it lies for the caller to decode straight into its destination. Anything unusual (another top-level
/// field, a group, a truncated varint) makes <see cref="TrySplit"/> return false and the caller falls back to the
/// generated parser, which reports malformed input as it always does.
/// </summary>
public static class WireSplitter
{
    /// <summary>Splits <paramref name="message"/>; on success <paramref name="rest"/> holds the embedded message without the tensor.</summary>
    public static bool TrySplit(ReadOnlySpan<byte> message, int outer, int inner, ref byte[] rest, out int restLength, out Range tensor)
    {
        restLength = 0;
        tensor = default;
        var position = 0;
        if (!TryReadVarint(message, ref position, out var tag) || tag != (((ulong)outer << 3) | 2)
            || !TryReadVarint(message, ref position, out var length) || length != (ulong)(message.Length - position))
        {
            return false;
        }

        var start = position;
        var body = message[start..];
        var found = false;
        var p = 0;
        if (rest.Length == 0)
        {
            rest = new byte[256];
        }

        while (p < body.Length)
        {
            var fieldStart = p;
            if (!TryReadVarint(body, ref p, out var t) || t >> 3 == 0)
            {
                return false;
            }

            switch ((int)(t & 7))
            {
                case 0:
                    if (!TryReadVarint(body, ref p, out _))
                    {
                        return false;
                    }

                    break;
                case 1:
                    p += 8;
                    break;
                case 5:
                    p += 4;
                    break;
                case 2:
                    if (!TryReadVarint(body, ref p, out var n) || n > (ulong)(body.Length - p))
                    {
                        return false;
                    }

                    if (t >> 3 == (ulong)inner)
                    {
                        // The last occurrence wins, as in any protobuf parser.
                        tensor = new Range(start + p, start + p + (int)n);
                        found = true;
                        p += (int)n;
                        continue;
                    }

                    p += (int)n;
                    break;
                default:
                    return false;
            }

            if (p > body.Length)
            {
                return false;
            }

            var field = body[fieldStart..p];
            if (restLength + field.Length > rest.Length)
            {
                Array.Resize(ref rest, Math.Max(rest.Length * 2, restLength + field.Length));
            }

            field.CopyTo(rest.AsSpan(restLength));
            restLength += field.Length;
        }

        return found;
    }

    /// <summary>
    /// <see cref="TrySplit(ReadOnlySpan{byte}, int, int, ref byte[], out int, out Range)"/> over a message that may lie
    /// in several buffers; on success <paramref name="tensor"/> is the slice of <paramref name="message"/> holding it.
    /// </summary>
    public static bool TrySplit(in ReadOnlySequence<byte> message, int outer, int inner, ref byte[] rest, out int restLength, out ReadOnlySequence<byte> tensor)
    {
        tensor = default;
        if (message.IsSingleSegment)
        {
            if (!TrySplit(message.FirstSpan, outer, inner, ref rest, out restLength, out var range))
            {
                return false;
            }

            var (offset, length) = range.GetOffsetAndLength((int)message.Length);
            tensor = message.Slice(offset, length);
            return true;
        }

        restLength = 0;
        var reader = new SequenceReader<byte>(message);
        if (!TryReadVarint(ref reader, out var tag) || tag != (((ulong)outer << 3) | 2)
            || !TryReadVarint(ref reader, out var total) || total != (ulong)reader.Remaining)
        {
            return false;
        }

        var found = false;
        if (rest.Length == 0)
        {
            rest = new byte[256];
        }

        while (!reader.End)
        {
            var fieldStart = reader.Position;
            var fieldOffset = reader.Consumed;
            if (!TryReadVarint(ref reader, out var t) || t >> 3 == 0)
            {
                return false;
            }

            long skip;
            switch ((int)(t & 7))
            {
                case 0:
                    if (!TryReadVarint(ref reader, out _))
                    {
                        return false;
                    }

                    skip = 0;
                    break;
                case 1:
                    skip = 8;
                    break;
                case 5:
                    skip = 4;
                    break;
                case 2:
                    if (!TryReadVarint(ref reader, out var n) || n > (ulong)reader.Remaining)
                    {
                        return false;
                    }

                    if (t >> 3 == (ulong)inner)
                    {
                        // The last occurrence wins, as in any protobuf parser.
                        tensor = message.Slice(reader.Position, (long)n);
                        found = true;
                        reader.Advance((long)n);
                        continue;
                    }

                    skip = (long)n;
                    break;
                default:
                    return false;
            }

            if (skip > reader.Remaining)
            {
                return false;
            }

            reader.Advance(skip);
            var fieldLength = (int)(reader.Consumed - fieldOffset);
            if (restLength + fieldLength > rest.Length)
            {
                Array.Resize(ref rest, Math.Max(rest.Length * 2, restLength + fieldLength));
            }

            message.Slice(fieldStart, fieldLength).CopyTo(rest.AsSpan(restLength));
            restLength += fieldLength;
        }

        return found;
    }

    private static bool TryReadVarint(ref SequenceReader<byte> reader, out ulong value)
    {
        value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out var b))
            {
                return false;
            }

            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }

        return false;
    }

    private static bool TryReadVarint(ReadOnlySpan<byte> bytes, ref int position, out ulong value)
    {
        value = 0;
        for (var shift = 0; shift < 64 && position < bytes.Length; shift += 7)
        {
            var b = bytes[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }

        return false;
    }
}
