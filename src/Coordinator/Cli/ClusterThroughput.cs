using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Cluster.Compute.Data;
using Cluster.Contracts.Configuration;
using Cluster.Coordinator.Runs;

namespace Cluster.Coordinator.Cli;

/// <summary>
/// <c>cluster bench cluster</c>: data-parallel throughput of N worker processes (one compute thread each, joined over
/// gRPC on 127.0.0.1) against one process with N compute threads, at the same global batch, side by side in one run.
/// </summary>
internal static class ClusterThroughput
{
    /// <summary>How the tensors travel between the processes: block-sparse or dense on the stream, and through shared memory or not.</summary>
    internal sealed record Transport(bool BlockTensors, bool SharedMemory);

    /// <summary>One configuration's figures.</summary>

    internal sealed record Result(int Batch, string Mode, int Workers, int Threads, double SamplesPerSecond, double TestAccuracy, JsonElement? Breakdown);

    public static Command Create()
    {
        var command = new Command("cluster", "Throughput of data-parallel training: --workers worker processes of one thread each, joined over gRPC on 127.0.0.1, against one process with --workers threads, at the same global batch (default MNIST network, SGD). Each figure is the best epoch after the first (which includes JIT warm-up) over --repeat interleaved runs; the per-step breakdown of the process run says where the difference goes.");
        var json = BenchCommand.Json();
        var batches = new Option<string>("--batch-sizes") { Description = "Global batch sizes, comma-separated.", DefaultValueFactory = _ => "256,1024" };
        var workers = new Option<int>("--workers") { Description = "Worker processes (and threads of the single process).", DefaultValueFactory = _ => Math.Max(2, Environment.ProcessorCount) };
        var epochs = new Option<int>("--epochs") { Description = "Epochs per configuration (at least 2: the first is warm-up).", DefaultValueFactory = _ => 3 };
        var repeat = new Option<int>("--repeat") { Description = "Runs of each configuration, interleaved; the best is reported (timings on shared machines are noisy).", DefaultValueFactory = _ => 2 };
        var wire = new Option<string>("--wire-tensors") { Description = "Tensors between the processes: blocks (the default of train and coordinator) or dense.", DefaultValueFactory = _ => "blocks" };
        var shared = new Option<string>("--shared-memory") { Description = "Tensors through a shared-memory file (auto, the default of train and coordinator) or over the gRPC stream only (off).", DefaultValueFactory = _ => "auto" };
        var dataDir = EnvOption.Create("--data-dir", "Folder of the MNIST files (fetched when missing).", "CLUSTER_DATA_DIR", Path.Combine("data", "mnist"));
        foreach (var o in new Option[] { json, batches, workers, epochs, repeat, wire, shared, dataDir })
        {
            command.Options.Add(o);
        }

        CliApp.SetHandler(command, async (r, output, cancellationToken) =>
        {
            var sizes = BenchCommand.ParsePositiveList(r.GetValue(batches)!, "--batch-sizes");
            var n = r.GetValue(workers);
            var e = r.GetValue(epochs);
            var runs = r.GetValue(repeat);
            if (n < 1 || e < 2 || runs < 1)
            {
                throw new ArgumentException("--workers and --repeat must be at least 1 and --epochs at least 2 (the first epoch is warm-up).");
            }

            var transport = new Transport(TrainingOptionSet.BlockTensors(r.GetValue(wire)), Cluster.WorkerSilo.WorkerCli.ParseSharedMemory(r.GetValue(shared)));
            var dir = r.GetValue(dataDir)!;
            var quiet = r.GetValue(json);
            await MnistFetcher.EnsureAsync(dir, log: quiet ? null : output.WriteLine, cancellationToken: cancellationToken).ConfigureAwait(false);
            var results = new List<(Result Single, Result Cluster)>();
            foreach (var batch in sizes)
            {
                var single = await MeasureAsync(dir, batch, e, ClusterMode.Embedded, 1, n, transport, cancellationToken).ConfigureAwait(false);
                var cluster = await MeasureAsync(dir, batch, e, ClusterMode.Processes, n, 1, transport, cancellationToken).ConfigureAwait(false);
                for (var run = 1; run < runs; run++)
                {
                    single = Best(single, await MeasureAsync(dir, batch, e, ClusterMode.Embedded, 1, n, transport, cancellationToken).ConfigureAwait(false));
                    cluster = Best(cluster, await MeasureAsync(dir, batch, e, ClusterMode.Processes, n, 1, transport, cancellationToken).ConfigureAwait(false));
                }

                results.Add((single, cluster));
                if (!quiet)
                {
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"batch {batch}: 1 process x {n} threads {single.SamplesPerSecond:N0} samples/s; {n} processes x 1 thread {cluster.SamplesPerSecond:N0} samples/s"));
                }
            }

            if (quiet)
            {
                BenchCommand.WriteJson(output, w =>
                {
                    w.WriteStartArray("cluster");
                    foreach (var (single, cluster) in results)
                    {
                        w.WriteStartObject();
                        w.WriteNumber("batch", single.Batch);
                        w.WriteNumber("workers", cluster.Workers);
                        w.WriteNumber("singleProcessSamplesPerSecond", Math.Round(single.SamplesPerSecond));
                        w.WriteNumber("clusterSamplesPerSecond", Math.Round(cluster.SamplesPerSecond));
                        w.WriteNumber("ratio", Math.Round(cluster.SamplesPerSecond / single.SamplesPerSecond, 3));
                        w.WriteNumber("singleProcessTestAccuracy", Math.Round(single.TestAccuracy, 4));
                        w.WriteNumber("clusterTestAccuracy", Math.Round(cluster.TestAccuracy, 4));
                        if (cluster.Breakdown is { } b)
                        {
                            w.WritePropertyName("stepBreakdown");
                            b.WriteTo(w);
                        }

                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                });
                return 0;
            }

            output.WriteLine($"{"batch",5} {"1 proc samples/s",17} {n + " procs samples/s",17} {"ratio",6} {"step ms",8} {"compute",8} {"wait",6} {"codec",6} {"average",8}");
            foreach (var (single, cluster) in results)
            {
                var b = cluster.Breakdown;
                double Part(string name) => b is { } x && x.GetProperty("totalSeconds").GetDouble() > 0 ? x.GetProperty(name).GetDouble() / x.GetProperty("totalSeconds").GetDouble() : 0;
                var stepMs = b?.GetProperty("meanStepMilliseconds").GetDouble() ?? 0;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{single.Batch,5} {single.SamplesPerSecond,17:N0} {cluster.SamplesPerSecond,17:N0} {cluster.SamplesPerSecond / single.SamplesPerSecond,6:0.00} {stepMs,8:0.00} {Part("computeSeconds"),8:P0} {Part("waitSeconds"),6:P0} {Part("serializationSeconds"),6:P0} {Part("averagingSeconds"),8:P0}"));
            }

            output.WriteLine("compute: the workers' gradient time; wait: transfer, scheduling and the slowest worker; codec: encoding and decoding; average: summing and the optimizer.");
            return 0;
        });
        return command;
    }

    /// <summary>Trains with the given topology and returns its best epoch after the first.</summary>
    internal static async Task<Result> MeasureAsync(string dataDir, int batch, int epochs, ClusterMode mode, int workers, int threads, Transport transport, CancellationToken cancellationToken)
    {
        var folder = Directory.CreateTempSubdirectory("cluster-bench-");
        try
        {
            var report = Path.Combine(folder.FullName, "report.json");
            var settings = new TrainSettings
            {
                DataDir = dataDir,
                BatchSize = batch,
                Epochs = epochs,
                Threads = threads,
                Quiet = true,
                ReportPath = report,
                PlotPath = Path.Combine(folder.FullName, "plot.svg"),
                BlockTensors = transport.BlockTensors,
                SharedMemory = transport.SharedMemory,
            };
            var cluster = new ClusterSettings { Mode = mode, Workers = workers };
            var code = await ClusterRunner.RunAsync(settings, cluster, TextWriter.Null, cancellationToken).ConfigureAwait(false);
            if (code != 0)
            {
                throw new InvalidOperationException($"The {mode} run at batch {batch} ended with exit code {code}.");
            }

            using var doc = JsonDocument.Parse(await File.ReadAllTextAsync(report, cancellationToken).ConfigureAwait(false));
            var root = doc.RootElement;
            var best = root.GetProperty("epochs").EnumerateArray().Skip(1).Max(x => x.GetProperty("samplesPerSecond").GetDouble());
            var accuracy = root.GetProperty("testAccuracy").GetDouble();
            JsonElement? breakdown = root.TryGetProperty("stepBreakdown", out var b) && mode == ClusterMode.Processes ? b.Clone() : null;
            return new Result(batch, mode.ToString().ToLowerInvariant(), workers, threads, best, accuracy, breakdown);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    private static Result Best(Result a, Result b) => a.SamplesPerSecond >= b.SamplesPerSecond ? a : b;
}
