using Cluster.Compute.Benchmarks;

namespace Cluster.Compute.Tests;

public sealed class GemmBenchmarkTests
{
    [Theory]
    // 100^3: 2,000,000 flops, 10,000 ns at 200 GFLOP/s.
    [InlineData(100, 2, 0.0, 1.0)]
    [InlineData(100, 2, 10_000.0, 0.5)]
    [InlineData(100, 4, 10_000.0, 0.5)]
    [InlineData(100, 4, 30_000.0, 0.25)]
    [InlineData(100, 2, 2_500.0, 0.8)]
    // 10^3: 2,000 flops, 10 ns of compute against a 90 ns fork-join: one thread alone does better than a split.
    [InlineData(10, 2, 90.0, 0.5)]
    [InlineData(10, 4, 90.0, 0.25)]
    public void ForkJoinBound_IsTheBetterOfASplitAtFullPeakAndOneThread(int edge, int threads, double forkJoinNanoseconds, double expected)
    {
        var result = new GemmResult("managed", threads, threads, edge, edge, edge, false, false, "cube", Gflops: 1, Seconds: 1);
        Assert.Equal(expected, GemmBenchmark.ForkJoinBound(result, peakGflops: 200, forkJoinNanoseconds), 9);
    }

    [Fact]
    public void ForkJoinBound_OfThreadsPastTheProcessors_IsThatOfTheThreadsThatCompute()
    {
        // Asked for 4, computing on 2: a call too small to split is left on one of 2 threads, half the 2-thread peak.
        var result = new GemmResult("managed", Threads: 4, Parallelism: 2, 10, 10, 10, false, false, "cube", Gflops: 1, Seconds: 1);
        Assert.Equal(0.5, GemmBenchmark.ForkJoinBound(result, peakGflops: 200, forkJoinNanoseconds: 90), 9);
    }
}
