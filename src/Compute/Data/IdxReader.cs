using System.Buffers.Binary;
using System.IO.Compression;

namespace Cluster.Compute.Data;

/// <summary>Images in IDX format: count x rows x cols unsigned bytes.</summary>
public sealed record IdxImages(int Count, int Rows, int Columns, byte[] Pixels);

/// <summary>
/// Reads the IDX files MNIST ships in (plain or gzip-compressed): magic 0x00000803 for images, 0x00000801 for labels,
/// big-endian dimensions, then unsigned bytes. Every defect is reported with the file and what was wrong.
/// </summary>
public static class IdxReader
{
    /// <summary>Magic number of an unsigned-byte 3-D file (images).</summary>
    public const int ImagesMagic = 0x00000803;

    /// <summary>Magic number of an unsigned-byte 1-D file (labels).</summary>
    public const int LabelsMagic = 0x00000801;

    /// <summary>Reads an images file.</summary>
    public static IdxImages ReadImages(string path)
    {
        using var stream = Open(path);
        return ReadImages(stream, path);
    }

    /// <summary>Reads images from a stream; <paramref name="name"/> names it in errors.</summary>
    public static IdxImages ReadImages(Stream stream, string name)
    {
        var header = ReadExactly(stream, 16, name, "the 16-byte header");
        var magic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (magic != ImagesMagic)
        {
            throw new InvalidDataException($"{name}: bad magic number 0x{magic:X8}; an IDX images file starts with 0x{ImagesMagic:X8}. Is this a labels file, or not IDX at all?");
        }

        var count = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4));
        var rows = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(8));
        var cols = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(12));
        if (count < 0 || rows <= 0 || cols <= 0 || (long)count * rows * cols > Array.MaxLength)
        {
            throw new InvalidDataException($"{name}: implausible dimensions {count} x {rows} x {cols}.");
        }

        var pixels = ReadExactly(stream, count * rows * cols, name, $"{count} images of {rows}x{cols} pixels");
        ExpectEnd(stream, name);
        return new IdxImages(count, rows, cols, pixels);
    }

    /// <summary>Reads a labels file.</summary>
    public static byte[] ReadLabels(string path)
    {
        using var stream = Open(path);
        return ReadLabels(stream, path);
    }

    /// <summary>Reads labels from a stream; <paramref name="name"/> names it in errors.</summary>
    public static byte[] ReadLabels(Stream stream, string name)
    {
        var header = ReadExactly(stream, 8, name, "the 8-byte header");
        var magic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (magic != LabelsMagic)
        {
            throw new InvalidDataException($"{name}: bad magic number 0x{magic:X8}; an IDX labels file starts with 0x{LabelsMagic:X8}. Is this an images file, or not IDX at all?");
        }

        var count = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4));
        if (count < 0)
        {
            throw new InvalidDataException($"{name}: negative label count {count}.");
        }

        var labels = ReadExactly(stream, count, name, $"{count} labels");
        ExpectEnd(stream, name);
        return labels;
    }

    /// <summary>Opens a file, decompressing it when it starts with the gzip signature.</summary>
    public static Stream Open(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"IDX file not found: {path}", path);
        }

        var file = File.OpenRead(path);
        Span<byte> signature = stackalloc byte[2];
        var read = file.Read(signature);
        file.Position = 0;
        if (read == 2 && signature[0] == 0x1f && signature[1] == 0x8b)
        {
            return new BufferedStream(new GZipStream(file, CompressionMode.Decompress), 1 << 16);
        }

        return file;
    }

    private static byte[] ReadExactly(Stream stream, int count, string name, string what)
    {
        var buffer = new byte[count];
        var total = 0;
        try
        {
            while (total < count)
            {
                var n = stream.Read(buffer, total, count - total);
                if (n == 0)
                {
                    break;
                }

                total += n;
            }
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"{name}: the gzip stream is corrupt ({ex.Message}).", ex);
        }

        if (total < count)
        {
            throw new InvalidDataException($"{name}: truncated; expected {what} ({count} bytes) but the file ends after {total}.");
        }

        return buffer;
    }

    private static void ExpectEnd(Stream stream, string name)
    {
        Span<byte> one = stackalloc byte[1];
        if (stream.Read(one) != 0)
        {
            throw new InvalidDataException($"{name}: the file is longer than its header says; the count does not match the data.");
        }
    }
}
