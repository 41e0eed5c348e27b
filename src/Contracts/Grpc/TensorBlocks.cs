using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Cluster.Contracts.Grpc;

/// <summary>
/// Block-sparse float32 tensors on the wire: a tensor is cut into blocks of <see cref="BlockFloats"/> values (the last
/// may be shorter), a mask holds one bit per block (bit <c>b % 8</c> of byte <c>b / 8</c>), and the tensor bytes hold
/// only the marked blocks, in order. What an unmarked block stands for is the message's to say: zeros in a gradient, the
/// receiver's own values in a weight delta. Bits travel unchanged (a block of -0.0 is marked), so decoding gives the
/// encoded bits exactly. MNIST's blank border pixels leave whole rows of the first layer's gradient zero, and the
/// weights of those rows unchanged under plain SGD, which is what this saves on the wire.
/// </summary>
public static class TensorBlocks
{
    /// <summary>Values per block: 128 bytes, two cache lines.</summary>
    public const int BlockFloats = 32;

    /// <summary>Blocks of a tensor of <paramref name="length"/> values.</summary>
    public static int BlockCount(int length) => (length + BlockFloats - 1) / BlockFloats;

    /// <summary>Bytes of the mask of a tensor of <paramref name="length"/> values.</summary>
    public static int MaskBytes(int length) => (BlockCount(length) + 7) / 8;

    /// <summary>
    /// True when sending <paramref name="kept"/> of <paramref name="length"/> values as blocks pays: it leaves out at
    /// least a tenth (below that the mask and the packing cost about what they save, and the whole tensor goes).
    /// </summary>
    public static bool Pays(int kept, int length) => kept <= length * 0.9;

    /// <summary>
    /// Marks the blocks of <paramref name="values"/> that hold a value whose bits are not all zero (so -0.0 and NaN are
    /// marked) and copies them, in order, to the start of <paramref name="packed"/>; returns how many values they hold.
    /// </summary>
    public static int Compact(ReadOnlySpan<float> values, Span<byte> mask, Span<float> packed)
    {
        CheckMask(values.Length, mask.Length);
        if (packed.Length < values.Length)
        {
            throw new ArgumentException($"The packed buffer holds {packed.Length} values; the tensor has {values.Length}.", nameof(packed));
        }

        mask.Clear();
        var bits = MemoryMarshal.Cast<float, uint>(values);
        var kept = 0;
        var b = 0;
        var start = 0;
        for (; start + BlockFloats <= bits.Length; b++, start += BlockFloats)
        {
            ref var block = ref Unsafe.Add(ref MemoryMarshal.GetReference(bits), start);
            if (!IsZero(ref block))
            {
                mask[b >> 3] |= (byte)(1 << (b & 7));
                CopyBlock(ref block, ref Unsafe.As<float, uint>(ref Unsafe.Add(ref MemoryMarshal.GetReference(packed), kept)));
                kept += BlockFloats;
            }
        }

        if (start < bits.Length && bits[start..].ContainsAnyExcept(0u))
        {
            mask[b >> 3] |= (byte)(1 << (b & 7));
            values[start..].CopyTo(packed[kept..]);
            kept += values.Length - start;
        }

        return kept;
    }

    /// <summary>
    /// Marks the blocks where <paramref name="current"/> differs in any bit from <paramref name="previous"/> and copies
    /// those blocks into <paramref name="previous"/>, which then equals <paramref name="current"/>; returns how many
    /// values the marked blocks hold.
    /// </summary>
    public static int MarkChanged(ReadOnlySpan<float> current, Span<float> previous, Span<byte> mask)
    {
        if (previous.Length != current.Length)
        {
            throw new ArgumentException($"The previous tensor has {previous.Length} values, the current one {current.Length}.", nameof(previous));
        }

        CheckMask(current.Length, mask.Length);
        mask.Clear();
        var now = MemoryMarshal.Cast<float, uint>(current);
        var before = MemoryMarshal.Cast<float, uint>(previous);
        var kept = 0;
        var b = 0;
        var start = 0;
        for (; start + BlockFloats <= now.Length; b++, start += BlockFloats)
        {
            ref var block = ref Unsafe.Add(ref MemoryMarshal.GetReference(now), start);
            ref var old = ref Unsafe.Add(ref MemoryMarshal.GetReference(before), start);
            if (!Same(ref block, ref old))
            {
                mask[b >> 3] |= (byte)(1 << (b & 7));
                CopyBlock(ref block, ref old);
                kept += BlockFloats;
            }
        }

        if (start < now.Length && !now[start..].SequenceEqual(before[start..]))
        {
            mask[b >> 3] |= (byte)(1 << (b & 7));
            now[start..].CopyTo(before[start..]);
            kept += now.Length - start;
        }

        return kept;
    }

    /// <summary>
    /// The next run of consecutive marked blocks at or after block <paramref name="block"/>, as a range of values of a
    /// tensor of <paramref name="length"/> values; false when none is left. <paramref name="block"/> moves past the run.
    /// </summary>
    public static bool NextRun(ReadOnlySpan<byte> mask, int length, ref int block, out int start, out int count)
    {
        var blocks = BlockCount(length);
        while (block < blocks && !IsMarked(mask, block))
        {
            block++;
        }

        if (block >= blocks)
        {
            start = count = 0;
            return false;
        }

        var first = block;
        while (block < blocks && IsMarked(mask, block))
        {
            block++;
        }

        start = first * BlockFloats;
        count = Math.Min(length, block * BlockFloats) - start;
        return true;
    }

