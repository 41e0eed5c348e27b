using System.Buffers.Binary;

namespace Cluster.Compute.Tests;

public sealed class FloatBufferTests
{
    [Fact]
    public void Values_AreTheirLittleEndianBytes_WithNoCopyBetween()
    {
        using var buffer = new FloatBuffer(37);
        Assert.Equal(37, buffer.Length);
        Assert.Equal(37 * sizeof(float), buffer.Bytes.Length);
        var values = buffer.GetSpan();
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = i * -1.25f + 0.1f;
        }

        for (var i = 0; i < values.Length; i++)
        {
            Assert.Equal(BitConverter.SingleToInt32Bits(i * -1.25f + 0.1f), BinaryPrimitives.ReadInt32LittleEndian(buffer.Bytes.AsSpan(i * 4)));
        }

        // The Memory view and the bytes are one storage: a write through either shows in the other.
        BinaryPrimitives.WriteSingleLittleEndian(buffer.Bytes.AsSpan(36 * 4), 7.5f);
        Assert.Equal(7.5f, buffer.Memory.Span[36]);
        buffer.Memory.Span[0] = -3f;
        Assert.Equal(-3f, BinaryPrimitives.ReadSingleLittleEndian(buffer.Bytes));
        Assert.Equal(10, buffer.Memory[5..15].Length);
    }

    [Fact]
    public void Pinning_NestsAndUnpins_AndBadArgumentsThrow()
    {
        using var buffer = new FloatBuffer(8);
        buffer.GetSpan()[3] = 42f;
        using (var outer = buffer.Memory.Pin())
        using (var inner = buffer.Memory[3..].Pin())
        {
            var values = new float[1];
            System.Runtime.InteropServices.Marshal.Copy(InnerAddress(inner), values, 0, 1);
            Assert.Equal(42f, values[0]);
        }

        // Pinned again after both handles were released: the pin count went back to zero cleanly.
        using (buffer.Memory.Pin())
        {
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.Pin(9));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FloatBuffer(-1));
    }

    private static unsafe nint InnerAddress(System.Buffers.MemoryHandle handle) => (nint)handle.Pointer;
}
