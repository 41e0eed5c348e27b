using System.Runtime.InteropServices;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Google.Protobuf;

namespace Cluster.WorkerSilo.Tests;

public sealed class WorkerTensorCodecTests
{
    private const int Length = 200; // 7 blocks, the last of 8 values

    private static byte[] Bytes(float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private static WorkerTensorCodec Agreed()
    {
        var codec = new WorkerTensorCodec();
        codec.Admit(new Admission { Admitted = true, BlockTensors = true }, Length);
        return codec;
    }

    /// <summary>A delta of block 1 and the last block (values 32..63 and 192..199) against <paramref name="baseStep"/>.</summary>
    private static (StepPlan Plan, byte[] Bytes) Delta(long step, long baseStep, float value)
    {
        var mask = new byte[TensorBlocks.MaskBytes(Length)];
        mask[0] = 0b100_0010;
        var plan = new StepPlan { Step = step, WeightsMask = ByteString.CopyFrom(mask), WeightsBase = baseStep };
        return (plan, Bytes(Enumerable.Repeat(value, 32 + 8).ToArray()));
    }

    [Fact]
    public void Delta_AgainstTheHeldStep_ChangesOnlyItsBlocks()
    {
        var codec = Agreed();
        var weights = new float[Length];
        codec.ReadWeights(new StepPlan { Step = 4 }, Bytes([.. Enumerable.Range(0, Length).Select(i => (float)i)]), weights);
        Assert.Equal(4, codec.Held);
        var (plan, bytes) = Delta(5, 4, -1f);
        codec.ReadWeights(plan, bytes, weights);
        Assert.Equal(5, codec.Held);
        for (var i = 0; i < Length; i++)
        {
            Assert.Equal(i is (>= 32 and < 64) or >= 192 ? -1f : i, weights[i]);
        }
    }

    [Theory]
    [InlineData("other-base")]
    [InlineData("not-agreed")]
    [InlineData("after-admission")]
    [InlineData("before-any-weights")]
    public void Delta_TheWorkerCannotApply_FailedPrecondition_AndNothingChanges(string why)
    {
        var codec = why == "not-agreed" ? new WorkerTensorCodec() : Agreed();
        var weights = new float[Length];
        if (why != "before-any-weights")
        {
            codec.ReadWeights(new StepPlan { Step = 4 }, Bytes(Enumerable.Repeat(2f, Length).ToArray()), weights);
        }

        if (why == "after-admission")
        {
            codec.Admit(new Admission { Admitted = true, BlockTensors = true }, Length);
        }

        var held = codec.Held;
        var before = (float[])weights.Clone();
        var (plan, bytes) = Delta(5, why == "other-base" ? 3 : 4, -1f);
        var ex = Assert.Throws<GrpcStatusException>(() => codec.ReadWeights(plan, bytes, weights));
        Assert.Equal(GrpcStatusCode.FailedPrecondition, ex.Status);
        Assert.Equal(before, weights);
        Assert.Equal(held, codec.Held);
    }

    [Fact]
    public void Delta_WithTheWrongLength_InvalidArgument_AndNothingChanges()
    {
        var codec = Agreed();
        var weights = new float[Length];
        codec.ReadWeights(new StepPlan { Step = 4 }, Bytes(Enumerable.Repeat(2f, Length).ToArray()), weights);
        var (plan, bytes) = Delta(5, 4, -1f);
        var ex = Assert.Throws<GrpcStatusException>(() => codec.ReadWeights(plan, bytes[..^4], weights));
        Assert.Equal(GrpcStatusCode.InvalidArgument, ex.Status);
        Assert.All(weights, w => Assert.Equal(2f, w));
        Assert.Equal(4, codec.Held);
    }

    [Fact]
    public void Gradient_GoesAsBlocksOnlyWhenAgreedAndWorthIt()
    {
        var sparse = new float[Length];
        sparse[40] = 1.5f;
        sparse[199] = -0f;
        var whole = Bytes(sparse);

        // Not agreed: the whole buffer, no mask.
        var message = new GradientResult();
        Assert.True(new WorkerTensorCodec().Gradient(sparse, whole, message).Span.SequenceEqual(whole));
        Assert.True(message.GradientMask.IsEmpty);

        // Agreed and sparse: blocks 1 and 6 only.
        var codec = Agreed();
        var sent = codec.Gradient(sparse, whole, message).ToArray();
        Assert.Equal(new byte[] { 0b100_0010 }, message.GradientMask.ToByteArray());
        var decoded = Enumerable.Repeat(9f, Length).ToArray();
        TensorBlocks.Scatter(sent, message.GradientMask.Span, decoded, clearUnmarked: true, "g");
        Assert.Equal(whole, Bytes(decoded));

        // Agreed but dense: blocks would save nothing, so the whole buffer goes.
        var dense = Enumerable.Range(0, Length).Select(i => i + 1f).ToArray();
        message = new GradientResult();
        Assert.Equal(Bytes(dense), codec.Gradient(dense, Bytes(dense), message).ToArray());
        Assert.True(message.GradientMask.IsEmpty);
    }

    private static Admission Offer(SharedTensorFile file) => new()
    {
        Admitted = true,
        BlockTensors = true,
        SharedMemoryPath = file.FilePath,
        SharedMemoryNonce = ByteString.CopyFrom(file.Nonce),
    };

    [Fact]
    public void SharedMemory_Offered_StepsInPlace_GradientsMarked_AndKeptOnReadmission()
    {
        using var coordinator = SharedTensorFile.Create(Length);
        using var codec = new WorkerTensorCodec();
        Assert.Null(codec.Admit(Offer(coordinator), Length));
        Assert.True(codec.Shared);
        // Mapped, the name is removed at once.
        Assert.False(File.Exists(coordinator.FilePath));

        // The first step's weights came over the stream: the gradient is copied into the file.
        var gradient = Enumerable.Range(0, Length).Select(i => i * 0.5f).ToArray();
        var message = new GradientResult { Step = 1 };
        Assert.True(codec.Gradient(gradient, Bytes(gradient), message).IsEmpty);
        Assert.True(message.GradientShared);
        Assert.True(message.GradientMask.IsEmpty);
        var received = new float[Length];
        coordinator.ReadGradient(1, received);
        Assert.Equal(gradient, received);

        // A weights_shared plan is computed in place and its gradient only marked.
        var weights = Enumerable.Range(0, Length).Select(i => -1f * i).ToArray();
        coordinator.WriteWeights(2, weights);
        var plan = new StepPlan { Step = 2, WeightsShared = true };
        var file = codec.BeginSharedStep(plan, default);
        Assert.Equal(weights, file.Weights.ToArray());
        gradient.AsSpan().CopyTo(file.Gradient);
        file.Gradient[0] = 42;
        codec.EndSharedStep(plan);
        Assert.Equal(2, codec.Held);
        message = new GradientResult { Step = 2 };
        Assert.True(codec.Gradient(default, [], message).IsEmpty);
        coordinator.ReadGradient(2, received);
        Assert.Equal(42, received[0]);
        Assert.Equal(gradient[1..], received[1..]);

        // The same offer again (a re-admission, the name long gone) keeps the mapping.
        Assert.Null(codec.Admit(Offer(coordinator), Length));
        Assert.True(codec.Shared);

        // An admission without an offer closes it.
        Assert.Null(codec.Admit(new Admission { Admitted = true }, Length));
        Assert.False(codec.Shared);
    }

    [Fact]
    public void SharedMemory_AnOfferThatCannotBeOpened_SaysWhy_AndTensorsStayOnTheStream()
    {
        using var coordinator = SharedTensorFile.Create(Length);
        var offer = Offer(coordinator);
        offer.SharedMemoryNonce = ByteString.CopyFrom(new byte[SharedTensorFile.NonceBytes]);
        using var codec = new WorkerTensorCodec();
        Assert.NotNull(codec.Admit(offer, Length));
        Assert.False(codec.Shared);
        coordinator.Unlink();
        var gradient = new float[Length];
        gradient[0] = 1;
        var message = new GradientResult { Step = 1 };
        Assert.False(codec.Gradient(gradient, Bytes(gradient), message).IsEmpty);
        Assert.False(message.GradientShared);
    }

    [Theory]
    [InlineData("no-file")]
    [InlineData("other-step")]
    [InlineData("with-bytes")]
    [InlineData("decoded")]
    public void SharedMemory_APlanTheWorkerCannotUse_FailsAndChangesNothing(string why)
    {
        using var coordinator = SharedTensorFile.Create(Length);
        using var codec = new WorkerTensorCodec();
        codec.Admit(why == "no-file" ? new Admission { Admitted = true } : Offer(coordinator), Length);
        coordinator.Unlink();
        coordinator.WriteWeights(4, new float[Length]);
        var weights = Enumerable.Repeat(2f, Length).ToArray();
        codec.ReadWeights(new StepPlan { Step = 3 }, Bytes(weights), weights);
        var plan = new StepPlan { Step = why == "other-step" ? 5 : 4, WeightsShared = true };
        var ex = why == "decoded"
            ? Assert.Throws<GrpcStatusException>(() => codec.ReadWeights(plan, default, weights))
            : Assert.Throws<GrpcStatusException>(() => codec.BeginSharedStep(plan, why == "with-bytes" ? new byte[4] : default));
        Assert.Equal(why == "with-bytes" ? GrpcStatusCode.InvalidArgument : GrpcStatusCode.FailedPrecondition, ex.Status);
        Assert.Equal(3, codec.Held);
        Assert.All(weights, w => Assert.Equal(2f, w));
    }

    [Fact]
    public void SharedMemory_WeightsOverwrittenDuringTheStep_FailedPrecondition()
    {
        using var coordinator = SharedTensorFile.Create(Length);
        using var codec = new WorkerTensorCodec();
        codec.Admit(Offer(coordinator), Length);
        coordinator.Unlink();
        coordinator.WriteWeights(4, new float[Length]);
        var plan = new StepPlan { Step = 4, WeightsShared = true };
        codec.BeginSharedStep(plan, default);
        coordinator.WriteWeights(5, new float[Length]);
        Assert.Equal(GrpcStatusCode.FailedPrecondition, Assert.Throws<GrpcStatusException>(() => codec.EndSharedStep(plan)).Status);
        Assert.Equal(-1, codec.Held);
    }
}