    /// <summary>
    /// Decodes <paramref name="packed"/> (the marked blocks' bytes, in order) into <paramref name="destination"/>:
    /// marked blocks are overwritten, unmarked ones are cleared when <paramref name="clearUnmarked"/> is set and left as
    /// they are otherwise. A mask of the wrong size, bits past the last block, or packed bytes that are not exactly the
    /// marked blocks throw INVALID_ARGUMENT before <paramref name="destination"/> is touched.
    /// </summary>
    public static void Scatter(in ReadOnlySequence<byte> packed, ReadOnlySpan<byte> mask, Span<float> destination, bool clearUnmarked, string what)
    {
        Validate(packed.Length, mask, destination.Length, what);
        var reader = new SequenceReader<byte>(packed);
        var bytes = MemoryMarshal.AsBytes(destination);
        var done = 0;
        var block = 0;
        while (NextRun(mask, destination.Length, ref block, out var start, out var count))
        {
            if (clearUnmarked)
            {
                destination[done..start].Clear();
            }

            reader.TryCopyTo(bytes.Slice(start * sizeof(float), count * sizeof(float)));
            reader.Advance(count * sizeof(float));
            done = start + count;
        }

        if (clearUnmarked)
        {
            destination[done..].Clear();
        }
    }

    /// <summary><see cref="Scatter(in ReadOnlySequence{byte}, ReadOnlySpan{byte}, Span{float}, bool, string)"/> from one span.</summary>
    public static void Scatter(ReadOnlySpan<byte> packed, ReadOnlySpan<byte> mask, Span<float> destination, bool clearUnmarked, string what)
    {
        Validate(packed.Length, mask, destination.Length, what);
        var values = MemoryMarshal.Cast<byte, float>(packed);
        var read = 0;
        var done = 0;
        var block = 0;
        while (NextRun(mask, destination.Length, ref block, out var start, out var count))
        {
            if (clearUnmarked)
            {
                destination[done..start].Clear();
            }

            values.Slice(read, count).CopyTo(destination.Slice(start, count));
            read += count;
            done = start + count;
        }

        if (clearUnmarked)
        {
            destination[done..].Clear();
        }
    }

    /// <summary>Values held by the marked blocks of a tensor of <paramref name="length"/> values.</summary>
    public static int MarkedValues(ReadOnlySpan<byte> mask, int length)
    {
        var total = 0;
        var block = 0;
        while (NextRun(mask, length, ref block, out _, out var count))
        {
            total += count;
        }

        return total;
    }

    /// <summary>True when the block of <see cref="BlockFloats"/> values at <paramref name="p"/> is all zero bits.</summary>
    private static bool IsZero(ref uint p)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            return (Vector512.LoadUnsafe(ref p) | Vector512.LoadUnsafe(ref p, 16)) == Vector512<uint>.Zero;
        }

        if (Vector256.IsHardwareAccelerated)
        {
            return (Vector256.LoadUnsafe(ref p) | Vector256.LoadUnsafe(ref p, 8) | Vector256.LoadUnsafe(ref p, 16) | Vector256.LoadUnsafe(ref p, 24)) == Vector256<uint>.Zero;
        }

        var v = Vector128<uint>.Zero;
        for (nuint i = 0; i < BlockFloats; i += 4)
        {
            v |= Vector128.LoadUnsafe(ref p, i);
        }

        return v == Vector128<uint>.Zero;
    }

    /// <summary>Copies the block of <see cref="BlockFloats"/> values at <paramref name="source"/> (the loops above keep both in bounds).</summary>
    private static void CopyBlock(ref uint source, ref uint destination)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512.LoadUnsafe(ref source).StoreUnsafe(ref destination);
            Vector512.LoadUnsafe(ref source, 16).StoreUnsafe(ref destination, 16);
            return;
        }

        for (nuint i = 0; i < BlockFloats; i += 8)
        {
            Vector256.LoadUnsafe(ref source, i).StoreUnsafe(ref destination, i);
        }
    }

    /// <summary>True when the blocks of <see cref="BlockFloats"/> values at <paramref name="a"/> and <paramref name="b"/> have the same bits.</summary>
    private static bool Same(ref uint a, ref uint b)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            return ((Vector512.LoadUnsafe(ref a) ^ Vector512.LoadUnsafe(ref b)) | (Vector512.LoadUnsafe(ref a, 16) ^ Vector512.LoadUnsafe(ref b, 16))) == Vector512<uint>.Zero;
        }

        var v = Vector256<uint>.Zero;
        for (nuint i = 0; i < BlockFloats; i += 8)
        {
            v |= Vector256.LoadUnsafe(ref a, i) ^ Vector256.LoadUnsafe(ref b, i);
        }

        return v == Vector256<uint>.Zero;
    }

    private static bool IsMarked(ReadOnlySpan<byte> mask, int block) => (mask[block >> 3] & (1 << (block & 7))) != 0;

    private static void Validate(long packedBytes, ReadOnlySpan<byte> mask, int length, string what)
    {
        if (mask.Length != MaskBytes(length))
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"{what}: a block mask of {mask.Length} bytes; a tensor of {length} values needs {MaskBytes(length)}.");
        }

        var blocks = BlockCount(length);
        if (blocks % 8 != 0 && mask[^1] >> (blocks % 8) != 0)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"{what}: the block mask marks blocks past the last of {blocks}.");
        }

        var expected = (long)MarkedValues(mask, length) * sizeof(float);
        if (packedBytes != expected)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"{what} holds {packedBytes} bytes; its block mask marks {expected / sizeof(float)} float32 values ({expected} bytes).");
        }
    }

    private static void CheckMask(int length, int maskBytes)
    {
        if (maskBytes != MaskBytes(length))
        {
            throw new ArgumentException($"A tensor of {length} values needs a mask of {MaskBytes(length)} bytes, not {maskBytes}.");
        }
    }
}
