using Cluster.Contracts.Grpc;
using Cluster.Coordinator.Hosting;

namespace Cluster.Coordinator.Tests;

public sealed class WeightDeltasTests
{
    private static bool[] Marks(ReadOnlyMemory<byte> mask, int length) =>
        [.. Enumerable.Range(0, TensorBlocks.BlockCount(length)).Select(b => (mask.Span[b / 8] >> (b % 8) & 1) == 1)];

    [Fact]
    public void For_GivesADeltaOnlyToAWorkerHoldingThePreviousStep()
    {
        const int Length = 320; // 10 blocks
        var deltas = new WeightDeltas();
        var weights = Enumerable.Range(0, Length).Select(i => (float)i).ToArray();

        // The first version: nobody can hold anything to compare with.
        var (mask, baseStep, kept) = deltas.For(0, weights, held: -1);
        Assert.True(mask.IsEmpty);
        Assert.Equal(Length, kept);

        // Step 1 changes one value in block 2 and one in block 7.
        weights[70] = -1;
        weights[230] = -2;
        (mask, baseStep, kept) = deltas.For(1, weights, held: 0);
        Assert.Equal(0, baseStep);
        Assert.Equal(64, kept);
        Assert.Equal(Enumerable.Range(0, 10).Select(b => b is 2 or 7), Marks(mask, Length));

        // Same step, other workers: one that holds something older gets the whole buffer, one that has step 1 nothing.
        Assert.True(deltas.For(1, weights, held: -1).Mask.IsEmpty);
        Assert.True(deltas.For(1, weights, held: 7).Mask.IsEmpty);
        (mask, baseStep, kept) = deltas.For(1, weights, held: 1);
        Assert.Equal((1L, 0), (baseStep, kept));
        Assert.All(Marks(mask, Length), Assert.False);

        // Step 2 changes every block: a delta would save nothing, so the whole buffer goes.
        for (var i = 0; i < Length; i += 32)
        {
            weights[i] += 0.5f;
        }

        (mask, _, kept) = deltas.For(2, weights, held: 1);
        Assert.True(mask.IsEmpty);
        Assert.Equal(Length, kept);

        // Step 3 compares with step 2 (not with step 1): only block 9 changed.
        weights[300] = 42;
        (mask, baseStep, kept) = deltas.For(3, weights, held: 2);
        Assert.Equal((2L, 32), (baseStep, kept));
        Assert.Equal(Enumerable.Range(0, 10).Select(b => b == 9), Marks(mask, Length));
    }
}
