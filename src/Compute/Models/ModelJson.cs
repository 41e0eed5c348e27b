using System.Text;
using System.Text.Json;

namespace Cluster.Compute.Models;

/// <summary>
/// The model as JSON: layer list, activations, loss, metadata and (optionally) weights as numbers, so a person or
/// another tool can read and write it. Dense weights are written input-major: weights[i][j] links input i to unit j.
/// </summary>
public static class ModelJson
{
    /// <summary>Format tag in every model document.</summary>
    public const string Format = "cluster-model";

    /// <summary>Current format version.</summary>
    public const int Version = 1;

    /// <summary>Writes the model as indented JSON (weights included unless <paramref name="includeWeights"/> is false).</summary>
    public static string Export(Sequential model, bool includeWeights = true)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = includeWeights is false }))
        {
            Write(w, model, includeWeights);
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Writes the model document to <paramref name="w"/>.</summary>
    public static void Write(Utf8JsonWriter w, Sequential model, bool includeWeights)
    {
        w.WriteStartObject();
        w.WriteString("format", Format);
        w.WriteNumber("version", Version);
        w.WriteNumber("inputSize", model.InputSize);
        w.WriteString("loss", Names.Of(model.Loss));
        w.WriteNumber("parameters", model.ParameterCount);
        w.WriteStartArray("layers");
        foreach (var layer in model.Layers)
        {
            w.WriteStartObject();
            w.WriteString("type", layer.Kind);
            switch (layer)
            {
                case DenseLayer d:
                    w.WriteNumber("units", d.Units);
                    w.WriteString("activation", Names.Of(d.Activation));
                    w.WriteString("init", Names.Of(d.Init));
                    if (includeWeights)
                    {
                        w.WriteStartArray("weights");
                        for (var i = 0; i < d.InputSize; i++)
                        {
                            WriteNumbers(w, model.Parameters.AsSpan(d.ParameterOffset + i * d.Units, d.Units), $"weights of layer {d.Describe()}");
                        }

                        w.WriteEndArray();
                        w.WritePropertyName("bias");
                        WriteNumbers(w, model.Parameters.AsSpan(d.BiasOffset, d.Units), $"bias of layer {d.Describe()}");
                    }

                    break;
                case DropoutLayer p:
                    w.WriteNumber("rate", p.Rate);
                    break;
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
        WriteMetadata(w, model.Metadata);
        w.WriteEndObject();
    }

    /// <summary>Reads a model document; weights are required unless <paramref name="requireWeights"/> is false.</summary>
    public static Sequential Import(string json, bool requireWeights = true)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"The model JSON is malformed: {ex.Message}", ex);
        }

        using (doc)
        {
            return Read(doc.RootElement, requireWeights);
        }
    }

    /// <summary>Reads a model from a parsed document.</summary>
    public static Sequential Read(JsonElement root, bool requireWeights)
    {
        try
        {
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("format", out var format) || format.GetString() != Format)
            {
                throw new InvalidDataException($"Not a model document: expected \"format\": \"{Format}\".");
            }

            var version = root.GetProperty("version").GetInt32();
            if (version > Version)
            {
                throw new InvalidDataException($"The model was written by a newer format version ({version}); this build reads up to {Version}.");
            }

            var inputSize = root.GetProperty("inputSize").GetInt32();
            var loss = Names.ParseLoss(root.GetProperty("loss").GetString() ?? "");
            var specs = new List<LayerSpec>();
            foreach (var l in root.GetProperty("layers").EnumerateArray())
            {
                var type = l.GetProperty("type").GetString();
                specs.Add(type switch
                {
                    "dense" => LayerSpec.Dense(
                        l.GetProperty("units").GetInt32(),
                        Names.ParseActivation(l.GetProperty("activation").GetString() ?? ""),
                        l.TryGetProperty("init", out var init) ? Names.ParseInit(init.GetString() ?? "auto") : InitKind.Auto),
                    "dropout" => LayerSpec.Dropout(l.GetProperty("rate").GetSingle()),
                    _ => throw new InvalidDataException($"Unknown layer type '{type}'."),
                });
            }

            var metadata = root.TryGetProperty("metadata", out var m) ? ReadMetadata(m) : null;
            var model = new Sequential(inputSize, specs, loss, metadata);
            var index = 0;
            foreach (var l in root.GetProperty("layers").EnumerateArray())
            {
                if (model.Layers[index++] is not DenseLayer d)
                {
                    continue;
                }

                if (!l.TryGetProperty("weights", out var weights))
                {
                    if (requireWeights)
                    {
                        throw new InvalidDataException($"Layer {index} ({d.Describe()}) has no weights.");
                    }

                    continue;
                }

                if (weights.GetArrayLength() != d.InputSize)
                {
                    throw new InvalidDataException($"Layer {index} ({d.Describe()}): weights has {weights.GetArrayLength()} rows, expected one per input ({d.InputSize}).");
                }

                var row = 0;
                foreach (var r in weights.EnumerateArray())
                {
                    ReadNumbers(r, model.Parameters.AsSpan(d.ParameterOffset + row * d.Units, d.Units), $"layer {index} weights row {row}");
                    row++;
                }

                ReadNumbers(l.GetProperty("bias"), model.Parameters.AsSpan(d.BiasOffset, d.Units), $"layer {index} bias");
            }

            return model;
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"The model document is invalid: {ex.Message}", ex);
        }
    }

    private static void WriteNumbers(Utf8JsonWriter w, ReadOnlySpan<float> values, string what)
    {
        w.WriteStartArray();
        foreach (var v in values)
        {
            if (!float.IsFinite(v))
            {
                throw new InvalidOperationException($"The {what} hold a non-finite value ({v}); such a model cannot be written as JSON.");
            }

            w.WriteNumberValue(v);
        }

        w.WriteEndArray();
    }

    private static void ReadNumbers(JsonElement array, Span<float> into, string what)
    {
        if (array.ValueKind != JsonValueKind.Array || array.GetArrayLength() != into.Length)
        {
            throw new InvalidDataException($"The {what} must be an array of {into.Length} numbers.");
        }

        var i = 0;
        foreach (var e in array.EnumerateArray())
        {
            var v = e.GetSingle();
            if (!float.IsFinite(v))
            {
                throw new InvalidDataException($"The {what} hold a value that is not a finite float32.");
            }

            into[i++] = v;
        }
    }

    private static void WriteMetadata(Utf8JsonWriter w, ModelMetadata m)
    {
        w.WriteStartObject("metadata");
        if (m.Dataset is not null)
        {
            w.WriteString("dataset", m.Dataset);
        }

        if (m.LabelName is not null)
        {
            w.WriteString("labelName", m.LabelName);
        }

        WriteStrings(w, "featureNames", m.FeatureNames);
        WriteStrings(w, "classNames", m.ClassNames);
        if (m.InputOffset is not null)
        {
            w.WritePropertyName("inputOffset");
            WriteNumbers(w, m.InputOffset, "input offsets");
        }

        if (m.InputScale is not null)
        {
            w.WritePropertyName("inputScale");
            WriteNumbers(w, m.InputScale, "input scales");
        }

        w.WriteEndObject();
    }

    private static void WriteStrings(Utf8JsonWriter w, string name, string[]? values)
    {
        if (values is null)
        {
            return;
        }

        w.WriteStartArray(name);
        foreach (var v in values)
        {
            w.WriteStringValue(v);
        }

        w.WriteEndArray();
    }

    private static ModelMetadata ReadMetadata(JsonElement m)
    {
        float[]? Floats(string name)
        {
            if (!m.TryGetProperty(name, out var e))
            {
                return null;
            }

            var values = new float[e.GetArrayLength()];
            ReadNumbers(e, values, name);
            return values;
        }

        string[]? Strings(string name) =>
            m.TryGetProperty(name, out var e) ? [.. e.EnumerateArray().Select(x => x.GetString() ?? "")] : null;

        return new ModelMetadata
        {
            Dataset = m.TryGetProperty("dataset", out var d) ? d.GetString() : null,
            LabelName = m.TryGetProperty("labelName", out var l) ? l.GetString() : null,
            FeatureNames = Strings("featureNames"),
            ClassNames = Strings("classNames"),
            InputOffset = Floats("inputOffset"),
            InputScale = Floats("inputScale"),
        };
    }
}
