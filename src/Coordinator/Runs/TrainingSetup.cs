using System.Globalization;
using Cluster.Compute;
using Cluster.Compute.Data;
using Cluster.Compute.Models;

namespace Cluster.Coordinator.Runs;

/// <summary>Turns <see cref="TrainSettings"/> into loaded data and a built (or loaded) model.</summary>
public static class TrainingSetup
{
    /// <summary>Loads the data (fetching MNIST when missing), applies the input transform, splits, and builds the model.</summary>
    public static async Task<PreparedRun> PrepareAsync(TrainSettings s, Action<string> log, CancellationToken cancellationToken)
    {
        Sequential? initial = s.InitModel is null ? null : ModelFile.Load(s.InitModel);
        Dataset train;
        Dataset? test;
        string name;
        ModelMetadata metadata;
        if (string.Equals(s.Dataset, "mnist", StringComparison.OrdinalIgnoreCase))
        {
            if (initial is not null)
            {
                // Said before MNIST is fetched and loaded for a model that cannot take it.
                var trainedOn = initial.Metadata.Dataset is { } d ? $" on {d}" : "";
                if (initial.InputSize != Mnist.Pixels)
                {
                    throw new ArgumentException($"--init-model takes {initial.InputSize} inputs (it was trained{trainedOn}); an MNIST image has {Mnist.Pixels}.");
                }

                if (!Mnist.TakesScaledPixels(initial.Metadata))
                {
                    // Its weights were fitted to inputs through that transform; the model saved at the end would keep
                    // the transform, and evaluate and predict would then feed it other inputs than it was trained on.
                    throw new ArgumentException($"--init-model was trained{trainedOn} with an input transform of its own (offsets and scales fitted on its data), so MNIST's pixels, scaled to [0, 1], are not the data it takes. Start from a model trained on MNIST, or train it on data like its own with --dataset FILE.csv.");
                }
            }

            await MnistFetcher.EnsureAsync(s.DataDir, log: log, cancellationToken: cancellationToken).ConfigureAwait(false);
            train = Mnist.LoadTrain(s.DataDir);
            test = Mnist.LoadTest(s.DataDir);
            name = "mnist";
            metadata = new ModelMetadata
            {
                Dataset = name,
                InputScale = Enumerable.Repeat(Mnist.PixelScale, train.FeatureCount).ToArray(),
                ClassNames = train.ClassNames,
            };
        }
        else
        {
            if (s.Label is null)
            {
                throw new ArgumentException($"A CSV dataset needs --label to name its label column ({s.Dataset}).");
            }

            var classNames = initial?.Metadata.ClassNames;
            train = CsvLoader.Load(s.Dataset, s.Label, s.Task, classNames).WithColumnsOf(initial?.Metadata.FeatureNames, "the --init-model");
            test = s.TestData is null ? null : CsvLoader.Load(s.TestData, s.Label, train.IsClassification ? CsvTask.Classification : CsvTask.Regression, train.ClassNames)
                .WithColumnsOf(train.FeatureNames, Path.GetFileName(s.Dataset));
            name = Path.GetFileName(s.Dataset);
            metadata = new ModelMetadata { Dataset = name, FeatureNames = train.FeatureNames, LabelName = s.Label, ClassNames = train.ClassNames };
            if (initial is not null)
            {
                metadata = initial.Metadata;
                Standardizer.Apply(train, metadata);
                if (test is not null)
                {
                    Standardizer.Apply(test, metadata);
                }
            }
            else if (s.Standardize)
            {
                var (offset, scale) = Standardizer.Fit(train);
                metadata = metadata with { InputOffset = offset, InputScale = scale };
                Standardizer.Apply(train, metadata);
                if (test is not null)
                {
                    Standardizer.Apply(test, metadata);
                }
            }
        }

        Dataset? validation = null;
        if (s.ValidationSplit > 0)
        {
            (train, validation) = train.Split(s.ValidationSplit, s.Seed);
        }

        var model = initial ?? Build(s, train, metadata);
        if (initial is not null)
        {
            Check(initial, train, s);
            // What the model is trained on now: MNIST's pixels (a CSV run keeps the --init-model's transform and names).
            initial.Metadata = metadata;
        }

        var options = s.ToTrainingOptions();
        options.Validate(validation is not null);
        return new PreparedRun(name, train, validation, test, model, options);
    }

