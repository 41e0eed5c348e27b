using System.Runtime.InteropServices;
using Cluster.Compute;
using Cluster.Compute.Backends;
using Cluster.Compute.Data;
using Cluster.Compute.Models;
using Cluster.Contracts.Grains;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Google.Protobuf;

namespace Cluster.WorkerSilo.Tests;

public sealed class WorkerGrainTests
{
    private static readonly Sequential Model = Build();

    private static Sequential Build()
    {
        var m = new Sequential(4, Sequential.Stack([6], Activation.Relu, 3, Activation.Softmax, 0.2f), LossKind.CrossEntropy);
        m.Initialize(5);
        return m;
    }

    private static Dataset Data()
    {
        var rng = new Compute.Randomness.Rng(9);
        var x = Enumerable.Range(0, 40 * 4).Select(_ => rng.NextInt(256) / 255f).ToArray();
        return new Dataset("d", 4, x, [.. Enumerable.Range(0, 40).Select(i => i % 3)], 3);
    }

    private static ShardData Chunk(Dataset d, int first, int count, bool last, long generation = 1, params IndexRange[] ranges)
    {
        var chunk = new ShardData
        {
            Generation = generation, First = first, Count = count, FeatureCount = 4, OutputWidth = 3, ClassCount = 3, Last = last,
            Encoding = ShardData.Types.Encoding.Uint8Div255,
            Features = ByteString.CopyFrom([.. d.Features.AsSpan(first * 4, count * 4).ToArray().Select(v => (byte)MathF.Round(v * 255))]),
            Labels = ByteString.CopyFrom(MemoryMarshal.AsBytes(d.Labels.AsSpan(first, count))),
        };
        chunk.Ranges.AddRange(ranges.Length > 0 ? ranges : [new IndexRange { Start = 10, Count = 20 }]);
        return chunk;
    }

    private static async Task<WorkerGrain> ReadyWorkerAsync(Dataset d, bool spinBetweenSteps = false)
    {
        var w = new WorkerGrain("w", spinBetweenSteps: spinBetweenSteps);
        await w.AdmitAsync(new Admission { Admitted = true, ModelJson = ModelJson.Export(Model, false), Seed = 4, MaxBatch = 8 }, default);
        await w.LoadShardAsync(Chunk(d, 10, 12, last: false), default);
        await w.LoadShardAsync(Chunk(d, 22, 8, last: true), default);
        return w;
    }

