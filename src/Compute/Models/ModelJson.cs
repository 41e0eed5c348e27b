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

    /// <summary>
    /// Reads a model from a parsed document. A missing or mistyped field, a weight array of the wrong length and metadata
    /// that does not fit the layers (a transform or feature names not one per input, class names not one per output or
    /// repeated) are refused with where they are.
    /// </summary>
    public static Sequential Read(JsonElement root, bool requireWeights)
    {
        try
        {
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.String || format.GetString() != Format)
            {
                throw new InvalidDataException($"Not a model document: expected \"format\": \"{Format}\".");
            }

            const string Document = "the model document";
            var version = WholeNumber(root, "version", Document);
            if (version > Version)
            {
                throw new InvalidDataException($"The model was written by a newer format version ({version}); this build reads up to {Version}.");
            }

            var inputSize = WholeNumber(root, "inputSize", Document);
            if (inputSize < 1)
            {
                throw new InvalidDataException($"\"inputSize\" must be at least 1, not {inputSize}.");
            }

            var loss = Parsed(root, "loss", Document, Names.ParseLoss);
            var layers = Field(root, "layers", Document, JsonValueKind.Array);
            var specs = new List<LayerSpec>();
            foreach (var l in layers.EnumerateArray())
            {
                var where = $"layer {specs.Count + 1}";
                specs.Add(Text(l, "type", where) switch
                {
                    "dense" => LayerSpec.Dense(
                        Units(l, where),
                        Parsed(l, "activation", where, Names.ParseActivation),
                        l.TryGetProperty("init", out _) ? Parsed(l, "init", where, Names.ParseInit) : InitKind.Auto),
                    "dropout" => LayerSpec.Dropout(DropoutRate(l, where)),
                    var type => throw new InvalidDataException($"Unknown type '{type}' of {where}; expected dense or dropout."),
                });
            }

            var model = new Sequential(inputSize, specs, loss);
            var index = 0;
            foreach (var l in layers.EnumerateArray())
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

                if (weights.ValueKind != JsonValueKind.Array || weights.GetArrayLength() != d.InputSize)
                {
                    throw new InvalidDataException($"Layer {index} ({d.Describe()}): \"weights\" must be an array of {d.InputSize} rows, one per input; it is {Describe(weights)}.");
                }

                var row = 0;
                foreach (var r in weights.EnumerateArray())
                {
                    ReadNumbers(r, model.Parameters.AsSpan(d.ParameterOffset + row * d.Units, d.Units), $"layer {index} weights row {row}");
                    row++;
                }

                ReadNumbers(l.TryGetProperty("bias", out var bias) ? bias : throw new InvalidDataException($"Layer {index} ({d.Describe()}) has weights but no \"bias\"."), model.Parameters.AsSpan(d.BiasOffset, d.Units), $"layer {index} bias");
            }

            if (root.TryGetProperty("metadata", out var m))
            {
                model.Metadata = ReadMetadata(m, model.InputSize, model.OutputSize);
            }

            return model;
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
        {
            var message = ex is ArgumentException { ParamName: { } name } && ex.Message.IndexOf($" (Parameter '{name}')", StringComparison.Ordinal) is var cut and >= 0
                ? ex.Message[..cut]
                : ex.Message;
            throw new InvalidDataException($"The model document is invalid: {message}", ex);
        }
    }

    private static JsonElement Field(JsonElement obj, string name, string where, JsonValueKind kind)
    {
        if (obj.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{Capitalized(where)} must be a JSON object; it is {Describe(obj)}.");
        }

        if (!obj.TryGetProperty(name, out var value))
        {
            throw new InvalidDataException($"{Capitalized(where)} has no \"{name}\".");
        }

        return value.ValueKind == kind
            ? value
            : throw new InvalidDataException($"\"{name}\" of {where} must be {Article(kind)}; it is {Describe(value)}.");
    }

    private static int WholeNumber(JsonElement obj, string name, string where) =>
        Field(obj, name, where, JsonValueKind.Number) is var value && value.TryGetInt32(out var number)
            ? number
            : throw new InvalidDataException($"\"{name}\" of {where} must be a whole number; it is {Describe(value)}.");

    private static int Units(JsonElement layer, string where)
    {
        var units = WholeNumber(layer, "units", where);
        return units >= 1 ? units : throw new InvalidDataException($"\"units\" of {where} must be at least 1, not {units}.");
    }

    /// <summary>A named choice (a loss, an activation), its error saying where it stands.</summary>
    private static T Parsed<T>(JsonElement obj, string name, string where, Func<string, T> parse)
    {
        var text = Text(obj, name, where);
        try
        {
            return parse(text);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            throw new InvalidDataException($"\"{name}\" of {where}: {ex.Message}", ex);
        }
    }

    private static string Text(JsonElement obj, string name, string where) => Field(obj, name, where, JsonValueKind.String).GetString()!;

    private static float DropoutRate(JsonElement layer, string where) =>
        Field(layer, "rate", where, JsonValueKind.Number) is var value && value.TryGetSingle(out var rate) && rate is >= 0f and < 1f
            ? rate
            : throw new InvalidDataException($"\"rate\" of {where} must be a number in [0, 1); it is {Describe(value)}.");

    private static string Capitalized(string text) => text.Length == 0 ? text : char.ToUpperInvariant(text[0]) + text[1..];

    private static string Article(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        JsonValueKind.String => "a string",
        _ => "a number",
    };

    /// <summary>A JSON value as a message names it: its text when short, else its kind.</summary>
    private static string Describe(JsonElement value)
    {
        var raw = value.GetRawText();
        return value.ValueKind switch
        {
            JsonValueKind.Array => $"an array of {value.GetArrayLength()}",
            JsonValueKind.Object => "an object",
            JsonValueKind.String when raw.Length <= 40 => $"the string {raw}",
            JsonValueKind.String => "a string",
            _ => raw.Length <= 40 ? raw : raw[..40] + "...",
        };
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
            throw new InvalidDataException($"The {what} must be an array of {into.Length} numbers; it is {Describe(array)}.");
        }

        var i = 0;
        foreach (var e in array.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetSingle(out var v) || !float.IsFinite(v))
            {
                throw new InvalidDataException($"The {what} hold {Describe(e)} at index {i}, which is not a finite float32.");
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

    private static ModelMetadata ReadMetadata(JsonElement m, int inputs, int outputs)
    {
        const string Where = "the metadata";
        if (m.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"\"metadata\" must be an object; it is {Describe(m)}.");
        }

        float[]? Floats(string name)
        {
            if (!m.TryGetProperty(name, out var e))
            {
                return null;
            }

            // One per input: a transform of another length would shift every feature, or fail on the first row.
            var values = new float[inputs];
            ReadNumbers(e, values, $"metadata's {name} (one per input)");
            return values;
        }

        string[]? Strings(string name, int count, string each, string why = "")
        {
            if (!m.TryGetProperty(name, out _))
            {
                return null;
            }

            var e = Field(m, name, Where, JsonValueKind.Array);
            if (e.GetArrayLength() != count)
            {
                throw new InvalidDataException($"The metadata's {name} must hold {count} names, one per {each}{why}; it holds {e.GetArrayLength()}.");
            }

            var names = new string[count];
            var i = 0;
            foreach (var x in e.EnumerateArray())
            {
                names[i++] = x.ValueKind == JsonValueKind.String
                    ? x.GetString()!
                    : throw new InvalidDataException($"The metadata's {name} hold {Describe(x)} at index {i - 1}, not a name.");
            }

            if (names.GroupBy(n => n, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } repeated)
            {
                throw new InvalidDataException($"The metadata's {name} hold '{repeated.Key}' {repeated.Count()} times; each {each} needs a name of its own.");
            }

            return names;
        }

        string? Optional(string name) => m.TryGetProperty(name, out _) ? Text(m, name, Where) : null;

        return new ModelMetadata
        {
            Dataset = Optional("dataset"),
            LabelName = Optional("labelName"),
            FeatureNames = Strings("featureNames", inputs, "input"),
            ClassNames = outputs == 1 ? Strings("classNames", 2, "class", " (a single sigmoid output tells two apart)") : Strings("classNames", outputs, "output"),
            InputOffset = Floats("inputOffset"),
            InputScale = Floats("inputScale"),
        };
    }
}
