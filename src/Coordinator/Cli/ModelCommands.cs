using Cluster.Contracts.Configuration;
using System.CommandLine;
using System.Globalization;
using System.Numerics.Tensors;
using Cluster.Compute;
using Cluster.Compute.Backends;
using Cluster.Compute.Data;
using Cluster.Compute.Models;

namespace Cluster.Coordinator.Cli;

/// <summary><c>evaluate</c>, <c>predict</c> and <c>summary</c>: using a saved model.</summary>
public static class ModelCommands
{
    private const int Chunk = 1000;

    /// <summary>cluster evaluate --model FILE [--dataset mnist|CSV --label NAME].</summary>
    public static Command Evaluate()
    {
        var command = new Command("evaluate", "Loss and accuracy (or RMSE) of a saved model on the MNIST test set or a labelled CSV file.");
        var model = ModelOption();
        var dataset = EnvOption.Create("--dataset", "mnist (its test set), or a CSV file with the label column.", "CLUSTER_DATASET", "mnist");
        var dataDir = EnvOption.Create("--data-dir", "Folder of the MNIST files (fetched when missing).", "CLUSTER_DATA_DIR", Path.Combine("data", "mnist"));
        var label = new Option<string?>("--label") { Description = "Label column of the CSV file (default: the one the model was trained on)." };
        command.Options.Add(model);
        command.Options.Add(dataset);
        command.Options.Add(dataDir);
        command.Options.Add(label);
        CliApp.SetHandler(command, async (r, output, cancellationToken) =>
        {
            var m = ModelFile.Load(r.GetValue(model)!);
            Dataset data;
            var name = r.GetValue(dataset)!;
            if (string.Equals(name, "mnist", StringComparison.OrdinalIgnoreCase))
            {
                if (r.GetValue(label) is not null)
                {
                    throw new ArgumentException("--label applies to a CSV --dataset; MNIST brings its own labels. Leave it out, or give --dataset a CSV file.");
                }

                if (m.InputSize != Mnist.Pixels)
                {
                    // Said before MNIST is fetched for nothing.
                    var trainedOn = m.Metadata.Dataset is { } d ? $" (it was trained on {d})" : "";
                    throw new ArgumentException($"The model takes {m.InputSize} inputs{trainedOn}; an MNIST image has {Mnist.Pixels}. Give its data with --dataset FILE.csv.");
                }

                if (!Mnist.TakesScaledPixels(m.Metadata))
                {
                    // A model trained on a CSV of pixels takes them through the transform fitted on that file; MNIST's test set
                    // comes scaled to [0, 1], and its accuracy would be that of other inputs than the model's.
                    var trainedOn = m.Metadata.Dataset is { } d ? $" on {d}" : "";
                    throw new ArgumentException($"The model was trained{trainedOn} with an input transform of its own (offsets and scales fitted on its data), so MNIST's test set, with pixels scaled to [0, 1], is not the data it takes. Give data like its own with --dataset FILE.csv.");
                }

                await MnistFetcher.EnsureAsync(r.GetValue(dataDir)!, log: s => output.WriteLine(s), cancellationToken: cancellationToken).ConfigureAwait(false);
                data = Mnist.LoadTest(r.GetValue(dataDir)!);
            }
            else
            {
                var labelName = r.GetValue(label) ?? m.Metadata.LabelName
                    ?? throw new ArgumentException("The model does not record its label column; pass --label.");
                data = CsvLoader.Load(name, labelName, m.Metadata.ClassNames is null ? CsvTask.Regression : CsvTask.Classification, m.Metadata.ClassNames)
                    .WithColumnsOf(m.Metadata.FeatureNames, "the model");
                Standardizer.Apply(data, m.Metadata);
            }

            if (data.FeatureCount != m.InputSize)
            {
                throw new ArgumentException($"The model takes {m.InputSize} inputs but the data has {data.FeatureCount} features.");
            }

            using var backend = new ManagedBackend(Environment.ProcessorCount);
            var stats = new GradientEngine(m, backend, Chunk).Evaluate(data, m.Parameters);
            var c = CultureInfo.InvariantCulture;
            output.WriteLine(data.IsClassification
                ? string.Create(c, $"{data.Name}: {stats.Count:N0} samples, loss {stats.MeanLoss:0.0000}, accuracy {stats.Accuracy * 100:0.00}%")
                : string.Create(c, $"{data.Name}: {stats.Count:N0} samples, loss {stats.MeanLoss:0.00000}, RMSE {stats.Rmse(m.OutputSize):0.00000}"));
            return 0;
        });
        return command;
    }

