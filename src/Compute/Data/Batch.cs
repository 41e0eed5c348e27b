using System.Runtime.Intrinsics.X86;

namespace Cluster.Compute.Data;

/// <summary>Reusable buffers holding one mini-batch gathered from a dataset.</summary>
public sealed class Batch
{
    /// <summary>Allocates a batch for up to <paramref name="capacity"/> samples.</summary>
    public Batch(int capacity, int featureCount, int outputWidth)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        FeatureCount = featureCount;
        OutputWidth = outputWidth;
        Features = new float[capacity * featureCount];
        Labels = new int[capacity];
        Targets = new float[capacity * outputWidth];
        SampleIds = new int[capacity];
    }

    /// <summary>Largest number of samples.</summary>
    public int Capacity { get; }

    /// <summary>Width of a sample.</summary>
    public int FeatureCount { get; }

    /// <summary>Width of a target row.</summary>
    public int OutputWidth { get; }

    /// <summary>Samples now held.</summary>
    public int Count { get; private set; }

    /// <summary>Capacity x FeatureCount.</summary>
    public float[] Features { get; }

    /// <summary>Class labels (classification).</summary>
    public int[] Labels { get; }

    /// <summary>Target rows: regression targets, or one-hot / 0-1 labels for MSE and BCE classifiers.</summary>
    public float[] Targets { get; }

    /// <summary>Dataset index of each sample (keys per-sample randomness such as dropout).</summary>
    public int[] SampleIds { get; }

    /// <summary>True when labels are meaningful.</summary>
    public bool HasLabels { get; private set; }

    /// <summary>Copies the samples at <paramref name="indices"/> of <paramref name="data"/> into the batch.</summary>
    public void Gather(Dataset data, ReadOnlySpan<int> indices, ReadOnlySpan<int> sampleIds = default)
    {
        if (indices.Length > Capacity)
        {
            throw new ArgumentException($"A batch of {indices.Length} samples exceeds the capacity of {Capacity}.");
        }

        if (data.FeatureCount != FeatureCount)
        {
            throw new ArgumentException($"The data has {data.FeatureCount} features per sample, the model expects {FeatureCount}.");
        }

        Count = indices.Length;
        HasLabels = data.IsClassification;
        for (var i = 0; i < indices.Length; i++)
        {
            var s = indices[i];
            if ((uint)s >= (uint)data.Count)
            {
                throw new ArgumentOutOfRangeException(nameof(indices), s, $"Sample index outside 0..{data.Count - 1}.");
            }

            if (i + 1 < indices.Length && (uint)indices[i + 1] < (uint)data.Count)
            {
                Prefetch(data.Row(indices[i + 1]));
            }

            data.Row(s).CopyTo(Features.AsSpan(i * FeatureCount, FeatureCount));
            SampleIds[i] = sampleIds.IsEmpty ? s : sampleIds[i];
            var target = Targets.AsSpan(i * OutputWidth, OutputWidth);
            if (data.IsClassification)
            {
                var label = data.Labels![s];
                Labels[i] = label;
                target.Clear();
                if (OutputWidth == 1)
                {
                    target[0] = label;
                }
                else if (label < OutputWidth)
                {
                    target[label] = 1f;
                }
            }
            else
            {
                data.Targets.AsSpan(s * data.TargetCount, data.TargetCount).CopyTo(target);
            }
        }
    }

    /// <summary>
    /// Asks for the next sample's row while this one is copied. Shuffled rows are scattered over the data set, so each
    /// copy otherwise waits on memory line by line.
    /// </summary>
    private static unsafe void Prefetch(ReadOnlySpan<float> row)
    {
        if (!Sse.IsSupported)
        {
            return;
        }

        fixed (float* p = row)
        {
            // A line every 16 floats, and the last, which a row that does not start on a line reaches into.
            for (var offset = 0; offset < row.Length; offset += 16)
            {
                Sse.Prefetch0(p + offset);
            }

            if (!row.IsEmpty)
            {
                Sse.Prefetch0(p + row.Length - 1);
            }
        }
    }
}
