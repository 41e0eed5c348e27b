using Cluster.Tests.Shared;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Cluster.Compute.Models;
using Cluster.Contracts.Configuration;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Cluster.Coordinator.Runs;

namespace Cluster.IntegrationTests;

/// <summary>The coordinator as a real process: killed with -9 or stopped with SIGTERM and restarted with --resume, workers reconnecting.</summary>
public sealed class CoordinatorRestartTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-restart").FullName;
    private readonly List<Process> _processes = [];
    // Each process's output readers, which finish once it has exited and everything it wrote was read.
    private readonly Dictionary<Process, Task> _pumps = [];
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _log = new();

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
        var data = TestRuns.Data(4000, 1);
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
        var name = $"{args[0]}#{_processes.Count}";
        _pumps[p] = ChildOutput.Pump(p, name, line =>
        {
            if (!line.Contains("GetStatus", StringComparison.Ordinal))
            {
                _log.Enqueue($"{name}: {line}");
            }
        });
        _processes.Add(p);
        return p;
    }

    private Process StartCoordinator(string csv, int port, string model, string? resume)
    {
        List<string> args = ["coordinator", "--dataset", csv, "--label", "label", "--layers", "12,8", "--epochs", "4", "--batch-size", "10",
            "--optimizer", "momentum", "--lr", "0.05", "--listen", $"http://127.0.0.1:{port}", "--min-workers", "2", "--model", model,
            "--checkpoint-every", "25", "--quiet", "--log-level", "information"];
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
            Start("worker", "--coordinator", $"http://127.0.0.1:{port}", "--worker-id", id, "--threads", "1", "--log-level", "information", "--connect-timeout-seconds", "60");
        }
    }

    private string Said() => string.Join('\n', _log.TakeLast(80));

    private static async Task<StatusReply?> StatusAsync(GrpcClient client)
    {
        try
        {
            return await client.UnaryAsync(GrpcProtocol.GetStatusPath, new StatusRequest(), StatusReply.Parser, TimeSpan.FromSeconds(2));
        }
        catch (GrpcStatusException)
        {
            return null;
        }
    }

    [Fact]
    public async Task Coordinator_ListenAddressInUse_SaysSoInOneLine_WithoutTheHostsStackTrace()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var coordinator = Start("coordinator", "--dataset", WriteCsv(), "--label", "label", "--listen", $"http://127.0.0.1:{port}", "--quiet");
        await _pumps[coordinator].WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True(coordinator.WaitForExit(60_000), "the coordinator did not stop");
        Assert.Equal(1, coordinator.ExitCode);
        // Before, the host logged "Hosting failed to start" with the whole stack trace ahead of the error.
        Assert.Contains(_log, line => line.Contains($"error: Failed to bind to address http://127.0.0.1:{port}: address already in use.", StringComparison.Ordinal));
        Assert.DoesNotContain(_log, line => line.Contains("Hosting failed to start", StringComparison.Ordinal) || line.Contains(" at ", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("kill -9")]
    [InlineData("SIGTERM")]
    public async Task StopCoordinator_ResumeFromCheckpoint_EndsWithTheUninterruptedWeights(string how)
    {
        var csv = WriteCsv();

        // The uninterrupted run.
        var port = FreePort();
        var uninterruptedModel = Path.Combine(_dir, "uninterrupted.bin");
        var coordinator = StartCoordinator(csv, port, uninterruptedModel, Path.Combine(_dir, "ckpt-a"));
        StartWorkers(port);
        Assert.True(coordinator.WaitForExit(180_000), $"the uninterrupted coordinator did not finish; the processes said:\n{Said()}");
        Assert.Equal(0, coordinator.ExitCode);

        // The interrupted run: kill -9 mid-run, restart on the same address with --resume.
        port = FreePort();
        var checkpoints = Path.Combine(_dir, "ckpt-b");
        var resumedModel = Path.Combine(_dir, "resumed.bin");
        coordinator = StartCoordinator(csv, port, resumedModel, checkpoints);

        // The run lasts about a second, so the poller is warmed on the waiting coordinator before the workers
        // start; it kills the run once a checkpoint (every 25 steps) lies behind it, and says so if it came too late.
        const long KillAfter = 60;
        long signalledAt;
        var clock = Stopwatch.StartNew();
        await using (var poller = new GrpcClient(new Uri($"http://127.0.0.1:{port}")))
        {
            await WaitingAsync(poller, coordinator, clock);

            StartWorkers(port);
            StatusReply? status;
            while ((status = await StatusAsync(poller)) is not { Step: >= KillAfter })
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), $"the run never reached step {KillAfter}; the processes said:\n{Said()}");
                await Task.Delay(2);
            }

            Assert.True(status!.State == "training", $"the run was {status.State} at step {status.Step} before it could be stopped");
            signalledAt = status.Step;
            if (how == "SIGTERM")
            {
                ChildProcesses.Terminate(coordinator);
            }
            else
            {
                coordinator.Kill();
            }
        }

        Assert.True(coordinator.WaitForExit(60_000), $"the coordinator did not stop; the processes said:\n{Said()}");
        Assert.True(coordinator.ExitCode == (how == "SIGTERM" ? 143 : 137), $"the coordinator exited with {coordinator.ExitCode}; the processes said:\n{Said()}");
        var saved = Directory.GetFiles(checkpoints, "checkpoint-*.bin").Select(f => long.Parse(Path.GetFileNameWithoutExtension(f)["checkpoint-".Length..], CultureInfo.InvariantCulture)).ToList();
        Assert.NotEmpty(saved);
        if (how == "SIGTERM")
        {
            // The stopping coordinator writes a checkpoint of the step it stopped at (the periodic ones come every 25 steps).
            var stopped = _log.Select(line => System.Text.RegularExpressions.Regex.Match(line, @"Stopped at step (\d+), which the newest checkpoint")).Where(m => m.Success).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
            Assert.True(stopped.Count == 1 && stopped[0] >= signalledAt && saved.Max() == stopped[0], $"stopped at {string.Join(", ", stopped)} after step {signalledAt}; checkpoints at steps {string.Join(", ", saved)}");
            Assert.Contains(_log, line => line.Contains($"Stopped at step {stopped[0]}, ", StringComparison.Ordinal) && line.Contains($"The newest checkpoint in {checkpoints} holds that step: --resume {checkpoints} goes on from there.", StringComparison.Ordinal));

            // Its workers are not told to stop: they retry the address, and the restarted coordinator takes them back.
            await Task.Delay(1000);
            Assert.All(_processes.Where(p => p != coordinator && p.StartInfo.ArgumentList.Contains("worker")).TakeLast(2), w => Assert.False(w.HasExited, $"a worker exited; the processes said:\n{Said()}"));
        }

        var restarted = StartCoordinator(csv, port, resumedModel, checkpoints);
        Assert.True(restarted.WaitForExit(180_000), $"the resumed coordinator did not finish; the processes said:\n{Said()}");
        Assert.True(restarted.ExitCode == 0, $"the resumed coordinator exited with {restarted.ExitCode}; the processes said:\n{Said()}");
        Assert.Contains(_log, line => line.StartsWith($"coordinator#{_processes.IndexOf(restarted)}:", StringComparison.Ordinal) && line.Contains("Resumed at step", StringComparison.Ordinal));
        Assert.Equal(ModelFile.Load(uninterruptedModel).Parameters, ModelFile.Load(resumedModel).Parameters);
    }

    [Fact]
    public async Task Worker_CoordinatorKilledLongAfterItJoined_RetriesForItsWholeConnectTimeout()
    {
        var port = FreePort();
        var url = $"http://127.0.0.1:{port}";
        var coordinator = StartLongRun(url);
        var clock = Stopwatch.StartNew();
        await using (var poller = new GrpcClient(new Uri(url)))
        {
            await WaitingAsync(poller, coordinator, clock);
            var worker = Start("worker", "--coordinator", url, "--worker-id", "a", "--threads", "1", "--log-level", "information", "--connect-timeout-seconds", "4");
            var joined = Stopwatch.StartNew();
            // Trains for longer than the worker's connect timeout before the coordinator goes.
            while (joined.Elapsed < TimeSpan.FromSeconds(6) || await StatusAsync(poller) is not { Step: > 0 })
            {
                Assert.False(worker.HasExited || coordinator.HasExited, $"a process ended early; the processes said:\n{Said()}");
                Assert.True(joined.Elapsed < TimeSpan.FromSeconds(120), $"the run never started; the processes said:\n{Said()}");
                await Task.Delay(100);
            }

            // Before, its timeout ran from its start: it gave up at the first failed retry.
            KillAndAssertItRetries(coordinator, worker);
        }
    }

    [Fact]
    public async Task Worker_ToldToWaitLongerThanItsConnectTimeout_StillRetriesForItAfterTheCoordinatorGoes()
    {
        var port = FreePort();
        var url = $"http://127.0.0.1:{port}";
        var coordinator = StartLongRun(url, "--max-workers", "1");
        var clock = Stopwatch.StartNew();
        await using var poller = new GrpcClient(new Uri(url));
        await WaitingAsync(poller, coordinator, clock);
        Start("worker", "--coordinator", url, "--worker-id", "a", "--threads", "1", "--log-level", "information", "--connect-timeout-seconds", "60");
        while (await StatusAsync(poller) is not { Step: > 0 })
        {
            Assert.False(coordinator.HasExited, $"the coordinator ended early; the processes said:\n{Said()}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), $"a never trained; the processes said:\n{Said()}");
            await Task.Delay(50);
        }

        var waiter = Start("worker", "--coordinator", url, "--worker-id", "b", "--threads", "1", "--log-level", "information", "--connect-timeout-seconds", "4");
        var started = Stopwatch.StartNew();
        // The cluster is full: b is told to wait, and hears nothing more for longer than its timeout.
        while (started.Elapsed < TimeSpan.FromSeconds(6) || await StatusAsync(poller) is not { } status || !status.Members.Any(m => m.WorkerId == "b" && m.State == "waiting"))
        {
            Assert.False(waiter.HasExited || coordinator.HasExited, $"a process ended early; the processes said:\n{Said()}");
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(120), $"b was never told to wait; the processes said:\n{Said()}");
            await Task.Delay(100);
        }

        // Counted from its last message (the wait), it would have given up at once.
        KillAndAssertItRetries(coordinator, waiter);
    }

    /// <summary>A coordinator of a run far longer than any test, from one worker up.</summary>
    private Process StartLongRun(string url, params string[] more) =>
        Start([.. new[] { "coordinator", "--dataset", WriteCsv(), "--label", "label", "--layers", "12,8", "--epochs", "1000", "--batch-size", "10",
            "--listen", url, "--min-workers", "1", "--quiet", "--log-level", "information" }, .. more]);

    /// <summary>Kills <paramref name="coordinator"/>; <paramref name="worker"/>, with a 4 s connect timeout, must retry for most of it, then give up with 2.</summary>
    private void KillAndAssertItRetries(Process coordinator, Process worker)
    {
        coordinator.Kill();
        var killed = Stopwatch.StartNew();
        Assert.True(worker.WaitForExit(60_000), $"the worker still retries 60 s after its coordinator was killed; the processes said:\n{Said()}");
        Assert.True(killed.Elapsed > TimeSpan.FromSeconds(3), $"the worker gave up {killed.Elapsed.TotalSeconds:0.0} s after its coordinator was killed, within its 4 s timeout; the processes said:\n{Said()}");
        Assert.True(worker.ExitCode == 2, $"the worker exited with {worker.ExitCode}; the processes said:\n{Said()}");
    }

    [Fact]
    public async Task Sigterm_WhileWaitingForWorkers_StopsTheCoordinator_With143()
    {
        var port = FreePort();
        var checkpoints = Path.Combine(_dir, "ckpt-waiting");
        var coordinator = StartCoordinator(WriteCsv(), port, Path.Combine(_dir, "model.bin"), checkpoints);
        await using (var poller = new GrpcClient(new Uri($"http://127.0.0.1:{port}")))
        {
            await WaitingAsync(poller, coordinator, Stopwatch.StartNew());
        }

        ChildProcesses.Terminate(coordinator);
        Assert.True(coordinator.WaitForExit(60_000), $"the coordinator did not stop on SIGTERM; the processes said:\n{Said()}");
        Assert.True(coordinator.ExitCode == 143, $"the coordinator exited with {coordinator.ExitCode}; the processes said:\n{Said()}");
        Assert.Contains(_log, line => line == "coordinator#0: cancelled");

        // No step was trained, so there is nothing to checkpoint, and the log does not claim one.
        Assert.Empty(Directory.Exists(checkpoints) ? Directory.GetFiles(checkpoints) : []);
        Assert.DoesNotContain(_log, line => line.Contains("Stopped at step", StringComparison.Ordinal));
        Assert.Contains(_log, line => line == "coordinator#0: Stopped before the first step: nothing was trained, and nothing was written.");
    }

    /// <summary>Starts <c>train --processes</c> with two worker processes and returns once its first epoch is done.</summary>
    private async Task<(Process Train, List<int> Children)> StartTrainProcessesAsync()
    {
        var train = Start("train", "--dataset", WriteCsv(), "--label", "label", "--layers", "12,8", "--epochs", "1000", "--batch-size", "10", "--workers", "2", "--processes");
        var clock = Stopwatch.StartNew();
        List<int> children;
        while ((children = Children(train.Id)).Count < 2 || !_log.Any(line => line.Contains("epoch 1/1000", StringComparison.Ordinal)))
        {
            Assert.False(train.HasExited, $"train ended early; it said:\n{Said()}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), $"train never ran its workers; it said:\n{Said()}");
            await Task.Delay(50);
        }

        return (train, children);
    }

    [Fact]
    public async Task TrainProcesses_KilledWithMinus9_ItsWorkersGiveUpSoon()
    {
        var (train, children) = await StartTrainProcessesAsync();

        train.Kill();
        await train.WaitForExitAsync();
        try
        {
            // Nothing to reconnect to: they give up after 10 s without the coordinator, not the default 120 s.
            var clock = Stopwatch.StartNew();
            while (children.Any(Running))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"worker processes {string.Join(", ", children.Where(Running))} still run 60 s after their parent was killed");
                await Task.Delay(200);
            }
        }
        finally
        {
            foreach (var pid in children.Where(Running))
            {
                try
                {
                    using var left = Process.GetProcessById(pid);
                    left.Kill();
                }
                catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
                {
                    // It ended meanwhile.
                }
            }
        }
    }

    [Fact]
    public async Task TrainProcesses_EveryWorkerProcessGone_TrainFailsWithAClearError()
    {
        var (train, children) = await StartTrainProcessesAsync();

        foreach (var pid in children)
        {
            using var child = Process.GetProcessById(pid);
            child.Kill();
        }

        // Before, train waited for members that could no longer come, until it was killed.
        Assert.True(train.WaitForExit(60_000), $"train still runs 60 s after its worker processes were killed; it said:\n{Said()}");
        Assert.True(train.ExitCode == 1, $"train exited with {train.ExitCode}; it said:\n{Said()}");
        Assert.Contains(_log, line => line.Contains("error: All 2 worker processes exited before training finished", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("off")]
    [InlineData("auto")]
    public async Task TrainProcesses_TakesTheOptionsOfTensorsBetweenProcesses(string sharedMemory)
    {
        // In-process workers refuse --wire-tensors and --shared-memory (nothing crosses a process there); worker
        // processes use them: with the shared-memory file off, every tensor goes over the streams.
        var report = Path.Combine(_dir, $"report-{sharedMemory}.json");
        var train = Start("train", "--dataset", WriteCsv(), "--label", "label", "--layers", "12,8", "--epochs", "1", "--batch-size", "10", "--workers", "2", "--processes",
            "--wire-tensors", "dense", "--shared-memory", sharedMemory, "--report", report, "--quiet");
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await train.WaitForExitAsync(patience.Token);
        Assert.True(train.ExitCode == 0, $"train exited with {train.ExitCode}; it said:\n{Said()}");
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(report));
        var steps = json.RootElement.GetProperty("stepBreakdown");
        Assert.True(steps.GetProperty("bytesSent").GetInt64() > 0, steps.ToString());
        Assert.Equal(sharedMemory == "off", steps.GetProperty("sharedMemoryBytes").GetInt64() == 0);
    }

    [Fact]
    public async Task TrainProcesses_ModelDiverges_FailsWithTheDivergenceError()
    {
        // The workers' streams refuse their NaN answers; before, both were dropped and train waited for members.
        var train = Start("train", "--dataset", WriteCsv(), "--label", "label", "--layers", "12,8", "--epochs", "3", "--batch-size", "10", "--workers", "2", "--processes", "--lr", "1e30", "--optimizer", "sgd");
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            await train.WaitForExitAsync(patience.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"train still runs 90 s after it started a diverging run; it said:\n{Said()}");
        }

        Assert.True(train.ExitCode == 1, $"train exited with {train.ExitCode}; it said:\n{Said()}");
        Assert.Contains(_log, line => line.Contains("error: Every worker that answered step", StringComparison.Ordinal) && line.Contains("Lower the learning rate", StringComparison.Ordinal));
        // The first round in which both refused ends it: neither refusal is taken for a plain failure whose samples go to
        // the other worker.
        Assert.DoesNotContain(_log, line => line.Contains("Reassigned", StringComparison.Ordinal));
    }

    /// <summary>The process ids whose parent is <paramref name="parent"/>.</summary>
    private static List<int> Children(int parent) =>
        [.. Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0 && Stat(pid) is { } stat && stat.Parent == parent)];

    /// <summary>True while the process runs (a zombie left for a parent that does not reap it has ended).</summary>
    private static bool Running(int pid) => Stat(pid) is { } stat && stat.State != 'Z';

    private static (char State, int Parent)? Stat(int pid)
    {
        try
        {
            // "pid (comm) state ppid ...": the name may hold spaces and parentheses, so read after the last ')'.
            var text = File.ReadAllText($"/proc/{pid}/stat");
            var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
            return (fields[0][0], int.Parse(fields[1], CultureInfo.InvariantCulture));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Waits until the coordinator answers that it waits for workers.</summary>
    private async Task WaitingAsync(GrpcClient poller, Process coordinator, Stopwatch clock)
    {
        while ((await StatusAsync(poller))?.State != "waiting")
        {
            Assert.False(coordinator.HasExited, $"the coordinator ended before it listened; the processes said:\n{Said()}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), $"the coordinator never answered; the processes said:\n{Said()}");
            await Task.Delay(10);
        }
    }
}
