using System.Buffers;
using System.IO.Pipelines;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Google.Protobuf;

namespace Cluster.Contracts.Tests;

public sealed class TensorBlocksTests
{
    private const int B = TensorBlocks.BlockFloats;

    /// <summary>Values where some whole blocks are zero bits; the others hold a mix that includes -0.0, NaN and infinities.</summary>
    private static float[] Sparse(Random r, int length, double blankShare)
    {
        var values = new float[length];
        for (var start = 0; start < length; start += B)
        {
            if (r.NextDouble() < blankShare)
            {
                continue;
            }

            var end = Math.Min(length, start + B);
            if (r.Next(2) == 0)
            {
                // All zero bits but one value anywhere in the block: a set bit in either half must be seen.
                values[start + r.Next(end - start)] = r.Next(3) switch { 0 => -0f, 1 => float.Epsilon, _ => float.NaN };
                continue;
            }

            for (var i = start; i < end; i++)
            {
                values[i] = r.Next(12) switch
                {
                    0 => 0f,
                    1 => -0f,
                    2 => float.NaN,
                    3 => float.NegativeInfinity,
                    _ => (float)(r.NextDouble() * 2 - 1),
                };
            }

            if (values.AsSpan(start, end - start).IndexOfAnyExcept(0f) < 0 && BitConverter.SingleToInt32Bits(values[start]) == 0)
            {
                // A kept block must have a bit set somewhere (-0.0 counts).
                values[start] = -0f;
            }
        }

        return values;
    }

    /// <summary>The reference: a block is marked when any of its values has a bit set.</summary>
    private static bool[] ReferenceMarks(float[] values)
    {
        var marks = new bool[TensorBlocks.BlockCount(values.Length)];
        for (var i = 0; i < values.Length; i++)
        {
            marks[i / B] |= BitConverter.SingleToInt32Bits(values[i]) != 0;
        }

        return marks;
    }

    private static bool[] Marks(byte[] mask, int length) =>
        [.. Enumerable.Range(0, TensorBlocks.BlockCount(length)).Select(b => (mask[b / 8] >> (b % 8) & 1) == 1)];

    private static int[] Bits(ReadOnlySpan<float> values) => [.. values.ToArray().Select(BitConverter.SingleToInt32Bits)];

    [Fact]
    public void CompactThenScatter_EveryLengthTo300_GivesTheBitsBack()
    {
        var r = new Random(11);
        for (var length = 0; length <= 300; length++)
        {
            var values = Sparse(r, length, blankShare: 0.4);
            var mask = new byte[TensorBlocks.MaskBytes(length)];
            var packed = new float[length];
            var kept = TensorBlocks.Compact(values, mask, packed);
            var marks = ReferenceMarks(values);
            Assert.Equal(marks, Marks(mask, length));
            var expectedPacked = values.Where((_, i) => marks[i / B]).ToArray();
            Assert.Equal(expectedPacked.Length, kept);
            Assert.Equal(Bits(expectedPacked), Bits(packed.AsSpan(0, kept)));
            Assert.Equal(kept, TensorBlocks.MarkedValues(mask, length));

            var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(packed.AsSpan(0, kept)).ToArray();
            var fromSpan = Enumerable.Repeat(7f, length).ToArray();
            TensorBlocks.Scatter(bytes, mask, fromSpan, clearUnmarked: true, "t");
            Assert.Equal(Bits(values), Bits(fromSpan));
            foreach (var piece in new[] { 1, 3, 128, 1000 })
            {
                var fromPieces = Enumerable.Repeat(7f, length).ToArray();
                TensorBlocks.Scatter(Segmented.Split(bytes, piece), mask, fromPieces, clearUnmarked: true, "t");
                Assert.Equal(Bits(values), Bits(fromPieces));
            }
        }
    }

