using Cluster.Tests.Shared;
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
            await using var cluster = await ClusterFixture.StartAsync(run, new ClusterOptions { MinWorkers = 2, BlockTensors = blockTensors });
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
    public async Task Processes_SameTopologyTwice_BitIdentical()
    {
        var first = await TrainWithProcessesAsync(2, epochs: 1);
        var second = await TrainWithProcessesAsync(2, epochs: 1);
        Assert.Equal(first, second);
    }
}
