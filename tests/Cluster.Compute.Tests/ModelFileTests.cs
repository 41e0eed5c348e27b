using Cluster.Compute.Models;

namespace Cluster.Compute.Tests;

public sealed class ModelFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-model-tests").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static Sequential Sample()
    {
        var model = new Sequential(5, [LayerSpec.Dense(7, Activation.Relu, InitKind.HeNormal), LayerSpec.Dropout(0.3f), LayerSpec.Dense(3, Activation.Softmax)], LossKind.CrossEntropy,
            new ModelMetadata { Dataset = "d", ClassNames = ["a", "b", "c"], InputScale = [1, 2, 3, 4, 5], FeatureNames = ["f1", "f2", "f3", "f4", "f5"], LabelName = "y" });
        model.Initialize(99);
        model.Parameters[3] = 1e-38f;
        model.Parameters[4] = -3.4028235e38f;
        model.Parameters[5] = 0.1f;
        return model;
    }

    private static void AssertSame(Sequential expected, Sequential actual)
    {
        Assert.True(expected.SameArchitecture(actual));
        Assert.Equal(expected.Parameters, actual.Parameters);
        Assert.Equal(expected.Metadata.ClassNames, actual.Metadata.ClassNames);
        Assert.Equal(expected.Metadata.InputScale, actual.Metadata.InputScale);
        Assert.Equal(expected.Metadata.LabelName, actual.Metadata.LabelName);
    }

    [Fact]
    public void Binary_SaveLoad_IsExact()
    {
        var model = Sample();
        var path = Path.Combine(_dir, "m.bin");
        ModelFile.Save(model, path);
        AssertSame(model, ModelFile.Load(path));
        Assert.False(File.Exists(path + ".tmp"));
    }

    [Fact]
    public void Json_ExportImport_IsExact()
    {
        var model = Sample();
        var json = ModelJson.Export(model);
        Assert.Contains("\"activation\":\"relu\"", json);
        AssertSame(model, ModelJson.Import(json));
        var path = Path.Combine(_dir, "m.json");
        ModelFile.Save(model, path);
        AssertSame(model, ModelFile.Load(path));
    }

    [Fact]
    public void Binary_FlippedByte_IsDetectedAsCorrupt()
    {
        var bytes = ModelFile.ToBytes(Sample());
        bytes[bytes.Length / 2] ^= 0x10;
        var path = Path.Combine(_dir, "bad.bin");
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<InvalidDataException>(() => ModelFile.Load(path));
        Assert.Contains("checksum", ex.Message);
        Assert.Contains("bad.bin", ex.Message);
        Assert.Throws<InvalidDataException>(() => ModelFile.FromBytes(bytes.AsSpan(0, 20)));
    }

    [Fact]
    public void Json_Invalid_IsRejectedClearly()
    {
        Assert.Contains("malformed", Assert.Throws<InvalidDataException>(() => ModelJson.Import("{")).Message);
        Assert.Contains("Not a model", Assert.Throws<InvalidDataException>(() => ModelJson.Import("{\"a\":1}")).Message);
        var json = ModelJson.Export(Sample()).Replace("\"units\":3", "\"units\":4", StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => ModelJson.Import(json));
        var newer = ModelJson.Export(Sample()).Replace("\"version\":1", "\"version\":9", StringComparison.Ordinal);
        Assert.Contains("newer", Assert.Throws<InvalidDataException>(() => ModelJson.Import(newer)).Message);
    }

    [Fact]
    public void Json_NonFiniteWeights_CannotBeWritten()
    {
        var model = Sample();
        model.Parameters[0] = float.NaN;
        Assert.Throws<InvalidOperationException>(() => ModelJson.Export(model));
    }
}