    [Fact]
    public void MarkChanged_MarksExactlyTheBlocksWithAChangedBit_AndCatchesUp()
    {
        var r = new Random(12);
        for (var length = 0; length <= 300; length += 7)
        {
            var before = Sparse(r, length, blankShare: 0);
            var now = (float[])before.Clone();
            var changed = new bool[TensorBlocks.BlockCount(length)];
            for (var b = 0; b < changed.Length; b++)
            {
                if (r.Next(3) == 0)
                {
                    // One bit of one value: the sign of zero, or the last mantissa bit.
                    var i = b * B + r.Next(Math.Min(B, length - b * B));
                    now[i] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(now[i]) ^ (r.Next(2) == 0 ? 1 : int.MinValue));
                    changed[b] = true;
                }
            }

            var previous = (float[])before.Clone();
            var mask = new byte[TensorBlocks.MaskBytes(length)];
            var kept = TensorBlocks.MarkChanged(now, previous, mask);
            Assert.Equal(changed, Marks(mask, length));
            Assert.Equal(Bits(now), Bits(previous));
            Assert.Equal(TensorBlocks.MarkedValues(mask, length), kept);

            // The delta applied to the old values gives the new ones; the unmarked blocks are left as they were.
            var packed = now.Where((_, i) => changed[i / B]).ToArray();
            var receiver = (float[])before.Clone();
            TensorBlocks.Scatter(System.Runtime.InteropServices.MemoryMarshal.AsBytes(packed.AsSpan()), mask, receiver, clearUnmarked: false, "t");
            Assert.Equal(Bits(now), Bits(receiver));
        }
    }

    public static TheoryData<string> BadInputs() => ["mask-short", "mask-long", "bit-past-end", "packed-short", "packed-long"];

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Scatter_BadMaskOrLength_InvalidArgument_AndNothingWritten(string bad)
    {
        const int Length = 100; // 4 blocks, the last of 4 values
        var mask = new byte[] { 0b0101 };
        var packed = new byte[(B + B) * sizeof(float)];
        switch (bad)
        {
            case "mask-short":
                mask = [];
                break;
            case "mask-long":
                mask = [0b0101, 0];
                break;
            case "bit-past-end":
                mask = [0b1_0101];
                break;
            case "packed-short":
                packed = packed[..^4];
                break;
            case "packed-long":
                packed = new byte[packed.Length + 4];
                break;
        }

        foreach (var clear in new[] { true, false })
        {
            var destination = Enumerable.Repeat(3f, Length).ToArray();
            var ex = Assert.Throws<GrpcStatusException>(() => TensorBlocks.Scatter(packed, mask, destination, clear, "StepPlan.weights"));
            Assert.Equal(GrpcStatusCode.InvalidArgument, ex.Status);
            Assert.Contains("StepPlan.weights", ex.Message, StringComparison.Ordinal);
            Assert.All(destination, v => Assert.Equal(3f, v));
            ex = Assert.Throws<GrpcStatusException>(() => TensorBlocks.Scatter(Segmented.Split(packed, 5), mask, destination, clear, "StepPlan.weights"));
            Assert.Equal(GrpcStatusCode.InvalidArgument, ex.Status);
            Assert.All(destination, v => Assert.Equal(3f, v));
        }
    }

    [Fact]
    public async Task WriteWithBlocks_ParsesAsTheMessageWithTheMarkedBlocks()
    {
        var r = new Random(13);
        var weights = Sparse(r, 1000, blankShare: 0.5);
        var mask = new byte[TensorBlocks.MaskBytes(weights.Length)];
        var kept = TensorBlocks.Compact(weights, mask, new float[weights.Length]);
        var plan = new StepPlan { Step = 9, Epoch = 2, WeightsMask = ByteString.CopyFrom(mask), WeightsBase = 8 };
        var pipe = new Pipe();
        var frame = await GrpcFraming.WriteWithBlocksAsync(pipe.Writer, CoordinatorMessage.StepFieldNumber, plan, StepPlan.WeightsFieldNumber, weights, mask, kept, CancellationToken.None);
        await pipe.Writer.CompleteAsync();
        var read = await pipe.Reader.ReadAtLeastAsync(frame + 1);
        var bytes = read.Buffer.ToArray();
        Assert.Equal(frame, bytes.Length);
        var message = CoordinatorMessage.Parser.ParseFrom(bytes.AsSpan(GrpcFraming.HeaderSize));
        Assert.Equal(plan.Step, message.Step.Step);
        Assert.Equal(plan.WeightsBase, message.Step.WeightsBase);
        Assert.Equal(mask, message.Step.WeightsMask.ToByteArray());
        var decoded = new float[weights.Length];
        TensorBlocks.Scatter(message.Step.Weights.Span, message.Step.WeightsMask.Span, decoded, clearUnmarked: true, "t");
        Assert.Equal(Bits(weights), Bits(decoded));
    }
}
