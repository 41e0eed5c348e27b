using System.Buffers;
using System.Runtime.InteropServices;

namespace Cluster.Compute;

/// <summary>
/// Float32 values stored in a byte array: computed into as floats and sent as the same bytes, with no copy between the
/// two. The bytes are the machine's float32 layout, which is the wire's little-endian format on the machines this
/// project runs on (the codec refuses big-endian ones).
/// </summary>
public sealed class FloatBuffer : MemoryManager<float>
{
    private readonly byte[] _bytes;
    private GCHandle _pin;
    private int _pins;

    /// <summary>A zeroed buffer of <paramref name="length"/> values.</summary>
    public FloatBuffer(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        _bytes = new byte[checked(length * sizeof(float))];
        Length = length;
    }

    /// <summary>Number of float values.</summary>
    public int Length { get; }

    /// <summary>The values' bytes, the same storage as <see cref="GetSpan"/>.</summary>
    public byte[] Bytes => _bytes;

    /// <inheritdoc/>
    public override Span<float> GetSpan() => MemoryMarshal.Cast<byte, float>(_bytes.AsSpan());

    /// <inheritdoc/>
    public override unsafe MemoryHandle Pin(int elementIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, Length);
        lock (_bytes)
        {
            if (_pins++ == 0)
            {
                _pin = GCHandle.Alloc(_bytes, GCHandleType.Pinned);
            }
        }

        return new MemoryHandle((float*)_pin.AddrOfPinnedObject() + elementIndex, default, this);
    }

    /// <inheritdoc/>
    public override void Unpin()
    {
        lock (_bytes)
        {
            if (--_pins == 0)
            {
                _pin.Free();
            }
        }
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        lock (_bytes)
        {
            if (_pins > 0)
            {
                _pin.Free();
                _pins = 0;
            }
        }
    }
}
