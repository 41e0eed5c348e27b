using System.Buffers.Binary;
using System.IO.Compression;
using Cluster.Compute.Data;

namespace Cluster.Compute.Tests;

public sealed class DataTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-data-tests").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static byte[] Images(int count, int rows, int cols, int magic = IdxReader.ImagesMagic, int? dataBytes = null)
    {
        var n = dataBytes ?? count * rows * cols;
        var bytes = new byte[16 + n];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12), cols);
        for (var i = 0; i < n; i++)
        {
            bytes[16 + i] = (byte)(i * 7);
        }

        return bytes;
    }

    private static byte[] Labels(params byte[] labels)
    {
        var bytes = new byte[8 + labels.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, IdxReader.LabelsMagic);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), labels.Length);
        labels.CopyTo(bytes, 8);
        return bytes;
    }

    private string Write(string name, byte[] bytes, bool gzip = false)
    {
        var path = Path.Combine(_dir, name);
        if (gzip)
        {
            using var file = File.Create(path);
            using var z = new GZipStream(file, CompressionLevel.Fastest);
            z.Write(bytes);
        }
        else
        {
            File.WriteAllBytes(path, bytes);
        }

        return path;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Idx_ValidFile_ReadsPlainAndGzip(bool gzip)
    {
        var images = IdxReader.ReadImages(Write("i", Images(3, 2, 2), gzip));
        Assert.Equal((3, 2, 2), (images.Count, images.Rows, images.Columns));
        Assert.Equal(7, images.Pixels[1]);
        Assert.Equal([1, 2, 3], IdxReader.ReadLabels(Write("l", Labels(1, 2, 3), gzip)));
    }

    [Fact]
    public void Idx_BadMagic_SaysWhat()
    {
        var ex = Assert.Throws<InvalidDataException>(() => IdxReader.ReadImages(Write("x", Images(1, 2, 2, magic: 0x0801))));
        Assert.Contains("bad magic number", ex.Message);
        Assert.Contains("x", ex.Message);
        Assert.Contains("bad magic", Assert.Throws<InvalidDataException>(() => IdxReader.ReadLabels(Write("y", Images(1, 1, 1)))).Message);
    }

    [Fact]
    public void Idx_Truncated_SaysHowMuch()
    {
        var ex = Assert.Throws<InvalidDataException>(() => IdxReader.ReadImages(Write("t", Images(4, 2, 2, dataBytes: 10), gzip: true)));
        Assert.Contains("truncated", ex.Message);
        Assert.Contains("16 bytes", ex.Message);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => IdxReader.ReadLabels(Write("h", [0, 0, 8]))).Message);
    }

    [Fact]
    public void Idx_CountMismatch_IsReported()
    {
        Assert.Contains("longer than its header", Assert.Throws<InvalidDataException>(() => IdxReader.ReadImages(Write("long", Images(2, 2, 2, dataBytes: 9)))).Message);
        var images = IdxReader.ReadImages(Write("i", Images(3, 2, 2)));
        var ex = Assert.Throws<InvalidDataException>(() => Mnist.FromIdx(images, [1, 2], "set"));
        Assert.Contains("3 images but 2 labels", ex.Message);
        Assert.Contains("not a digit", Assert.Throws<InvalidDataException>(() => Mnist.FromIdx(images, [1, 2, 12], "set")).Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void IdxImageStream_ReadsTheImagesOfRisingRanges_AsTheWholeFileHasThem(bool gzip)
    {
        // 700 images of 28 x 28: ranges that skip a first image, skip 490 KB (several 64 KiB skip buffers), touch, and end the file.
        var path = Write("i", Images(700, 28, 28), gzip);
        var whole = IdxReader.ReadImages(path);
        using var stream = IdxReader.OpenImages(path);
        Assert.Equal((700, 28, 28), (stream.Count, stream.Rows, stream.Columns));
        foreach (var (start, count) in new[] { (1, 2), (3, 0), (3, 4), (7, 1), (650, 40), (690, 10) })
        {
            var pixels = new byte[count * 784];
            stream.Read(start, count, pixels);
            Assert.Equal(whole.Pixels.AsSpan(start * 784, count * 784).ToArray(), pixels);
        }

        stream.Finish();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void IdxImageStream_ReadsBackwardsPastTheEndOrIntoAWrongBuffer_AreRefused(bool gzip)
    {
        using var stream = IdxReader.OpenImages(Write("i", Images(10, 2, 2), gzip));
        stream.Read(4, 2, new byte[8]);
        Assert.Contains("rising index order", Assert.Throws<ArgumentOutOfRangeException>(() => stream.Read(5, 1, new byte[4])).Message);
        Assert.Contains("among the 10", Assert.Throws<ArgumentOutOfRangeException>(() => stream.Read(8, 3, new byte[12])).Message);
        Assert.Contains("take 8 bytes, not 4", Assert.Throws<ArgumentOutOfRangeException>(() => stream.Read(6, 2, new byte[4])).Message);
        // Refusals read nothing: the next image in order still comes.
        var next = new byte[4];
        stream.Read(6, 1, next);
        Assert.Equal(IdxReader.ReadImages(Path.Combine(_dir, "i")).Pixels.AsSpan(24, 4).ToArray(), next);
    }

    [Fact]
    public void IdxImageStream_APlainFileOfTheWrongLength_IsRefusedAsItOpens()
    {
        var ex = Assert.Throws<InvalidDataException>(() => IdxReader.OpenImages(Write("short", Images(4, 2, 2, dataBytes: 10))));
        Assert.Contains("truncated", ex.Message);
        Assert.Contains("16 bytes", ex.Message);
        Assert.Contains("ends after 10", ex.Message);
        Assert.Contains("longer than its header", Assert.Throws<InvalidDataException>(() => IdxReader.OpenImages(Write("long", Images(2, 2, 2, dataBytes: 9)))).Message);
        Assert.Contains("bad magic", Assert.Throws<InvalidDataException>(() => IdxReader.OpenImages(Write("x", Images(1, 2, 2, magic: 0x0801)))).Message);
    }

    [Fact]
    public void IdxImageStream_AGzipFileOfTheWrongLength_IsRefusedWhereItIsRead()
    {
        using (var shorter = IdxReader.OpenImages(Write("short", Images(4, 2, 2, dataBytes: 10), gzip: true)))
        {
            shorter.Read(0, 2, new byte[8]);
            var ex = Assert.Throws<InvalidDataException>(() => shorter.Read(2, 1, new byte[4]));
            Assert.Contains("truncated", ex.Message);
            Assert.Contains("ends after 10", ex.Message);
        }

        using (var shorter = IdxReader.OpenImages(Write("short2", Images(4, 2, 2, dataBytes: 10), gzip: true)))
        {
            shorter.Read(0, 1, new byte[4]);
            Assert.Contains("truncated", Assert.Throws<InvalidDataException>(shorter.Finish).Message);
        }

        using var longer = IdxReader.OpenImages(Write("long", Images(2, 2, 2, dataBytes: 9), gzip: true));
        longer.Read(0, 2, new byte[8]);
        Assert.Contains("longer than its header", Assert.Throws<InvalidDataException>(longer.Finish).Message);
    }

    [Fact]
    public void Mnist_FromIdx_ScalesPixelsToUnitInterval()
    {
        var images = new IdxImages(2, 1, 2, [0, 255, 51, 102]);
        var data = Mnist.FromIdx(images, [3, 9], "m");
        Assert.Equal([0f, 1f, 0.2f, 0.4f], data.Features);
        Assert.Equal(10, data.ClassCount);
    }

    [Fact]
    public void Mnist_FromIdx_ManySlices_ScalesEveryPixelAsTheScalarReference()
    {
        // More pixels than three of the slices scaled in parallel, and a ragged last one: each is x / 255.
        const int count = 4013;
        var pixels = new byte[count * 784];
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (byte)(i * 31 % 256);
        }

        var data = Mnist.FromIdx(new IdxImages(count, 28, 28, pixels), new byte[count], "m");
        Assert.True(pixels.Length > 3 * (1 << 20));
        for (var i = 0; i < pixels.Length; i++)
        {
            Assert.True(data.Features[i] == pixels[i] / 255f, $"pixel {i}: {data.Features[i]} for {pixels[i]}");
        }
    }

    [Fact]
    public void Verify_CorruptFile_NamesItAndSaysWhatToDo()
    {
        foreach (var (name, _) in Mnist.Files)
        {
            Write(name, [1, 2, 3]);
        }

        var ex = Assert.Throws<InvalidDataException>(() => MnistFetcher.Verify(_dir));
        Assert.Contains("train-images-idx3-ubyte", ex.Message);
        Assert.Contains("corrupt", ex.Message);
        Assert.Contains($"cluster data fetch mnist --data-dir {_dir} --force", ex.Message);
        Assert.Equal("039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81", MnistFetcher.Sha256Of(Path.Combine(_dir, "train-images-idx3-ubyte")));
    }

    [Fact]
    public void Mnist_MissingFiles_PointAtFetch() =>
        Assert.Contains("cluster data fetch mnist", Assert.Throws<FileNotFoundException>(() => Mnist.LoadTrain(_dir)).Message);

    [Fact]
    public void Csv_Classification_AndRegression_AreDetected()
    {
        var cls = CsvLoader.Load(new StringReader("a,b,kind\n1,2,cat\n3,4,dog\n5,6,cat\n"), "c.csv", "kind");
        Assert.True(cls.IsClassification);
        Assert.Equal(["cat", "dog"], cls.ClassNames!);
        Assert.Equal([0, 1, 0], cls.Labels!);
        Assert.Equal([1f, 2, 3, 4, 5, 6], cls.Features);

        var reg = CsvLoader.Load(new StringReader("x,y\n1,0.5\n2,1.5\n3,2.25\n"), "r.csv", "y");
        Assert.False(reg.IsClassification);
        Assert.Equal([0.5f, 1.5f, 2.25f], reg.Targets!);

        var forced = CsvLoader.Load(new StringReader("x,y\n1,0\n2,1\n"), "r.csv", "y", CsvTask.Regression);
        Assert.False(forced.IsClassification);
    }

    [Fact]
    public void Csv_BadInput_IsReportedWithLine()
    {
        Assert.Contains("no column named 'z'", Assert.Throws<InvalidDataException>(() => CsvLoader.Load(new StringReader("x,y\n1,2\n"), "f", "z")).Message);
        Assert.EndsWith("the columns are x;y. The header has no commas but ';': fields must be separated by commas.", Assert.Throws<InvalidDataException>(() => CsvLoader.Load(new StringReader("x;y\n1;2\n"), "f", "y")).Message);
        Assert.EndsWith("The header has no commas but '\\t': fields must be separated by commas.", Assert.Throws<InvalidDataException>(() => CsvLoader.Load(new StringReader("x\ty\n1\t2\n"), "f", "y")).Message);
        Assert.EndsWith("the columns are x, y.", Assert.Throws<InvalidDataException>(() => CsvLoader.Load(new StringReader("x,y\n1,2\n"), "f", "z")).Message);
        Assert.Contains("line 3", Assert.Throws<InvalidDataException>(() => CsvLoader.Load(new StringReader("x,y\n1,2\nabc,3\n"), "f", "y")).Message);
        Assert.Contains("2 fields", Assert.Throws<InvalidDataException>(() => CsvLoader.Load(new StringReader("x,y,z\n1,2\n"), "f", "y")).Message);
        Assert.Contains("empty", Assert.Throws<InvalidDataException>(() => CsvLoader.Load(new StringReader(""), "f", "y")).Message);
        // Two columns of one name (ignoring case, as columns are matched): which one a model's 'a' is would be a guess.
        Assert.Equal("f: columns 1 and 3 are both named 'A'; each column needs a name of its own (names are compared ignoring case).",
            Assert.Throws<InvalidDataException>(() => CsvLoader.Load(new StringReader("a,y,A\n1,2,3\n4,5,6\n"), "f", "y")).Message);
        Assert.Contains("both named 'a'", Assert.Throws<InvalidDataException>(() => CsvLoader.Load(new StringReader("a,a\n1,2\n"), "f", null)).Message);
    }

    [Fact]
    public void Split_IsSeededAndDisjoint()
    {
        var data = NetworkTests.Blobs(100, 1);
        var (t1, v1) = data.Split(0.2, 5);
        var (t2, v2) = data.Split(0.2, 5);
        var (_, v3) = data.Split(0.2, 6);
        Assert.Equal((80, 20), (t1.Count, v1.Count));
        Assert.Equal(v1.Features, v2.Features);
        Assert.NotEqual(v1.Features, v3.Features);
        Assert.Equal(t1.Features, t2.Features);
    }

    [Fact]
    public void EpochPermutation_IsSeededPermutation()
    {
        var a = new int[1000];
        var b = new int[1000];
        Randomness.CounterRandom.EpochPermutation(1, 0, a);
        Randomness.CounterRandom.EpochPermutation(1, 0, b);
        Assert.Equal(a, b);
        Assert.Equal(Enumerable.Range(0, 1000), a.Order());
        Randomness.CounterRandom.EpochPermutation(1, 1, b);
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void Standardizer_GivesZeroMeanUnitVariance()
    {
        var data = new Dataset("s", 2, [1, 10, 3, 10, 5, 10], null, 0, [0, 0, 0], 1);
        var (offset, scale) = Standardizer.Fit(data);
        Standardizer.Apply(data, new ModelMetadata { InputOffset = offset, InputScale = scale });
        Tolerances.Close(0, data.Features[0] + data.Features[2] + data.Features[4], 1e-6);
        Tolerances.Close(1.2247, data.Features[4], 1e-3);
        Assert.Equal(0f, data.Features[1]);
    }

    [Fact]
    public void WithColumnsOf_SameColumnsInAnotherOrder_AreReordered_ValuesFollowingTheirNames()
    {
        var data = CsvLoader.Load(new StringReader("b,kind,a,c\n1,cat,2,3\n4,dog,5,6\n"), "d.csv", "kind");
        var ordered = data.WithColumnsOf(["a", "B", "c"], "the model");
        Assert.Equal(["a", "b", "c"], ordered.FeatureNames!);
        Assert.Equal([2f, 1f, 3f, 5f, 4f, 6f], ordered.Features);
        Assert.Equal(data.Labels, ordered.Labels);
        Assert.Same(data, data.WithColumnsOf(["B", "A", "C"], "the model"));
        Assert.Same(data, data.WithColumnsOf(null, "the model"));
    }

    [Theory]
    [InlineData("a,b,d")]
    [InlineData("a,b")]
    [InlineData("a,b,c,d")]
    [InlineData("a,a,b")]
    public void WithColumnsOf_AMissingUnknownOrRepeatedColumn_IsAnError(string wanted)
    {
        var data = CsvLoader.Load(new StringReader("b,kind,a,c\n1,cat,2,3\n4,dog,5,6\n"), "d.csv", "kind");
        var error = Assert.Throws<InvalidDataException>(() => data.WithColumnsOf(wanted.Split(','), "the model"));
        Assert.Equal($"d.csv's feature columns are b, a, c; the model takes {wanted.Replace(",", ", ", StringComparison.Ordinal)}.", error.Message);
    }
}