    /// <summary>What <c>summary</c> says of the data a model takes, from its metadata: what predict and evaluate need.</summary>
    internal static IEnumerable<string> DescribeData(Sequential model)
    {
        var m = model.Metadata;
        if (m.Dataset is { } dataset)
        {
            yield return $"Trained on: {dataset}";
        }

        if (m.LabelName is not null || m.ClassNames is not null)
        {
            var label = m.LabelName is { } name ? $"label column {name}, " : "";
            yield return m.ClassNames is { } classes
                ? $"Predicts: {label}{classes.Length} classes: {Listed(classes)}"
                : $"Predicts: {label}a number (regression)";
        }

        if (m.FeatureNames is { } features)
        {
            yield return $"Input columns: {Listed(features)}";
        }

        yield return m.InputOffset is null && m.InputScale is null
            ? "Input transform: none (inputs are used as given)"
            : Mnist.TakesScaledPixels(m)
                ? "Input transform: x / 255 (raw pixels to [0, 1])"
                : $"Input transform: (x - offset) * scale, one of each per input, fitted on {m.Dataset ?? "its training data"}";

        static string Listed(string[] names) => names.Length <= 12
            ? string.Join(", ", names)
            : string.Create(CultureInfo.InvariantCulture, $"{string.Join(", ", names.Take(10))}, ... {names[^1]} ({names.Length:N0} in all)");
    }

    /// <summary>cluster predict --model FILE --input CSV [--output CSV].</summary>
    public static Command Predict()
    {
        var command = new Command("predict", "Predict for each row of a CSV file of raw features (the model's input transform is applied); a column named like the model's label is ignored.");
        var model = ModelOption();
        var input = new Option<string>("--input") { Description = "CSV file with a header row and one sample per row.", Required = true };
        var outputPath = new Option<string?>("--output") { Description = "Write the predictions here as CSV instead of to standard output." };
        command.Options.Add(model);
        command.Options.Add(input);
        command.Options.Add(outputPath);
        CliApp.SetHandler(command, (r, output, _) =>
        {
            if (r.GetValue(outputPath) is { } written && new[] { ("--input", r.GetValue(input)!), ("--model", r.GetValue(model)!) }
                .FirstOrDefault(f => string.Equals(Path.GetFullPath(f.Item2), Path.GetFullPath(written), StringComparison.Ordinal)) is { Item1: { } read })
            {
                throw new ArgumentException($"--output names {read}'s file, {written}; the predictions would replace it. Give --output another name.");
            }

            var m = ModelFile.Load(r.GetValue(model)!);
            var data = LoadFeatures(r.GetValue(input)!, m);
            using var backend = new ManagedBackend(1);
            var engine = new GradientEngine(m, backend, Chunk);
            var path = r.GetValue(outputPath);
            using var writer = path is null ? null : new StreamWriter(path);
            var target = writer ?? output;
            var c = CultureInfo.InvariantCulture;
            var classes = m.Metadata.ClassNames;
            var k = m.OutputSize;
            target.WriteLine(classes is null ? string.Join(',', Enumerable.Range(0, k).Select(i => k == 1 ? "prediction" : $"output{i}")) : "prediction,confidence");
            for (var start = 0; start < data.Count; start += Chunk)
            {
                var n = Math.Min(Chunk, data.Count - start);
                var y = engine.Predict(data.Features.AsSpan(start * data.FeatureCount, n * data.FeatureCount), n, m.Parameters);
                for (var i = 0; i < n; i++)
                {
                    var row = y.Slice(i * k, k);
                    if (classes is null)
                    {
                        target.WriteLine(string.Join(',', row.ToArray().Select(v => v.ToString("R", c))));
                    }
                    else
                    {
                        var cls = k == 1 ? (row[0] >= 0.5f ? 1 : 0) : TensorPrimitives.IndexOfMax(row);
                        var confidence = k == 1 ? (cls == 1 ? row[0] : 1 - row[0]) : row[cls];
                        target.WriteLine(string.Create(c, $"{classes[cls]},{confidence:0.######}"));
                    }
                }
            }

            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>cluster summary --model FILE.</summary>
    public static Command Summary()
    {
        var command = new Command("summary", "Print a saved model's layers and parameter counts, and what it takes: the data it was trained on, its label and classes, its input columns and input transform.");
        var model = ModelOption();
        command.Options.Add(model);
        CliApp.SetHandler(command, (r, output, _) =>
        {
            var m = ModelFile.Load(r.GetValue(model)!);
            output.Write(m.Summary());
            foreach (var line in DescribeData(m))
            {
                output.WriteLine(line);
            }

            return Task.FromResult(0);
        });
        return command;
    }

    private static Option<string> ModelOption() => new("--model") { Description = "Model file (binary, or .json).", Required = true };

    private static Dataset LoadFeatures(string path, Sequential model)
    {
        // A labelled file can be fed as is: its label column is left out, whatever it holds (a blank, a new class).
        var data = CsvLoader.Load(path, labelColumn: null, skipColumn: model.Metadata.LabelName).WithColumnsOf(model.Metadata.FeatureNames, "the model");
        if (data.FeatureCount != model.InputSize)
        {
            throw new ArgumentException($"{path} has {data.FeatureCount} feature columns; the model takes {model.InputSize}.");
        }

        Standardizer.Apply(data, model.Metadata);
        return data;
    }
}