    [Fact]
    public async Task Compute_MatchesTheEngineOnTheSameSamples()
    {
        var d = Data();
        using var w = await ReadyWorkerAsync(d);
        Assert.Equal(20, w.ShardSize);
        int[] indices = [29, 11, 20, 10];
        var reply = await w.ComputeAsync(new StepCommand(3, 1, 1, Model.Parameters, indices), default);
        using var backend = new ManagedBackend(1);
        var engine = new GradientEngine(Model, backend, 8);
        var batch = new Batch(8, 4, 3);
        batch.Gather(d, indices);
        var expected = new float[Model.ParameterCount];
        var stats = engine.ComputeGradient(batch, Model.Parameters, expected, new DropoutKey(4, 1));
        Assert.Equal(expected, reply.GradientSum.ToArray());
        Assert.Equal(4, reply.Count);
        Assert.Equal(stats.LossSum, reply.LossSum, 6);
        Assert.Equal(3, w.WeightsVersion);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Compute_OnTheCallingThreadOrOffIt_GivesTheSameGradient(bool spinBetweenSteps)
    {
        using var w = await ReadyWorkerAsync(Data(), spinBetweenSteps);
        Assert.Equal(spinBetweenSteps, w.SpinsBetweenSteps);
        int[] indices = [29, 11, 20, 10];
        var inline = w.ComputeAsync(new StepCommand(3, 1, 1, Model.Parameters, indices) { OnCallingThread = true }, default);
        Assert.True(inline.IsCompletedSuccessfully, $"computed on the calling thread, yet {inline.Status} on return");
        var expected = (await inline).GradientSum.ToArray();
        var offThread = await w.ComputeAsync(new StepCommand(4, 1, 1, Model.Parameters, indices), default);
        Assert.Equal(expected, offThread.GradientSum.ToArray());
        Assert.Equal(4, w.WeightsVersion);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Compute_TwoStepsAtOnce_TheSecondWaitsItsTurn(bool spinBetweenSteps)
    {
        using var w = await ReadyWorkerAsync(Data(), spinBetweenSteps);
        var first = w.ComputeAsync(new StepCommand(1, 1, 1, Model.Parameters, new[] { 10, 11 }), default);
        var second = w.ComputeAsync(new StepCommand(2, 1, 1, Model.Parameters, new[] { 12 }), default);
        var replies = await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal((1L, 2), (replies[0].Step, replies[0].Count));
        Assert.Equal((2L, 1), (replies[1].Step, replies[1].Count));
        Assert.Equal(2, w.WeightsVersion);
    }

    [Fact]
    public async Task Compute_FailingOnTheCallingThread_IsAFaultedTask_AndFreesTheTurn()
    {
        using var w = await ReadyWorkerAsync(Data());
        var failed = w.ComputeAsync(new StepCommand(0, 0, 1, Model.Parameters, new[] { 5 }) { OnCallingThread = true }, default);
        Assert.True(failed.IsFaulted, $"a refused step should come back as a faulted task, not {failed.Status}");
        Assert.Equal(GrpcStatusCode.InvalidArgument, (await Assert.ThrowsAsync<GrpcStatusException>(() => failed)).Status);
        var next = await w.ComputeAsync(new StepCommand(1, 0, 1, Model.Parameters, new[] { 10 }), default).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(1, next.Count);
    }

    [Fact]
    public async Task Compute_SampleOutsideTheShard_IsInvalidArgument()
    {
        using var w = await ReadyWorkerAsync(Data());
        var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => w.ComputeAsync(new StepCommand(0, 0, 1, Model.Parameters, new[] { 5 }), default));
        Assert.Equal(GrpcStatusCode.InvalidArgument, ex.Status);
        Assert.Contains("not in this worker's shard", ex.Message);
    }

    [Fact]
    public async Task Compute_WrongShapesOrState_AreRefused()
    {
        using var fresh = new WorkerGrain("fresh");
        Assert.Equal(GrpcStatusCode.FailedPrecondition, (await Assert.ThrowsAsync<GrpcStatusException>(() => fresh.ComputeAsync(new StepCommand(0, 0, 1, Model.Parameters, new[] { 1 }), default))).Status);
        using var w = await ReadyWorkerAsync(Data());
        Assert.Equal(GrpcStatusCode.InvalidArgument, (await Assert.ThrowsAsync<GrpcStatusException>(() => w.ComputeAsync(new StepCommand(0, 0, 1, new float[3], new[] { 10 }), default))).Status);
        Assert.Equal(GrpcStatusCode.FailedPrecondition, (await Assert.ThrowsAsync<GrpcStatusException>(() => w.ComputeAsync(new StepCommand(0, 0, 2, Model.Parameters, new[] { 10 }), default))).Status);
        Assert.Equal(GrpcStatusCode.InvalidArgument, (await Assert.ThrowsAsync<GrpcStatusException>(() => w.ComputeAsync(new StepCommand(0, 0, 1, Model.Parameters, Enumerable.Range(10, 9).ToArray()), default))).Status);
    }

    [Fact]
    public async Task Shard_BadChunks_AreRefused_AndIncompleteShardIsDataLoss()
    {
        var d = Data();
        using var w = new WorkerGrain("w");
        await w.AdmitAsync(new Admission { Admitted = true, ModelJson = ModelJson.Export(Model, false), Seed = 4, MaxBatch = 8 }, default);
        var bad = Chunk(d, 10, 4, last: false);
        bad.Features = ByteString.CopyFrom(new byte[3]);
        Assert.Equal(GrpcStatusCode.InvalidArgument, (await Assert.ThrowsAsync<GrpcStatusException>(() => w.LoadShardAsync(bad, default))).Status);
        var outside = Chunk(d, 35, 2, last: false, generation: 2);
        Assert.Equal(GrpcStatusCode.InvalidArgument, (await Assert.ThrowsAsync<GrpcStatusException>(() => w.LoadShardAsync(outside, default))).Status);
        var partial = Chunk(d, 10, 5, last: true, generation: 3);
        Assert.Equal(GrpcStatusCode.DataLoss, (await Assert.ThrowsAsync<GrpcStatusException>(() => w.LoadShardAsync(partial, default))).Status);
        Assert.Equal(-1, w.ShardGeneration);
    }

    [Fact]
    public void TokenSource_ReadsFileAndRejectsEmpty()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "abc\n");
            Assert.Equal("abc", TokenSource.Read(null, file));
            Assert.Equal("xyz", TokenSource.Read("xyz", null));
            Assert.Null(TokenSource.Read(null, null));
            File.WriteAllText(file, "  \n");
            Assert.Throws<ArgumentException>(() => TokenSource.Read(null, file));
            Assert.Throws<ArgumentException>(() => TokenSource.Read(null, file + ".missing"));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
