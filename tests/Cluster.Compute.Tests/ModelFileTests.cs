using System.Text.Json.Nodes;
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

    [Theory]
    [InlineData("no-loss", "The model document has no \"loss\".")]
    [InlineData("unknown-loss", "\"loss\" of the model document: Unknown loss 'hinge'")]
    [InlineData("no-bias", "Layer 3 (Dense(3, softmax)) has weights but no \"bias\".")]
    [InlineData("fractional-units", "\"units\" of layer 1 must be a whole number; it is 7.5.")]
    [InlineData("zero-units", "\"units\" of layer 1 must be at least 1, not 0.")]
    [InlineData("negative-inputs", "\"inputSize\" must be at least 1, not -3.")]
    [InlineData("layers-object", "\"layers\" of the model document must be an array; it is an object.")]
    [InlineData("string-weight", "The layer 1 weights row 1 hold the string \"x\" at index 2, which is not a finite float32.")]
    [InlineData("short-row", "The layer 1 weights row 4 must be an array of 7 numbers; it is an array of 6.")]
    [InlineData("dropout-rate", "\"rate\" of layer 2 must be a number in [0, 1); it is 1.")]
    [InlineData("unknown-activation", "\"activation\" of layer 1: Unknown activation 'swish'")]
    [InlineData("short-scale", "The metadata's inputScale (one per input) must be an array of 5 numbers; it is an array of 2.")]
    [InlineData("feature-names", "The metadata's featureNames must hold 5 names, one per input; it holds 4.")]
    [InlineData("class-names", "The metadata's classNames must hold 3 names, one per output; it holds 2.")]
    [InlineData("repeated-class", "The metadata's classNames hold 'a' 2 times; each output needs a name of its own.")]
    [InlineData("numeric-class", "The metadata's classNames hold 1 at index 0, not a name.")]
    public void Json_AFieldMissingMistypedOrNotFittingTheLayers_IsRefusedWithWhereItIs(string change, string expected)
    {
        // Before, a missing field said "The given key was not present in the dictionary", and metadata that did not fit
        // the layers was taken: a short input transform then failed evaluate with an IndexOutOfRangeException.
        var doc = JsonNode.Parse(ModelJson.Export(Sample()))!.AsObject();
        var layers = doc["layers"]!.AsArray();
        var metadata = doc["metadata"]!.AsObject();
        switch (change)
        {
            case "no-loss": doc.Remove("loss"); break;
            case "unknown-loss": doc["loss"] = "hinge"; break;
            case "no-bias": layers[2]!.AsObject().Remove("bias"); break;
            case "fractional-units": layers[0]!["units"] = 7.5; break;
            case "zero-units": layers[0]!["units"] = 0; break;
            case "negative-inputs": doc["inputSize"] = -3; break;
            case "layers-object": doc["layers"] = new JsonObject(); break;
            case "string-weight": layers[0]!["weights"]![1]![2] = "x"; break;
            case "short-row": layers[0]!["weights"]![4]!.AsArray().RemoveAt(0); break;
            case "dropout-rate": layers[1]!["rate"] = 1; break;
            case "unknown-activation": layers[0]!["activation"] = "swish"; break;
            case "short-scale": metadata["inputScale"] = new JsonArray(1, 2); break;
            case "feature-names": metadata["featureNames"]!.AsArray().RemoveAt(4); break;
            case "class-names": metadata["classNames"] = new JsonArray("a", "b"); break;
            case "repeated-class": metadata["classNames"] = new JsonArray("a", "b", "a"); break;
            case "numeric-class": metadata["classNames"] = new JsonArray(1, 2, 3); break;
            default: throw new ArgumentOutOfRangeException(nameof(change));
        }

        var ex = Assert.Throws<InvalidDataException>(() => ModelJson.Import(doc.ToJsonString()));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_ASingleSigmoidOutput_TakesTwoClassNames()
    {
        var model = new Sequential(2, [LayerSpec.Dense(1, Activation.Sigmoid)], LossKind.BinaryCrossEntropy, new ModelMetadata { ClassNames = ["no", "yes"] });
        model.Initialize(3);
        AssertSame(model, ModelJson.Import(ModelJson.Export(model)));
        var one = ModelJson.Export(model).Replace("[\"no\",\"yes\"]", "[\"yes\"]", StringComparison.Ordinal);
        Assert.Contains("must hold 2 names, one per class (a single sigmoid output tells two apart); it holds 1.", Assert.Throws<InvalidDataException>(() => ModelJson.Import(one)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_NonFiniteWeights_CannotBeWritten()
    {
        var model = Sample();
        model.Parameters[0] = float.NaN;
        Assert.Throws<InvalidOperationException>(() => ModelJson.Export(model));
    }
}
