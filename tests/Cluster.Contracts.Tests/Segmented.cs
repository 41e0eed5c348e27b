using System.Buffers;

namespace Cluster.Contracts.Tests;

/// <summary>Bytes as a sequence of pieces, as a pipe hands over what arrived in several reads.</summary>
internal static class Segmented
{
    /// <summary><paramref name="bytes"/> in pieces of <paramref name="size"/> bytes (one piece when it fits).</summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes, int size)
    {
        if (bytes.Length <= size)
        {
            return new ReadOnlySequence<byte>(bytes);
        }

        Segment? first = null, last = null;
        for (var at = 0; at < bytes.Length; at += size)
        {
            var piece = bytes.AsMemory(at, Math.Min(size, bytes.Length - at));
            last = last is null ? first = new Segment(piece, 0) : last.Append(piece);
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long index)
        {
            Memory = memory;
            RunningIndex = index;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
