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
        var (count, rows, cols) = ReadImagesHeader(stream, name);
        var pixels = ReadExactly(stream, count * rows * cols, name, ImagesWhat(count, rows, cols));
        ExpectEnd(stream, name);
        return new IdxImages(count, rows, cols, pixels);
    }

    /// <summary>
    /// Opens an images file to read some of its images (a worker's shard) without the rest, with the checks of
    /// <see cref="ReadImages(string)"/>.
    /// </summary>
    public static IdxImageStream OpenImages(string path)
    {
        var stream = Open(path);
        try
        {
            var (count, rows, cols) = ReadImagesHeader(stream, path);
            return new IdxImageStream(stream, path, count, rows, cols);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>The checked header of an images file: count, rows, columns; the stream is left at the first pixel.</summary>
    private static (int Count, int Rows, int Columns) ReadImagesHeader(Stream stream, string name)
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

        return (count, rows, cols);
    }

    internal static string ImagesWhat(int count, int rows, int cols) => $"{count} images of {rows}x{cols} pixels";

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
        ReadExactly(stream, buffer, 0, count, name, what);
        return buffer;
    }

    /// <summary>
    /// Fills <paramref name="buffer"/> from <paramref name="stream"/>; <paramref name="before"/> bytes of the
    /// <paramref name="expected"/> that <paramref name="what"/> takes were read before it, so a truncation says how far
    /// the file went.
    /// </summary>
    internal static void ReadExactly(Stream stream, Span<byte> buffer, long before, long expected, string name, string what)
    {
        var total = 0;
        try
        {
            while (total < buffer.Length)
            {
                var n = stream.Read(buffer[total..]);
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

        if (total < buffer.Length)
        {
            throw Truncated(name, what, expected, before + total);
        }
    }

    internal static InvalidDataException Truncated(string name, string what, long expected, long got) =>
        new($"{name}: truncated; expected {what} ({expected} bytes) but the file ends after {got}.");

    internal static InvalidDataException TooLong(string name) =>
        new($"{name}: the file is longer than its header says; the count does not match the data.");

    internal static void ExpectEnd(Stream stream, string name)
    {
        Span<byte> one = stackalloc byte[1];
        if (stream.Read(one) != 0)
        {
            throw TooLong(name);
        }
    }
}

/// <summary>
/// An IDX images file opened for some of its images, read in rising index order, without holding the rest: a plain
/// file seeks past the images it skips (its length is checked against the header when it opens), a gzip file reads
/// through them. <see cref="Finish"/> checks that a gzip file ends where its header says.
/// </summary>
public sealed class IdxImageStream : IDisposable
{
    private readonly Stream _stream;
    private readonly string _name;
    private readonly string _what;
    private long _position;
    private byte[]? _skipBuffer;

    internal IdxImageStream(Stream stream, string name, int count, int rows, int columns)
    {
        _stream = stream;
        _name = name;
        Count = count;
        Rows = rows;
        Columns = columns;
        _what = IdxReader.ImagesWhat(count, rows, columns);
        if (_stream.CanSeek)
        {
            // A plain file: its length says at once whether the header's count fits the data.
            var data = _stream.Length - _stream.Position;
            if (data < DataLength)
            {
                throw IdxReader.Truncated(name, _what, DataLength, data);
            }

            if (data > DataLength)
            {
                throw IdxReader.TooLong(name);
            }
        }
    }

    /// <summary>Images in the file.</summary>
    public int Count { get; }

    /// <summary>Pixel rows of an image.</summary>
    public int Rows { get; }

    /// <summary>Pixel columns of an image.</summary>
    public int Columns { get; }

    private long DataLength => (long)Count * Rows * Columns;

    /// <summary>Reads images [<paramref name="start"/>, start + count) into <paramref name="destination"/> (count x rows x columns bytes).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The images are past the file's count, before an image already read, or do not fill the destination.</exception>
    public void Read(int start, int count, Span<byte> destination)
    {
        var width = (long)Rows * Columns;
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (start < 0 || (long)start + count > Count)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"Images {start}..{(long)start + count - 1} are not all among the {Count} of {_name}.");
        }

        if (start * width < _position)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"Image {start} comes before the images already read; read in rising index order.");
        }

        if (destination.Length != count * width)
        {
            throw new ArgumentOutOfRangeException(nameof(destination), $"{count} images take {count * width} bytes, not {destination.Length}.");
        }

        Skip(start * width - _position);
        IdxReader.ReadExactly(_stream, destination, _position, DataLength, _name, _what);
        _position += destination.Length;
    }

    /// <summary>Checks that the file ends where its header says (a plain file was checked when it opened).</summary>
    public void Finish()
    {
        if (_stream.CanSeek)
        {
            return;
        }

        Skip(DataLength - _position);
        IdxReader.ExpectEnd(_stream, _name);
    }

    /// <inheritdoc/>
    public void Dispose() => _stream.Dispose();

    private void Skip(long bytes)
    {
        if (bytes == 0)
        {
            return;
        }

        if (_stream.CanSeek)
        {
            _stream.Seek(bytes, SeekOrigin.Current);
        }
        else
        {
            _skipBuffer ??= new byte[1 << 16];
            for (var left = bytes; left > 0; left -= _skipBuffer.Length)
            {
                var part = (int)Math.Min(left, _skipBuffer.Length);
                IdxReader.ReadExactly(_stream, _skipBuffer.AsSpan(0, part), _position, DataLength, _name, _what);
                _position += part;
            }

            return;
        }

        _position += bytes;
    }
}
