using System.Buffers.Binary;
using System.IO.Compression;
using Cluster.Compute.Training;
using Cluster.Coordinator.Reports;

namespace Cluster.Coordinator.Tests;

public sealed class PlotTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-plot").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static List<EpochRecord> History(bool classification) => [.. Enumerable.Range(1, 6).Select(e => new EpochRecord
    {
        Epoch = e,
        TrainLoss = 1.0 / e,
        TestLoss = 1.2 / e,
        TrainAccuracy = classification ? 0.5 + e * 0.05 : null,
        TestAccuracy = classification ? 0.45 + e * 0.05 : null,
        TrainRmse = classification ? null : 0.5 / e,
        TestRmse = classification ? null : 0.6 / e,
    })];

    [Fact]
    public void Png_IsAValidImageWithDrawnLines()
    {
        var path = Path.Combine(_dir, "plot.png");
        TrainingPlot.Write(path, History(true), "test run");
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
        var at = 8;
        var pixels = new MemoryStream();
        int width = 0, height = 0;
        while (at < bytes.Length)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(at));
            var type = System.Text.Encoding.ASCII.GetString(bytes, at + 4, 4);
            var data = bytes.AsSpan(at + 8, length);
            var crc = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(at + 8 + length));
            Assert.Equal(PngWriter.Crc(PngWriter.Crc(0xFFFFFFFFu, bytes.AsSpan(at + 4, 4)), data) ^ 0xFFFFFFFFu, crc);
            if (type == "IHDR")
            {
                width = BinaryPrimitives.ReadInt32BigEndian(data);
                height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
            }
            else if (type == "IDAT")
            {
                using var z = new ZLibStream(new MemoryStream(data.ToArray()), CompressionMode.Decompress);
                z.CopyTo(pixels);
            }

            at += 12 + length;
        }

        Assert.Equal((960, 420), (width, height));
        var raw = pixels.ToArray();
        Assert.Equal(height * (1 + width * 3), raw.Length);
        // The train series colour must appear (lines were drawn), and most of the image is white.
        var blue = 0;
        for (var i = 0; i + 2 < raw.Length; i++)
        {
            if (raw[i] == 59 && raw[i + 1] == 125 && raw[i + 2] == 221)
            {
                blue++;
            }
        }

        Assert.True(blue > 100, $"{blue} train-coloured pixels");
    }

    [Fact]
    public void Svg_HasBothPanelsAndEveryPoint()
    {
        var path = Path.Combine(_dir, "plot.svg");
        TrainingPlot.Write(path, History(false), "regression <run>");
        var svg = File.ReadAllText(path);
        Assert.StartsWith("<svg", svg);
        Assert.Contains(">rmse<", svg);
        Assert.Contains(">loss<", svg);
        Assert.Contains("regression &lt;run&gt;", svg);
        Assert.Equal(6 * 4, System.Text.RegularExpressions.Regex.Count(svg, "<circle"));
        System.Xml.Linq.XDocument.Parse(svg);
    }
}
