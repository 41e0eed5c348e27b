using Cluster.Compute.Randomness;

namespace Cluster.Compute.Data;

/// <summary>
/// Samples in memory: features row-major (Count x FeatureCount) and either class labels (classification) or
/// real-valued targets (regression).
/// </summary>
public sealed class Dataset
{
    /// <summary>Creates a dataset, checking that the arrays agree.</summary>
    public Dataset(string name, int featureCount, float[] features, int[]? labels, int classCount, float[]? targets = null, int targetCount = 0, string[]? classNames = null, string[]? featureNames = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(featureCount, 1);
        if (features.Length % featureCount != 0)
        {
            throw new ArgumentException($"{features.Length} feature values are not a whole number of {featureCount}-wide rows.");
        }

        Name = name;
        FeatureCount = featureCount;
        Features = features;
        Count = features.Length / featureCount;
        if ((labels is null) == (targets is null))
        {
            throw new ArgumentException("A dataset has either labels (classification) or targets (regression).");
        }

        if (labels is not null)
        {
            if (labels.Length != Count)
            {
                throw new ArgumentException($"{labels.Length} labels for {Count} samples.");
            }

            ArgumentOutOfRangeException.ThrowIfLessThan(classCount, 2);
            foreach (var label in labels)
            {
                if ((uint)label >= (uint)classCount)
                {
                    throw new ArgumentException($"Label {label} is outside 0..{classCount - 1}.");
                }
            }
        }

        if (targets is not null)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(targetCount, 1);
            if (targets.Length != Count * targetCount)
            {
                throw new ArgumentException($"{targets.Length} target values for {Count} samples of {targetCount} outputs.");
            }
        }

        Labels = labels;
        ClassCount = labels is null ? 0 : classCount;
        Targets = targets;
        TargetCount = targets is null ? 0 : targetCount;
        ClassNames = classNames;
        FeatureNames = featureNames;
    }

    /// <summary>Name for reports.</summary>
    public string Name { get; }

    /// <summary>Number of samples.</summary>
    public int Count { get; }

    /// <summary>Width of a sample.</summary>
    public int FeatureCount { get; }

    /// <summary>Count x FeatureCount values.</summary>
    public float[] Features { get; }

    /// <summary>Class of each sample, or null for regression.</summary>
    public int[]? Labels { get; }

    /// <summary>Number of classes (0 for regression).</summary>
    public int ClassCount { get; }

    /// <summary>Count x TargetCount values for regression, or null.</summary>
    public float[]? Targets { get; }

    /// <summary>Outputs per sample for regression (0 for classification).</summary>
    public int TargetCount { get; }

    /// <summary>Class names, when known.</summary>
    public string[]? ClassNames { get; }

    /// <summary>Feature names, when known.</summary>
    public string[]? FeatureNames { get; }

    /// <summary>True when the samples carry class labels.</summary>
    public bool IsClassification => Labels is not null;

    /// <summary>One sample's features.</summary>
    public ReadOnlySpan<float> Row(int index) => Features.AsSpan(index * FeatureCount, FeatureCount);

    /// <summary>
    /// This dataset with its feature columns in the order of <paramref name="names"/> (a model's, or a training file's):
    /// the same columns in another order are put in that order, so no feature is read as another; a missing, unknown or
    /// repeated column is an error that names both lists. Where either side has no names (MNIST, a model written by hand)
    /// it is returned as it is, and the column count alone is checked by the caller.
    /// </summary>
    /// <param name="names">The feature names wanted, in order.</param>
    /// <param name="whose">Whose columns they are, for the error ("the model").</param>
    public Dataset WithColumnsOf(string[]? names, string whose)
    {
        if (names is null || FeatureNames is null || names.SequenceEqual(FeatureNames, StringComparer.OrdinalIgnoreCase))
        {
            return this;
        }

        // Each wanted name's column; the lists match when that is a one-to-one map (a repeated name on either side
        // leaves a column unmatched or matched twice).
        var mine = FeatureNames;
        var source = names.Select(n => Array.FindIndex(mine, f => string.Equals(f, n, StringComparison.OrdinalIgnoreCase))).ToArray();
        if (names.Length != FeatureNames.Length || source.Contains(-1) || source.Distinct().Count() != source.Length)
        {
            throw new InvalidDataException($"{Name}'s feature columns are {string.Join(", ", FeatureNames)}; {whose} takes {string.Join(", ", names)}.");
        }

        var features = new float[Features.Length];
        for (var s = 0; s < Count; s++)
        {
            var row = Row(s);
            var to = features.AsSpan(s * FeatureCount, FeatureCount);
            for (var j = 0; j < source.Length; j++)
            {
                to[j] = row[source[j]];
            }
        }

        return new Dataset(Name, FeatureCount, features, Labels, ClassCount == 0 ? 2 : ClassCount, Targets, TargetCount, ClassNames, [.. source.Select(i => FeatureNames[i])]);
    }

    /// <summary>A new dataset of the given samples, in the given order.</summary>
    public Dataset Subset(ReadOnlySpan<int> indices, string? name = null)
    {
        var features = new float[indices.Length * FeatureCount];
        int[]? labels = Labels is null ? null : new int[indices.Length];
        float[]? targets = Targets is null ? null : new float[indices.Length * TargetCount];
        for (var i = 0; i < indices.Length; i++)
        {
            var s = indices[i];
            Row(s).CopyTo(features.AsSpan(i * FeatureCount));
            if (labels is not null)
            {
                labels[i] = Labels![s];
            }

            if (targets is not null)
            {
                Targets.AsSpan(s * TargetCount, TargetCount).CopyTo(targets.AsSpan(i * TargetCount));
            }
        }

        return new Dataset(name ?? Name, FeatureCount, features, labels, ClassCount == 0 ? 2 : ClassCount, targets, TargetCount, ClassNames, FeatureNames);
    }

    /// <summary>Splits off a seeded random <paramref name="fraction"/> of the samples as a validation set.</summary>
    public (Dataset Train, Dataset Validation) Split(double fraction, ulong seed)
    {
        if (!(fraction > 0 && fraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "The validation fraction must be between 0 and 1.");
        }

        var validationCount = (int)Math.Round(Count * fraction);
        if (validationCount < 1 || validationCount >= Count)
        {
            throw new ArgumentException($"A validation fraction of {fraction} of {Count} samples leaves no training or no validation samples.");
        }

        var order = new int[Count];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        new Rng(CounterRandom.Hash(seed, CounterRandom.Streams.Split, 0, 0)).Shuffle(order.AsSpan());
        var trainIdx = order.AsSpan(0, Count - validationCount).ToArray();
        var valIdx = order.AsSpan(Count - validationCount).ToArray();
        Array.Sort(trainIdx);
        Array.Sort(valIdx);
        return (Subset(trainIdx, Name), Subset(valIdx, Name + " (validation)"));
    }

    /// <summary>Width the model's output must have for this data and loss.</summary>
    public int OutputWidth(LossKind loss) =>
        !IsClassification ? TargetCount : (ClassCount == 2 && loss != LossKind.CrossEntropy ? 1 : ClassCount);
}
