using System.Diagnostics;
using System.Text.Json;
using Cluster.Compute.Data;

namespace Cluster.IntegrationTests;

/// <summary><c>cluster bench cluster</c> end to end: real worker processes against one process, on MNIST.</summary>
public sealed class BenchClusterTests
{
    [Fact]
    public async Task BenchCluster_Json_ComparesWorkerProcessesWithOneProcess_OnTheSameTraining()
    {
        var dataDir = Path.Combine(Repo.Root, "data", "mnist");
        await MnistFetcher.EnsureAsync(dataDir);
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "cluster.dll"), "bench", "cluster", "--json", "--batch-sizes", "1024", "--workers", "2", "--epochs", "2", "--repeat", "1", "--shared-memory", "off", "--data-dir", dataDir })
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, await stderr);

        using var json = JsonDocument.Parse(await stdout);
        var rows = json.RootElement.GetProperty("cluster");
        Assert.Equal(1, rows.GetArrayLength());
        var row = rows[0];
        Assert.Equal(1024, row.GetProperty("batch").GetInt32());
        Assert.Equal(2, row.GetProperty("workers").GetInt32());
        var single = row.GetProperty("singleProcessSamplesPerSecond").GetDouble();
        var cluster = row.GetProperty("clusterSamplesPerSecond").GetDouble();
        Assert.True(single > 0 && cluster > 0);
        // The ratio is written to 3 decimals from the unrounded rates: within half a thousandth, and a little for the rates' own rounding.
        Assert.InRange(Math.Abs(cluster / single - row.GetProperty("ratio").GetDouble()), 0, 0.001);
        // The two topologies train the same model: their test accuracies agree to a few test samples (sums run in another order).
        Assert.InRange(Math.Abs(row.GetProperty("singleProcessTestAccuracy").GetDouble() - row.GetProperty("clusterTestAccuracy").GetDouble()), 0, 0.005);
        Assert.True(row.GetProperty("clusterTestAccuracy").GetDouble() > 0.8);
        var steps = row.GetProperty("stepBreakdown");
        Assert.Equal(2 * ((60_000 + 1023) / 1024), steps.GetProperty("steps").GetInt32());
        // Each step sends every worker the weights (109,386 floats) and receives its gradient, as blocks (the default):
        // MNIST's blank borders leave a fifth or more of each gradient out, but never half.
        var dense = 2L * steps.GetProperty("steps").GetInt64() * 109_386 * 4;
        Assert.InRange(steps.GetProperty("bytesSent").GetInt64(), dense / 2, long.MaxValue);
        Assert.InRange(steps.GetProperty("bytesReceived").GetInt64(), dense / 2, dense * 9 / 10);
    }
}