    /// <summary>The model the settings describe for this data, initialised from the seed.</summary>
    public static Sequential Build(TrainSettings s, Dataset train, ModelMetadata metadata)
    {
        var loss = s.Loss ?? (train.IsClassification ? LossKind.CrossEntropy : LossKind.MeanSquaredError);
        if (!train.IsClassification && loss == LossKind.CrossEntropy)
        {
            throw new ArgumentException("Cross-entropy needs class labels; this data is a regression (use --loss mse or --task classification).");
        }

        var output = s.OutputActivation ?? loss switch
        {
            LossKind.CrossEntropy => Activation.Softmax,
            LossKind.BinaryCrossEntropy => Activation.Sigmoid,
            _ => train.IsClassification ? Activation.Sigmoid : Activation.Identity,
        };
        if (s.Activation == Activation.Softmax)
        {
            throw new ArgumentException("--activation softmax is for output layers only; pick relu, sigmoid, tanh, identity or step for hidden layers.");
        }

        if (!(s.Dropout >= 0 && s.Dropout < 1))
        {
            throw new ArgumentException("--dropout must be in [0, 1).");
        }

        var specs = Sequential.Stack(s.Hidden, s.Activation, train.OutputWidth(loss), output, s.Dropout, s.Init);
        var model = new Sequential(train.FeatureCount, specs, loss, metadata);
        model.Initialize(s.Seed);
        return model;
    }

    private static void Check(Sequential model, Dataset train, TrainSettings s)
    {
        if (model.InputSize != train.FeatureCount)
        {
            throw new ArgumentException($"--init-model takes {model.InputSize} inputs but the data has {train.FeatureCount} features.");
        }

        if (s.Loss is { } loss && loss != model.Loss)
        {
            throw new ArgumentException($"--init-model was trained with {Names.Of(model.Loss)}, not {Names.Of(loss)}; drop --loss or start from scratch.");
        }

        var width = train.OutputWidth(model.Loss);
        if (model.OutputSize != width)
        {
            throw new ArgumentException($"--init-model has {model.OutputSize} outputs but the data needs {width}.");
        }

        // The model keeps its own shape: an option that would shape it otherwise is a mistake, not something to ignore.
        var dense = model.Specs.Where(p => p.Kind == "dense").ToList();
        var hidden = dense.SkipLast(1).ToList();
        var dropout = model.Specs.FirstOrDefault(p => p.Kind == "dropout")?.Rate ?? 0f;
        static ArgumentException Differs(string option, string given, string its) =>
            new($"{option} {given} differs from the --init-model's {its}; drop {option} (the model keeps its own) or start from scratch.");
        if (s.ShapeGiven.Contains("--layers") && !hidden.Select(h => h.Units).SequenceEqual(s.Hidden))
        {
            throw Differs("--layers", s.Hidden.Length == 0 ? "(none)" : string.Join(',', s.Hidden), hidden.Count == 0 ? "(no hidden layers)" : $"hidden layers {string.Join(',', hidden.Select(h => h.Units))}");
        }

        if (s.ShapeGiven.Contains("--activation") && hidden.FirstOrDefault(h => h.Activation != s.Activation) is { } other)
        {
            throw Differs("--activation", Names.Of(s.Activation), $"hidden activation {Names.Of(other.Activation)}");
        }

        if (s.OutputActivation is { } output && output != dense[^1].Activation)
        {
            throw Differs("--output-activation", Names.Of(output), $"output activation {Names.Of(dense[^1].Activation)}");
        }

        if (s.ShapeGiven.Contains("--dropout") && s.Dropout != dropout)
        {
            throw Differs("--dropout", s.Dropout.ToString(CultureInfo.InvariantCulture), $"dropout {dropout.ToString(CultureInfo.InvariantCulture)}");
        }

        if (s.ShapeGiven.Contains("--init"))
        {
            throw new ArgumentException("--init chooses random starting weights and --init-model gives them; use one of the two.");
        }
    }
}
