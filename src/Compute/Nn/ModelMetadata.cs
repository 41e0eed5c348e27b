namespace Cluster.Compute;

/// <summary>
/// What a model needs besides its weights to be used on raw data: the input transform x' = (x - offset) * scale
/// applied to each feature, feature and class names.
/// </summary>
public sealed record ModelMetadata
{
    /// <summary>Name of the data the model was trained on (mnist, a CSV file name).</summary>
    public string? Dataset { get; init; }

    /// <summary>Per-feature offsets subtracted before scaling; null means 0.</summary>
    public float[]? InputOffset { get; init; }

    /// <summary>Per-feature scales; null means 1.</summary>
    public float[]? InputScale { get; init; }

    /// <summary>Feature column names, when known.</summary>
    public string[]? FeatureNames { get; init; }

    /// <summary>Name of the label column, when known.</summary>
    public string? LabelName { get; init; }

    /// <summary>Class names by class index, for classifiers.</summary>
    public string[]? ClassNames { get; init; }

    /// <summary>Applies the input transform to one row of raw features, in place.</summary>
    public void TransformInput(Span<float> row)
    {
        for (var j = 0; j < row.Length; j++)
        {
            var offset = InputOffset is null ? 0f : InputOffset[j];
            var scale = InputScale is null ? 1f : InputScale[j];
            row[j] = (row[j] - offset) * scale;
        }
    }
}
