namespace Cluster.Compute.Randomness;

/// <summary>
/// Stateless randomness keyed by (seed, stream, a, b): the same key gives the same number on any worker,
/// so dropout masks and shuffles do not depend on which process computes them.
/// </summary>
public static class CounterRandom
{
    /// <summary>64 random bits for the key.</summary>
    public static ulong Hash(ulong seed, ulong stream, ulong a, ulong b)
    {
        var h = Rng.Mix(seed ^ 0x6A09E667F3BCC909UL);
        h = Rng.Mix(h ^ (stream * 0x9E3779B97F4A7C15UL));
        h = Rng.Mix(h ^ (a * 0xC2B2AE3D27D4EB4FUL));
        return Rng.Mix(h ^ (b * 0x165667B19E3779F9UL));
    }

    /// <summary>Uniform in [0, 1) for the key.</summary>
    public static float Uniform(ulong seed, ulong stream, ulong a, ulong b) =>
        (Hash(seed, stream, a, b) >> 40) * (1.0f / (1 << 24));

    /// <summary>The training-order permutation of <paramref name="count"/> samples for one epoch.</summary>
    public static void EpochPermutation(ulong seed, int epoch, Span<int> order)
    {
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        new Rng(Hash(seed, Streams.Shuffle, (ulong)epoch, 0)).Shuffle(order);
    }

    /// <summary>Named streams so that unrelated uses of one seed never collide.</summary>
    public static class Streams
    {
        /// <summary>Weight initialisation.</summary>
        public const ulong Init = 1;

        /// <summary>Per-epoch shuffles.</summary>
        public const ulong Shuffle = 2;

        /// <summary>Dropout masks.</summary>
        public const ulong Dropout = 3;

        /// <summary>Train/validation split.</summary>
        public const ulong Split = 4;
    }
}
