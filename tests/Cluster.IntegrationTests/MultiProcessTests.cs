using Cluster.Tests.Shared;
using Cluster.Contracts.Grpc;
using Cluster.Coordinator.Grains;

namespace Cluster.IntegrationTests;

public sealed class MultiProcessTests
{
    private static async Task<float[]> TrainWithProcessesAsync(int workers, int epochs = 2)
    {
        var run = TestRuns.Run(epochs: epochs);
        await using var cluster = await ClusterFixture.StartAsync(run, new ClusterOptions { MinWorkers = workers });
        for (var i = 0; i < workers; i++)
        {
            cluster.StartWorker($"p{i}");
        }

        await cluster.Grain.RunAsync(new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token);
        Assert.Equal(workers, cluster.Grain.PeakWorkers);
        foreach (var id in cluster.WorkerIds)
        {
            Assert.Equal(0, cluster.WaitForExit(id));
        }

        Assert.True(cluster.Endpoint.Counters.BytesSent > 0 && cluster.Endpoint.Counters.BytesReceived > 0);
        return run.Model.Parameters;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Processes_NWorkers_MatchSingleProcessTraining(int workers)
    {
        var expected = await TestRuns.SingleProcessAsync(TestRuns.Run());
        var actual = await TrainWithProcessesAsync(workers);
        TestRuns.AssertClose(expected, actual, 1e-5);
    }

    [Fact]
    public async Task Processes_BlockTensors_SameBitsAsDense_InFewerBytes()
    {
        async Task<(float[] Weights, long Sent, long Received)> TrainAsync(bool blockTensors)
        {
            var run = TestRuns.SparseRun();
            await using var cluster = await ClusterFixture.StartAsync(run, new ClusterOptions { MinWorkers = 2, BlockTensors = blockTensors }, sharedMemory: false);
            cluster.StartWorker("s0");
            cluster.StartWorker("s1");
            await cluster.Grain.RunAsync(new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token);
            Assert.Equal(2, cluster.Grain.PeakWorkers);
            return (run.Model.Parameters, cluster.Endpoint.Counters.BytesSent, cluster.Endpoint.Counters.BytesReceived);
        }

        var dense = await TrainAsync(blockTensors: false);
        var blocks = await TrainAsync(blockTensors: true);
        Assert.Equal(dense.Weights, blocks.Weights);
        Assert.True(blocks.Sent < dense.Sent * 0.8, $"weights sent: {blocks.Sent} bytes as blocks, {dense.Sent} dense");
        Assert.True(blocks.Received < dense.Received * 0.8, $"gradients received: {blocks.Received} bytes as blocks, {dense.Received} dense");
        TestRuns.AssertClose(await TestRuns.SingleProcessAsync(TestRuns.SparseRun()), blocks.Weights, 1e-5);
    }

    [Fact]
    public async Task Processes_SharedMemory_SameBitsAsTheStream_WithTensorsOffTheWire_AndNoFileLeft()
    {
        static string[] Files() => Directory.GetFiles(SharedTensorFile.Folder, SharedTensorFile.Prefix + "*");
        var before = Files();
        async Task<(float[] Weights, long Sent, long Received, long Steps, long Shared)> TrainAsync(bool sharedMemory)
        {
            var run = TestRuns.SparseRun();
            await using var cluster = await ClusterFixture.StartAsync(run, new ClusterOptions { MinWorkers = 2, BlockTensors = false }, sharedMemory);
            cluster.StartWorker("m0");
            cluster.StartWorker("m1");
            await cluster.Grain.RunAsync(new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token);
            Assert.Equal(2, cluster.Grain.PeakWorkers);
            var c = cluster.Endpoint.Counters;
            return (run.Model.Parameters, c.BytesSent, c.BytesReceived, cluster.Grain.Trainer.State.GlobalStep, c.SharedMemoryBytes);
        }

        var stream = await TrainAsync(sharedMemory: false);
        var shared = await TrainAsync(sharedMemory: true);
        Assert.Equal(stream.Weights, shared.Weights);
        // Over the stream each step moves every worker's tensors both ways; through the file, only the first step's
        // weights and the plans' and gradients' figures do.
        var tensorBytes = stream.Weights.Length * sizeof(float);
        Assert.True(stream.Received > 2 * stream.Steps * tensorBytes, $"{stream.Received} bytes received over the stream");
        Assert.True(shared.Received < 2 * (tensorBytes + (stream.Steps * 1024)), $"{shared.Received} bytes received with shared memory");
        Assert.True(shared.Sent < stream.Sent - (stream.Steps * tensorBytes), $"{shared.Sent} bytes sent with shared memory, {stream.Sent} without");
        Assert.Equal(0, stream.Shared);
        // Every gradient, and every step's weights but the first, went through the two workers' files.
        Assert.Equal(2L * ((2 * stream.Steps) - 1) * tensorBytes, shared.Shared);
        // Each file's name goes once its worker mapped it, and the mappings with the streams. (Other tests running beside
        // this one may hold a file for a moment, until their workers map it.)
        var left = Files().Except(before).ToArray();
        for (var wait = 0; wait < 100 && left.Length > 0; wait++)
        {
            await Task.Delay(100);
            left = Files().Except(before).ToArray();
        }

        Assert.Empty(left);
    }

    [Fact]
    public async Task Processes_SameTopologyTwice_BitIdentical()
    {
        var first = await TrainWithProcessesAsync(2, epochs: 1);
        var second = await TrainWithProcessesAsync(2, epochs: 1);
        Assert.Equal(first, second);
    }
}
