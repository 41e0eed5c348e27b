using Cluster.Contracts.Configuration;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Google.Protobuf;

namespace Cluster.Contracts.Tests;

public sealed class FramingTests
{
    private static async Task<T?> ReadAsync<T>(byte[] bytes, MessageParser<T> parser, int max = 1 << 20)
        where T : class, IMessage<T> => await GrpcFraming.ReadAsync(new MemoryStream(bytes), parser, max, CancellationToken.None);

    [Fact]
    public async Task Frame_RoundTrips_SeveralMessages()
    {
        var stream = new MemoryStream();
        var plan = new StepPlan { Step = 7, Epoch = 1, Weights = TensorCodec.FromFloats([1f, -2.5f, float.MaxValue]), Indices = TensorCodec.FromInts([3, 1, 4]) };
        await GrpcFraming.WriteAsync(stream, new CoordinatorMessage { Step = plan }, CancellationToken.None);
        await GrpcFraming.WriteAsync(stream, new CoordinatorMessage { Stop = new Stop { Reason = "done", Completed = true } }, CancellationToken.None);
        stream.Position = 0;
        var first = await GrpcFraming.ReadAsync(stream, CoordinatorMessage.Parser, 1 << 20, CancellationToken.None);
        var second = await GrpcFraming.ReadAsync(stream, CoordinatorMessage.Parser, 1 << 20, CancellationToken.None);
        var end = await GrpcFraming.ReadAsync(stream, CoordinatorMessage.Parser, 1 << 20, CancellationToken.None);
        Assert.Equal(plan, first!.Step);
        Assert.True(second!.Stop.Completed);
        Assert.Null(end);
        var weights = new float[3];
        TensorCodec.ToFloats(first.Step.Weights, weights, "w");
        Assert.Equal([1f, -2.5f, float.MaxValue], weights);
    }

    [Fact]
    public async Task Frame_Empty_IsValidMessage()
    {
        var frame = GrpcFraming.Frame(new StatusRequest());
        Assert.Equal([0, 0, 0, 0, 0], frame);
        Assert.NotNull(await ReadAsync(frame, StatusRequest.Parser));
    }

    [Theory]
    [InlineData(new byte[] { 0 })]
    [InlineData(new byte[] { 0, 0, 0, 0 })]
    [InlineData(new byte[] { 0, 0, 0, 0, 3, 8 })]
    public async Task Frame_Truncated_IsInternal(byte[] bytes)
    {
        var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => ReadAsync(bytes, StatusReply.Parser));
        Assert.Equal(GrpcStatusCode.Internal, ex.Status);
        Assert.Contains("Truncated", ex.Message);
    }

    [Fact]
    public async Task Frame_OverLimit_IsResourceExhausted_BeforeReadingTheBody()
    {
        var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => ReadAsync(new byte[] { 0, 0x7F, 0xFF, 0xFF, 0xFF }, StatusReply.Parser, 1024));
        Assert.Equal(GrpcStatusCode.ResourceExhausted, ex.Status);
    }

    [Fact]
    public async Task Frame_BadFlagOrGarbage_IsReported()
    {
        Assert.Equal(GrpcStatusCode.Unimplemented, (await Assert.ThrowsAsync<GrpcStatusException>(() => ReadAsync(new byte[] { 1, 0, 0, 0, 0 }, StatusReply.Parser))).Status);
        Assert.Equal(GrpcStatusCode.Internal, (await Assert.ThrowsAsync<GrpcStatusException>(() => ReadAsync(new byte[] { 7, 0, 0, 0, 0 }, StatusReply.Parser))).Status);
        var garbage = await Assert.ThrowsAsync<GrpcStatusException>(() => ReadAsync(new byte[] { 0, 0, 0, 0, 2, 0x0A, 0xFF }, StatusReply.Parser));
        Assert.Equal(GrpcStatusCode.Internal, garbage.Status);
        Assert.Contains("Malformed", garbage.Message);
    }

    [Fact]
    public void TensorCodec_WrongLengths_AreInvalidArgument()
    {
        var ex = Assert.Throws<GrpcStatusException>(() => TensorCodec.ToFloats(ByteString.CopyFrom(new byte[10]), new float[3], "gradient"));
        Assert.Equal(GrpcStatusCode.InvalidArgument, ex.Status);
        Assert.Contains("gradient", ex.Message);
        Assert.Throws<GrpcStatusException>(() => TensorCodec.ToInts(ByteString.CopyFrom(new byte[6]), new int[4], "indices"));
        Assert.Throws<GrpcStatusException>(() => TensorCodec.ToInts(ByteString.CopyFrom(new byte[20]), new int[4], "indices"));
        Assert.Equal(2, TensorCodec.ToInts(TensorCodec.FromInts([5, 6]), new int[4], "indices"));
    }

    [Fact]
    public void EnvOption_ReadsTypedValues_AndNamesBadOnes()
    {
        Environment.SetEnvironmentVariable("CLUSTER_TEST_BOOL", "yes");
        Environment.SetEnvironmentVariable("CLUSTER_TEST_SEED", "18446744073709551615");
        Environment.SetEnvironmentVariable("CLUSTER_TEST_BAD", "1.5x");
        try
        {
            Assert.True(EnvOption.FromEnvironment("CLUSTER_TEST_BOOL", false));
            Assert.Equal(ulong.MaxValue, EnvOption.FromEnvironment("CLUSTER_TEST_SEED", 0UL));
            Assert.Equal(7, EnvOption.FromEnvironment("CLUSTER_TEST_UNSET", 7));
            Assert.Contains("CLUSTER_TEST_BAD", Assert.Throws<ArgumentException>(() => EnvOption.FromEnvironment("CLUSTER_TEST_BAD", 1.0)).Message);
            Assert.Contains("CLUSTER_TEST_BAD", Assert.Throws<ArgumentException>(() => EnvOption.FromEnvironment("CLUSTER_TEST_BAD", (float?)null)).Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable("CLUSTER_TEST_BOOL", null);
            Environment.SetEnvironmentVariable("CLUSTER_TEST_SEED", null);
            Environment.SetEnvironmentVariable("CLUSTER_TEST_BAD", null);
        }
    }
}
