using System.Runtime.InteropServices;
using Cluster.Compute.Data;
using Cluster.Contracts.V1;
using Google.Protobuf;

namespace Cluster.Coordinator.Grains;

/// <summary>Turns ranges of the training set into shard-data messages, a byte per pixel when the data allows it.</summary>
internal sealed class ShardEncoder(Dataset data, int outputWidth, int chunkSamples)
{
    // Found at the first shard sent, not at start-up: a pass over every value (47 million for MNIST, about 40 ms),
    // which a run whose workers all read their shards themselves never needs.
    private readonly Lazy<bool> _bytes = new(() => IsByteScaled(data.Features));

    /// <summary>The chunks of one generation for <paramref name="ranges"/>; the last is flagged.</summary>
    public IEnumerable<ShardData> Chunks(long generation, IndexRange[] ranges, bool loadLocally)
    {
        var shape = new ShardData
        {
            Generation = generation,
            FeatureCount = data.FeatureCount,
            OutputWidth = outputWidth,
            ClassCount = data.ClassCount,
            Encoding = !loadLocally && _bytes.Value ? ShardData.Types.Encoding.Uint8Div255 : ShardData.Types.Encoding.Float32,
        };
        shape.Ranges.AddRange(ranges);
        if (loadLocally)
        {
            var only = shape.Clone();
            only.LoadLocally = true;
            only.Last = true;
            yield return only;
            yield break;
        }

        var pieces = new List<(int First, int Count)>();
        foreach (var range in ranges)
        {
            for (var first = range.Start; first < range.Start + range.Count; first += chunkSamples)
            {
                pieces.Add((first, Math.Min(chunkSamples, range.Start + range.Count - first)));
            }
        }

        if (pieces.Count == 0)
        {
            pieces.Add((0, 0));
        }

        for (var p = 0; p < pieces.Count; p++)
        {
            var (first, count) = pieces[p];
            var chunk = shape.Clone();
            chunk.First = first;
            chunk.Count = count;
            chunk.Last = p == pieces.Count - 1;
            var features = data.Features.AsSpan(first * data.FeatureCount, count * data.FeatureCount);
            if (_bytes.Value)
            {
                var encoded = new byte[features.Length];
                for (var i = 0; i < encoded.Length; i++)
                {
                    encoded[i] = (byte)MathF.Round(features[i] * 255f);
                }

                chunk.Features = UnsafeByteOperations.UnsafeWrap(encoded);
            }
            else
            {
                chunk.Features = ByteString.CopyFrom(MemoryMarshal.AsBytes(features));
            }

            if (data.Labels is not null)
            {
                chunk.Labels = ByteString.CopyFrom(MemoryMarshal.AsBytes(data.Labels.AsSpan(first, count)));
            }
            else
            {
                chunk.Targets = ByteString.CopyFrom(MemoryMarshal.AsBytes(data.Targets.AsSpan(first * data.TargetCount, count * data.TargetCount)));
            }

            yield return chunk;
        }
    }

    /// <summary>True when every value is b / 255 for a byte b (MNIST pixels), so a byte per value loses nothing.</summary>
    private static bool IsByteScaled(ReadOnlySpan<float> values)
    {
        foreach (var v in values)
        {
            if (!(v >= 0f && v <= 1f) || MathF.Round(v * 255f) / 255f != v)
            {
                return false;
            }
        }

        return true;
    }
}
