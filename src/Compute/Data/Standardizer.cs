namespace Cluster.Compute.Data;

/// <summary>Z-score scaling of features, fitted on training data and stored in the model's metadata.</summary>
public static class Standardizer
{
    /// <summary>Per-feature mean and 1 / standard deviation (1 for constant columns).</summary>
    public static (float[] Offset, float[] Scale) Fit(Dataset data)
    {
        var d = data.FeatureCount;
        var mean = new double[d];
        var sq = new double[d];
        for (var i = 0; i < data.Count; i++)
        {
            var row = data.Row(i);
            for (var j = 0; j < d; j++)
            {
                mean[j] += row[j];
                sq[j] += (double)row[j] * row[j];
            }
        }

        var offset = new float[d];
        var scale = new float[d];
        for (var j = 0; j < d; j++)
        {
            var m = mean[j] / data.Count;
            var variance = Math.Max(0, sq[j] / data.Count - m * m);
            offset[j] = (float)m;
            scale[j] = variance > 1e-12 ? (float)(1 / Math.Sqrt(variance)) : 1f;
        }

        return (offset, scale);
    }

    /// <summary>Applies x' = (x - offset) * scale to every row, in place.</summary>
    public static void Apply(Dataset data, ModelMetadata metadata)
    {
        if (metadata.InputOffset is null && metadata.InputScale is null)
        {
            return;
        }

        for (var i = 0; i < data.Count; i++)
        {
            metadata.TransformInput(data.Features.AsSpan(i * data.FeatureCount, data.FeatureCount));
        }
    }
}
