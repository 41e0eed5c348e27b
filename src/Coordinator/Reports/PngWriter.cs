using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Cluster.Coordinator.Reports;

/// <summary>An RGB canvas that draws lines, rectangles and 5x7 text, and encodes itself as PNG with the framework's zlib.</summary>
internal sealed class PngWriter(int width, int height)
{
    private static readonly uint[] CrcTable = BuildCrcTable();
    private readonly byte[] _pixels = Enumerable.Repeat((byte)255, width * height * 3).ToArray();

    public int Width => width;

    public int Height => height;

    public void Set(int x, int y, (byte R, byte G, byte B) c)
    {
        if ((uint)x >= (uint)width || (uint)y >= (uint)height)
        {
            return;
        }

        var i = (y * width + x) * 3;
        (_pixels[i], _pixels[i + 1], _pixels[i + 2]) = c;
    }

    public void Rect(int x0, int y0, int x1, int y1, (byte, byte, byte) c)
    {
        for (var y = Math.Max(0, y0); y <= Math.Min(height - 1, y1); y++)
        {
            for (var x = Math.Max(0, x0); x <= Math.Min(width - 1, x1); x++)
            {
                Set(x, y, c);
            }
        }
    }

    /// <summary>A line of the given thickness (Bresenham with a square pen).</summary>
    public void Line(double fx0, double fy0, double fx1, double fy1, (byte, byte, byte) c, int thickness = 1)
    {
        int x0 = (int)Math.Round(fx0), y0 = (int)Math.Round(fy0), x1 = (int)Math.Round(fx1), y1 = (int)Math.Round(fy1);
        int dx = Math.Abs(x1 - x0), dy = -Math.Abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
        var half = thickness / 2;
        while (true)
        {
            Rect(x0 - half, y0 - half, x0 - half + thickness - 1, y0 - half + thickness - 1, c);
            if (x0 == x1 && y0 == y1)
            {
                break;
            }

            var e2 = 2 * err;
            if (e2 >= dy)
            {
                err += dy;
                x0 += sx;
            }

            if (e2 <= dx)
            {
                err += dx;
                y0 += sy;
            }
        }
    }

    /// <summary>Text with its top-left corner at (x, y), each font pixel drawn as scale x scale.</summary>
    public void Text(int x, int y, string text, (byte, byte, byte) c, int scale = 1)
    {
        foreach (var ch in text)
        {
            for (var gy = 0; gy < BitmapFont.Height; gy++)
            {
                for (var gx = 0; gx < BitmapFont.Width; gx++)
                {
                    if (BitmapFont.Pixel(ch, gx, gy))
                    {
                        Rect(x + gx * scale, y + gy * scale, x + (gx + 1) * scale - 1, y + (gy + 1) * scale - 1, c);
                    }
                }
            }

            x += (BitmapFont.Width + 1) * scale;
        }
    }

    public static int TextWidth(string text, int scale = 1) => text.Length * (BitmapFont.Width + 1) * scale;

    /// <summary>The PNG file: signature, IHDR, one zlib IDAT of filter-0 rows, IEND.</summary>
    public byte[] Encode()
    {
        using var output = new MemoryStream();
        output.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8; // bit depth
        header[9] = 2; // truecolour RGB
        Chunk(output, "IHDR", header);
        using (var raw = new MemoryStream())
        {
            using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
            {
                for (var y = 0; y < height; y++)
                {
                    z.WriteByte(0);
                    z.Write(_pixels, y * width * 3, width * 3);
                }
            }

            Chunk(output, "IDAT", raw.ToArray());
        }

        Chunk(output, "IEND", []);
        return output.ToArray();
    }

    private static void Chunk(Stream output, string type, byte[] data)
    {
        var length = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        output.Write(length);
        var typeBytes = Encoding.ASCII.GetBytes(type);
        output.Write(typeBytes);
        output.Write(data);
        var crc = Crc(Crc(0xFFFFFFFFu, typeBytes), data) ^ 0xFFFFFFFFu;
        var crcBytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crcBytes, crc);
        output.Write(crcBytes);
    }

    internal static uint Crc(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (var b in data)
        {
            crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return crc;
    }

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            table[n] = c;
        }

        return table;
    }
}
