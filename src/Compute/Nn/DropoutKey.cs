using Cluster.Compute.Randomness;

namespace Cluster.Compute;

/// <summary>
/// Identifies the dropout masks of one epoch: a unit's mask depends only on the seed, the epoch, the layer, the
/// sample's dataset index and the unit, never on which worker or batch computes it.
/// </summary>
public readonly record struct DropoutKey(ulong Seed, int Epoch)
{
    /// <summary>Fills one sample's mask row with 0 or 1 / (1 - rate).</summary>
    public void FillMask(int layer, int sampleId, float rate, Span<float> mask)
    {
        var key = CounterRandom.Hash(Seed, CounterRandom.Streams.Dropout, ((ulong)(uint)Epoch << 20) | (uint)layer, (ulong)(uint)sampleId);
        var keep = 1f / (1f - rate);
        for (var j = 0; j < mask.Length; j++)
        {
            var u = (Rng.Mix(key + (ulong)(j + 1) * 0x9E3779B97F4A7C15UL) >> 40) * (1.0f / (1 << 24));
            mask[j] = u >= rate ? keep : 0f;
        }
    }
}
