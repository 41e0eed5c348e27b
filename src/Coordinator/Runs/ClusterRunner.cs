using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using Cluster.Compute;
using Cluster.Compute.Backends;
using Cluster.Compute.Training;
using Cluster.Contracts.V1;
using Cluster.Coordinator.Grains;
using Cluster.Coordinator.Hosting;
using Cluster.Coordinator.Observability;
using Cluster.Contracts.Metrics;
using Cluster.WorkerSilo;
using Cluster.Contracts.Configuration;
using Microsoft.Extensions.Logging;

namespace Cluster.Coordinator.Runs;

/// <summary>Runs a training job on the cluster grains, in any of the three modes; one training code path for all.</summary>
public static class ClusterRunner
{
    /// <summary>Prepares, trains, evaluates, saves and reports; returns the exit code.</summary>
    public static async Task<int> RunAsync(TrainSettings settings, ClusterSettings cluster, TextWriter output, CancellationToken cancellationToken)
    {
        RunOutputs.CheckWritable(settings);
        using var checkpointFolder = RunOutputs.ClaimCheckpointFolder(settings);
        var clock = Stopwatch.StartNew();
        // The HTTP side comes up first, so health probes pass while the data is fetched and loaded.
        var scope = new object();
        using var exporter = new PrometheusExporter(scope);
        CoordinatorGrain? grain = null;
        CoordinatorEndpoint? endpoint = null;
        await using var http = cluster.HttpPort is { } httpPort
            ? await MetricsHost.StartAsync(MetricsHost.Bind(cluster.HttpBind), httpPort, exporter, () => grain is not null && (cluster.Mode != ClusterMode.Remote || endpoint is not null), app => DashboardRoutes.Map(app, () => grain)).ConfigureAwait(false)
            : null;
        var run = await TrainingSetup.PrepareAsync(settings, m => Say(output, settings, m), cancellationToken).ConfigureAwait(false);
        using var loggerFactory = Logs.Create(cluster.LogLevelFor(settings.Quiet), settings.LogFormat);
        var logger = loggerFactory.CreateLogger("Cluster.Coordinator");
        using var evalBackend = BackendFactory.Create(settings.Backend, Environment.ProcessorCount);
        var options = cluster.Mode == ClusterMode.Remote
            ? cluster.Cluster
            : cluster.Cluster with { MinWorkers = cluster.Workers, MaxWorkers = Math.Max(cluster.Workers, cluster.Cluster.MaxWorkers) };
        options = options with
        {
            CheckpointDirectory = settings.CheckpointDirectory,
            CheckpointEvery = settings.CheckpointEvery,
            CheckpointKeep = settings.CheckpointKeep,
            ResumeDirectory = settings.Resume,
            BlockTensors = settings.BlockTensors,
            // Remote workers outlive a coordinator stopped by a signal and rejoin its replacement; local ones stop with it.
            KeepWorkersOnCancel = cluster.Mode == ClusterMode.Remote,
        };
        grain = new CoordinatorGrain(run, options, evalBackend, logger);
        var interactive = !settings.Quiet && ConsoleProgress.IsTerminal(output);
        if (!interactive)
        {
            grain.Trainer.Observe(new ConsoleProgress(output, run.Options.Epochs, settings.Quiet));
        }
        var workerThreads = settings.Threads;
        Say(output, settings, string.Create(CultureInfo.InvariantCulture,
            $"Training {run.Model.Shape()} ({run.Model.ParameterCount:N0} parameters) on {run.DatasetName}: {run.Train.Count:N0} samples, batch {run.Options.BatchSize}, {run.Options.Optimizer} lr {run.Options.LearningRate}, {run.Options.Epochs} epochs; {Describe(cluster, workerThreads, settings.Backend)}"));

        var oversubscribed = Oversubscribed(cluster.Workers, workerThreads, Environment.ProcessorCount);
        if (cluster.Mode != ClusterMode.Remote && oversubscribed is not null)
        {
            Say(output, settings, oversubscribed);
        }

        var embedded = new List<WorkerGrain>();
        var children = new List<(Process Process, Task Drained)>();
        using var metrics = new TrainingMetrics(scope, grain, () => endpoint is null ? (0, 0) : (endpoint.Counters.BytesSent, endpoint.Counters.BytesReceived));
        try
        {
            if (http is not null)
            {
                var dashboard = new Uri(http.Address, "dashboard");
                Say(output, settings, $"Dashboard: {dashboard}  metrics: {new Uri(http.Address, "metrics")}");
                if (cluster.OpenDashboard)
                {
                    OpenBrowser(dashboard, output);
                }
            }

            switch (cluster.Mode)
            {
                case ClusterMode.Embedded:
                    // Spinning between steps and products pays where every compute thread has a core; with more, it takes their cores.
                    var spin = oversubscribed is null;
                    for (var i = 0; i < cluster.Workers; i++)
                    {
                        var worker = new WorkerGrain($"worker-{i}", settings.Backend, workerThreads, spinBetweenSteps: spin, computeSpins: spin, trainingSet: run.Train);
                        embedded.Add(worker);
                        await grain.JoinAsync(new Hello { WorkerId = worker.WorkerId, ProtocolVersion = 1, Threads = workerThreads, Backend = worker.BackendName, Address = "in-process" }, worker, cancellationToken).ConfigureAwait(false);
                    }

                    break;
                case ClusterMode.Processes:
                    var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
                    endpoint = await CoordinatorEndpoint.StartAsync(grain, cluster.Endpoint with { Listen = new Uri("http://127.0.0.1:0"), Token = token, SharedMemory = settings.SharedMemory }, loggerFactory, run.Model.ParameterCount).ConfigureAwait(false);
                    for (var i = 0; i < cluster.Workers; i++)
                    {
                        children.Add(StartWorker(endpoint.GrpcAddress, $"local-{i}", workerThreads, settings.Backend, token));
                    }

                    break;
                case ClusterMode.Remote:
                    endpoint = await CoordinatorEndpoint.StartAsync(grain, cluster.Endpoint with { SharedMemory = settings.SharedMemory }, loggerFactory, run.Model.ParameterCount).ConfigureAwait(false);
                    Say(output, settings, $"Coordinator listening on {endpoint.GrpcAddress} (gRPC); waiting for at least {options.MinWorkers} worker(s).");
                    break;
            }

            // train --processes: once every worker process has exited, no member can come, and the run fails instead of
            // waiting for one (its workers' last lines, above, say why they went).
            using var orphaned = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var workersGone = children.Count == 0
                ? Task.CompletedTask
                : Task.WhenAll(children.Select(c => c.Process.WaitForExitAsync(orphaned.Token))).ContinueWith(t =>
                {
                    if (t.IsCompletedSuccessfully)
                    {
                        orphaned.Cancel();
                    }
                }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            IReadOnlyList<EpochRecord> history;
            try
            {
                history = interactive
                    ? await SpectreProgress.RunAsync(run.Options.Epochs, observer =>
                    {
                        grain.Trainer.Observe(observer);
                        return grain.RunAsync(orphaned.Token);
                    }).ConfigureAwait(false)
                    : await grain.RunAsync(orphaned.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && orphaned.IsCancellationRequested)
            {
                throw new InvalidOperationException($"All {children.Count} worker processes exited before training finished (their last lines are above); the run stopped at step {grain.Trainer.State.GlobalStep}.");
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Ctrl+C or SIGTERM: say where the run stopped and what of it is kept, even with --quiet.
                output.WriteLine(DescribeStop(grain.Trainer.State, run.Options.Epochs, grain.Trainer.StepsPerEpoch, settings.CheckpointDirectory ?? settings.Resume, grain.StopCheckpointDirectory));
                throw;
            }
            finally
            {
                // Stops the watch: the workers leave when told the run is over.
                orphaned.Cancel();
                await workersGone.ConfigureAwait(false);
            }
            foreach (var skipped in grain.SkippedCheckpoints)
            {
                output.WriteLine($"warning: corrupt checkpoint skipped: {skipped}");
            }

            if (grain.ResumedFrom is { } resumed)
            {
                Say(output, settings, $"Resumed from the checkpoint at {resumed}.");
            }
            var test = run.Test is null ? (BatchStats?)null : grain.Trainer.Evaluate(run.Test);
            if (endpoint is not null)
            {
                grain.Timings.BytesSent = endpoint.Counters.BytesSent;
                grain.Timings.BytesReceived = endpoint.Counters.BytesReceived;
                grain.Timings.SharedMemoryBytes = endpoint.Counters.SharedMemoryBytes;
            }

            if (!settings.Quiet)
            {
                output.WriteLine($"Steps: {grain.Timings.Describe()}");
            }

            // As the workers said in their hellos: a remote worker's --threads is its own, not this process's. Null when
            // they differed (workerThreads lists them) or none was admitted.
            var threads = grain.WorkerThreads;
            int? threadsPerWorker = threads is [var only] ? only : null;
            RunOutputs.Finish(output, settings, run, history, test, grain.Trainer.State, evalBackend, clock.Elapsed.TotalSeconds, w =>
            {
                w.WriteNumber("workers", grain.PeakWorkers);
                w.WriteString("mode", cluster.Mode.ToString().ToLowerInvariant());
                if (threadsPerWorker is { } perWorker)
                {
                    w.WriteNumber("threadsPerWorker", perWorker);
                }
                else
                {
                    w.WriteNull("threadsPerWorker");
                }

                w.WriteStartArray("workerThreads");
                foreach (var t in threads)
                {
                    w.WriteNumberValue(t);
                }

                w.WriteEndArray();
                // The report's backend is the one this process evaluated with; the workers computed with theirs.
                w.WriteStartArray("workerBackends");
                foreach (var b in grain.WorkerBackends)
                {
                    w.WriteStringValue(b);
                }

                w.WriteEndArray();
                w.WriteStartArray("sampleAccounting");
                foreach (var a in grain.Accounting)
                {
                    w.WriteStartObject();
                    w.WriteNumber("epoch", a.Epoch);
                    w.WriteNumber("samples", a.Samples);
                    w.WriteNumber("used", a.Used);
                    w.WriteNumber("duplicates", a.Duplicates);
                    w.WriteNumber("missing", a.Missing);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                grain.Counters.Write(w);
                if (grain.ResumedFrom is { } from)
                {
                    w.WriteString("resumedFrom", from);
                }
                grain.Timings.Write(w);
            }, threadsPerWorker);
            return 0;
        }
        finally
        {
            if (endpoint is not null)
            {
                await endpoint.DisposeAsync().ConfigureAwait(false);
            }

            await Task.WhenAll(children.Select(StopChildAsync)).ConfigureAwait(false);

            foreach (var worker in embedded)
            {
                worker.Dispose();
            }
        }
    }

    private static string Describe(ClusterSettings cluster, int threads, string backend) => cluster.Mode switch
    {
        ClusterMode.Embedded => $"{cluster.Workers} in-process worker(s) x {threads} thread(s), backend {backend}",
        ClusterMode.Processes => $"{cluster.Workers} worker process(es) x {threads} thread(s) on 127.0.0.1, backend {backend}",
        _ => $"remote workers ({cluster.Cluster.MinWorkers} to {cluster.Cluster.MaxWorkers})",
    };

    /// <summary>Starts <c>cluster worker</c> as a child process of this executable.</summary>
    private static (Process Process, Task Drained) StartWorker(Uri coordinator, string id, int threads, string backend, string token)
    {
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("Cannot find this executable to start worker processes.");
        var psi = new ProcessStartInfo(host) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            psi.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
        }

        // A worker of this process has nothing to reconnect to once this process is gone (killed with -9, say): it gives
        // up 10 s after losing it instead of the default 120 s, so no orphan lingers.
        foreach (var arg in new[] { "worker", "--coordinator", coordinator.ToString(), "--worker-id", id, "--threads", threads.ToString(CultureInfo.InvariantCulture), "--backend", backend, "--log-level", "warning", "--connect-timeout-seconds", "10" })
        {
            psi.ArgumentList.Add(arg);
        }

        psi.Environment["CLUSTER_TOKEN"] = token;
        psi.Environment.Remove("CLUSTER_TOKEN_FILE");
        var process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start a worker process.");
        return (process, ChildOutput.Pump(process, $"worker-{id}", line => Forward(id, line)));
    }

    private static void OpenBrowser(Uri url, TextWriter output)
    {
        try
        {
            using var browser = Process.Start(new ProcessStartInfo("xdg-open", url.ToString()) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true });
        }
        catch (System.ComponentModel.Win32Exception)
        {
            output.WriteLine($"Open {url} in a browser to watch the run.");
        }
    }

    private static void Forward(string id, string line)
    {
        if (!string.IsNullOrEmpty(line))
        {
            Console.Error.WriteLine($"[{id}] {line}");
        }
    }

    /// <summary>
    /// Stops a worker process: one told the run is over exits by itself; one that never joined (the run stopped first)
    /// or lost its stream is retrying the address, and gets SIGTERM, then a kill. Its output is read to the end.
    /// </summary>
    private static async Task StopChildAsync((Process Process, Task Drained) worker)
    {
        var child = worker.Process;
        try
        {
            await ChildProcesses.StopAsync(child, TimeSpan.FromSeconds(3)).ConfigureAwait(false);
            await worker.Drained.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Its output pipe is held by a grandchild; the worker itself is gone.
        }
        finally
        {
            child.Dispose();
        }
    }

    /// <summary>
    /// What a user is told of a run stopped by a signal: the step it stopped at and whether a checkpoint holds it.
    /// <paramref name="folder"/>: the checkpoint folder asked for; <paramref name="kept"/>: the one whose newest
    /// checkpoint holds the step (null when it could not be written).
    /// </summary>
    internal static string DescribeStop(TrainingState state, int epochs, int stepsPerEpoch, string? folder, string? kept)
    {
        if (state.GlobalStep == 0)
        {
            return "Stopped before the first step: nothing was trained, and nothing was written.";
        }

        var at = state.StepInEpoch == 0
            ? string.Create(CultureInfo.InvariantCulture, $"Stopped at step {state.GlobalStep}, at the end of epoch {state.Epoch} of {epochs}")
            : string.Create(CultureInfo.InvariantCulture, $"Stopped at step {state.GlobalStep}, in epoch {state.Epoch + 1} of {epochs} (after {state.StepInEpoch} of its {stepsPerEpoch} steps)");
        if (kept is not null)
        {
            return $"{at}. The newest checkpoint in {kept} holds that step: --resume {kept} goes on from there. A stopped run writes no model or report.";
        }

        return folder is null
            ? $"{at}. Nothing was kept: a stopped run writes no model or report, and only a run with --checkpoint-dir leaves a checkpoint that --resume continues."
            : $"{at}. Its checkpoint could not be written to {folder} (the warning above says why), so --resume would go back to an earlier checkpoint, or start afresh. A stopped run writes no model or report.";
    }

    /// <summary>A note when local workers have more compute threads than the machine has processors; null otherwise.</summary>
    internal static string? Oversubscribed(int workers, int threads, int processors)
    {
        var total = (long)workers * Math.Min(threads, processors);
        return total <= processors
            ? null
            : string.Create(CultureInfo.InvariantCulture, $"Note: {workers} workers of {threads} thread{(threads == 1 ? "" : "s")} each compute on up to {total} threads at once, for {processors} processors; they take turns at the cores, so an epoch takes longer than with {processors} threads in all (the default when --workers and --threads are left out).");
    }

    private static void Say(TextWriter output, TrainSettings settings, string message)
    {
        if (!settings.Quiet)
        {
            output.WriteLine(message);
        }
    }
}
