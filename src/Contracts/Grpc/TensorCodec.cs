using System.Runtime.InteropServices;
using Google.Protobuf;

namespace Cluster.Contracts.Grpc;

/// <summary>Tensors as protobuf bytes: little-endian float32 and int32, copied in bulk.</summary>
public static class TensorCodec
{
    static TensorCodec()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("The wire format is little-endian and this build copies tensors in bulk.");
        }
    }

    /// <summary>Copies floats into a new ByteString.</summary>
    public static ByteString FromFloats(ReadOnlySpan<float> values) => ByteString.CopyFrom(MemoryMarshal.AsBytes(values));

    /// <summary>Copies ints into a new ByteString.</summary>
    public static ByteString FromInts(ReadOnlySpan<int> values) => ByteString.CopyFrom(MemoryMarshal.AsBytes(values));

    /// <summary>Decodes float32 bytes into <paramref name="destination"/>; throws INVALID_ARGUMENT when the length is wrong.</summary>
    public static void ToFloats(ByteString bytes, Span<float> destination, string what) => ToFloats(bytes.Span, destination, what);

    /// <summary>Decodes float32 bytes into <paramref name="destination"/>; throws INVALID_ARGUMENT when the length is wrong.</summary>
    public static void ToFloats(ReadOnlySpan<byte> bytes, Span<float> destination, string what)
    {
        if (bytes.Length != destination.Length * sizeof(float))
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"{what} holds {bytes.Length} bytes; expected {destination.Length} float32 values ({destination.Length * sizeof(float)} bytes).");
        }

        bytes.CopyTo(MemoryMarshal.AsBytes(destination));
    }

    /// <summary>Decodes int32 bytes; throws INVALID_ARGUMENT when the length is not a multiple of 4 or exceeds <paramref name="max"/>.</summary>
    public static int ToInts(ByteString bytes, Span<int> destination, string what)
    {
        if (bytes.Length % sizeof(int) != 0 || bytes.Length / sizeof(int) > destination.Length)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"{what} holds {bytes.Length} bytes; expected at most {destination.Length} int32 values.");
        }

        bytes.Span.CopyTo(MemoryMarshal.AsBytes(destination));
        return bytes.Length / sizeof(int);
    }
}
