using Cluster.Tests.Shared;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Cluster.Compute.Models;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;

namespace Cluster.IntegrationTests;

/// <summary>The coordinator as a real process: killed with -9 and restarted with --resume, workers reconnecting.</summary>
public sealed class CoordinatorRestartTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-restart").FullName;
    private readonly List<Process> _processes = [];

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
            }

            p.Dispose();
        }

        Directory.Delete(_dir, true);
    }

    private string WriteCsv()
    {
        var data = TestRuns.Data(2000, 1);
        var sb = new StringBuilder(string.Join(',', Enumerable.Range(0, 16).Select(i => $"f{i}")) + ",label\n");
        for (var i = 0; i < data.Count; i++)
        {
            sb.Append(string.Join(',', data.Row(i).ToArray().Select(v => v.ToString("R", CultureInfo.InvariantCulture)))).Append(',').Append(data.Labels![i]).Append('\n');
        }

        var path = Path.Combine(_dir, "train.csv");
        File.WriteAllText(path, sb.ToString());
        return path;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private Process Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "cluster.dll"));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["CLUSTER_TOKEN"] = "restart-token";
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _processes.Add(p);
        return p;
    }

    private Process StartCoordinator(string csv, int port, string model, string? resume)
    {
        List<string> args = ["coordinator", "--dataset", csv, "--label", "label", "--layers", "12,8", "--epochs", "4", "--batch-size", "10",
            "--optimizer", "momentum", "--lr", "0.05", "--listen", $"http://127.0.0.1:{port}", "--min-workers", "2", "--model", model,
            "--checkpoint-every", "25", "--quiet", "--log-level", "warning"];
        if (resume is not null)
        {
            args.AddRange(["--resume", resume]);
        }

        return Start([.. args]);
    }

    private void StartWorkers(int port)
    {
        foreach (var id in new[] { "a", "b" })
        {
            Start("worker", "--coordinator", $"http://127.0.0.1:{port}", "--worker-id", id, "--threads", "1", "--log-level", "warning", "--connect-timeout-seconds", "60");
        }
    }

    private static async Task<long> StepAsync(int port)
    {
        try
        {
            using var client = new GrpcClient(new Uri($"http://127.0.0.1:{port}"));
            return (await client.UnaryAsync(GrpcProtocol.GetStatusPath, new StatusRequest(), StatusReply.Parser, TimeSpan.FromSeconds(2))).Step;
        }
        catch (GrpcStatusException)
        {
            return -1;
        }
    }

    [Fact]
    public async Task KillCoordinator_ResumeFromCheckpoint_EndsWithTheUninterruptedWeights()
    {
        var csv = WriteCsv();

        // The uninterrupted run.
        var port = FreePort();
        var uninterruptedModel = Path.Combine(_dir, "uninterrupted.bin");
        var coordinator = StartCoordinator(csv, port, uninterruptedModel, Path.Combine(_dir, "ckpt-a"));
        StartWorkers(port);
        Assert.True(coordinator.WaitForExit(180_000), "the uninterrupted coordinator did not finish");
        Assert.Equal(0, coordinator.ExitCode);

        // The interrupted run: kill -9 mid-run, restart on the same address with --resume.
        port = FreePort();
        var checkpoints = Path.Combine(_dir, "ckpt-b");
        var resumedModel = Path.Combine(_dir, "resumed.bin");
        coordinator = StartCoordinator(csv, port, resumedModel, checkpoints);
        StartWorkers(port);
        var clock = Stopwatch.StartNew();
        while (await StepAsync(port) < 260)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), "the run never reached step 260");
            await Task.Delay(10);
        }

        coordinator.Kill();
        coordinator.WaitForExit();
        Assert.NotEmpty(Directory.GetFiles(checkpoints, "checkpoint-*.bin"));
        var restarted = StartCoordinator(csv, port, resumedModel, checkpoints);
        var recovery = Stopwatch.StartNew();
        while (await StepAsync(port) <= 250 && !restarted.HasExited)
        {
            await Task.Delay(10);
        }

        var recoverySeconds = recovery.Elapsed.TotalSeconds;
        Assert.True(restarted.WaitForExit(180_000), "the resumed coordinator did not finish");
        Assert.Equal(0, restarted.ExitCode);
        Assert.Equal(ModelFile.Load(uninterruptedModel).Parameters, ModelFile.Load(resumedModel).Parameters);
        Assert.True(recoverySeconds < 60, $"recovery took {recoverySeconds:0.0} s");
    }
}
