using Cluster.Contracts.Configuration;
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Cluster.Compute.Backends;
using Cluster.Compute.Benchmarks;
using Cluster.Compute.Data;

namespace Cluster.Coordinator.Cli;

/// <summary><c>cluster bench gemm|train|cluster</c>: throughput of the compute backends and of the cluster on this machine.</summary>
public static class BenchCommand
{
    private static readonly int[] DefaultNetwork = [784, 128, 64, 10];

    /// <summary>Creates the command group.</summary>
    public static Command Create()
    {
        var bench = new Command("bench", "Measure the compute backends (GEMM GFLOP/s against the CPU's FMA peak, MNIST training epochs) and the cluster's data-parallel throughput.");
        bench.Subcommands.Add(Gemm());
        bench.Subcommands.Add(Train());
        bench.Subcommands.Add(ClusterThroughput.Create());
        return bench;
    }

    internal static Option<bool> Json() => new("--json") { Description = "Print one JSON object instead of a table." };

    private static Option<string> Backends() => new("--backend") { Description = "auto, managed, openblas, or all (every one available).", DefaultValueFactory = _ => "all" };

    private static Option<string> ThreadCounts() => new("--threads") { Description = "Thread counts to measure, comma-separated (default: 1 and the processor count; the managed backend computes on at most the processor count).", DefaultValueFactory = _ => $"1,{Environment.ProcessorCount}" };

    private static Command Gemm()
    {
        var command = new Command("gemm", "GFLOP/s for 1024x1024x1024 and the default MNIST network's shapes (forward, dW, dX of each layer) at batch 64 and 256, per backend and thread count.");
        var json = Json();
        var backends = Backends();
        var threads = ThreadCounts();
        var size = new Option<int>("--size") { Description = "Edge of the square GEMM.", DefaultValueFactory = _ => 1024 };
        command.Options.Add(json);
        command.Options.Add(backends);
        command.Options.Add(threads);
        command.Options.Add(size);
        CliApp.SetHandler(command, (r, output, cancellationToken) =>
        {
            var counts = ParsePositiveList(r.GetValue(threads)!, "--threads");
            // A backend computes on at most the processor count of threads (ComputeBackend.Parallelism), so each row
            // is set against the peak and fork-join of as many threads as it computed on, not as many as it was asked.
            var computing = counts.Select(ComputeThreads).Distinct().ToArray();
            var peaks = computing.ToDictionary(t => t, GemmBenchmark.MeasurePeak);
            // The other bound on a multi-threaded call: the fork and join it pays whatever its size.
            var forkJoin = computing.Where(t => t > 1).ToDictionary(t => t, t => GemmBenchmark.MeasureForkJoin(t));
            var n = r.GetValue(size);
            var results = new List<GemmResult>();
            foreach (var (name, t) in Configurations(r.GetValue(backends)!, counts, output, r.GetValue(json)))
            {
                using var backend = BackendFactory.Create(name, t);
                if (backend.Parallelism != ComputeThreads(t))
                {
                    throw new InvalidOperationException($"The {name} backend of {t} threads computes on {backend.Parallelism}, not the {ComputeThreads(t)} its peak was measured for.");
                }

                // The network's shapes last microseconds each and the square one milliseconds, so a few seconds of
                // interference from elsewhere on the machine can cover a whole measurement: the list is measured in
                // three interleaved passes and each shape keeps its best pass.
                var shapes = new[] { (Label: $"{n}^3", M: n, N: n, K: n, TransA: false, TransB: false) }
                    .Concat(new[] { 64, 256 }.SelectMany(batch => GemmBenchmark.NetworkShapes(DefaultNetwork, batch)))
                    .ToList();
                var best = new GemmResult[shapes.Count];
                for (var pass = 0; pass < 3; pass++)
                {
                    for (var i = 0; i < shapes.Count; i++)
                    {
                        // Ctrl+C stops between measurements (each lasts a fraction of a second).
                        cancellationToken.ThrowIfCancellationRequested();
                        var s = shapes[i];
                        var result = GemmBenchmark.Measure(backend, s.Label, s.M, s.N, s.K, s.TransA, s.TransB, i == 0 ? 0.12 : 0.05);
                        if (best[i] is null || result.Gflops > best[i].Gflops)
                        {
                            best[i] = result;
                        }
                    }
                }

                results.AddRange(best);
            }

            if (r.GetValue(json))
            {
                WriteJson(output, w =>
                {
                    WritePerThreadCount(w, "peak", "gflops", peaks, 2);
                    WritePerThreadCount(w, "forkJoin", "nanoseconds", forkJoin, 1);
                    w.WriteStartArray("gemm");
                    foreach (var g in results)
                    {
                        w.WriteStartObject();
                        w.WriteString("backend", g.Backend);
                        w.WriteNumber("threads", g.Threads);
                        w.WriteNumber("computeThreads", g.Parallelism);
                        w.WriteString("shape", g.Label);
                        w.WriteNumber("m", g.M);
                        w.WriteNumber("n", g.N);
                        w.WriteNumber("k", g.K);
                        w.WriteBoolean("transA", g.TransA);
                        w.WriteBoolean("transB", g.TransB);
                        w.WriteNumber("gflops", Math.Round(g.Gflops, 2));
                        w.WriteNumber("peakFraction", Math.Round(g.Gflops / peaks[g.Parallelism], 3));
                        if (forkJoin.TryGetValue(g.Parallelism, out var ns))
                        {
                            w.WriteNumber("forkJoinBound", Math.Round(GemmBenchmark.ForkJoinBound(g, peaks[g.Parallelism], ns), 3));
                        }

                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                });
                return Task.FromResult(0);
            }

            var c = CultureInfo.InvariantCulture;
            WriteCappedThreads(output, counts);
            foreach (var (t, p) in peaks)
            {
                output.WriteLine(string.Create(c, $"FP32 FMA peak, {t} thread(s): {p:0.0} GFLOP/s"));
            }

            foreach (var (t, ns) in forkJoin)
            {
                output.WriteLine(string.Create(c, $"Fork-join of a {t}-thread call (an empty job): {ns:0} ns"));
            }

            if (forkJoin.Count > 0)
            {
                output.WriteLine("bound: the most of the peak an N-thread call can reach after paying one fork-join (its work split evenly, every thread at");
                output.WriteLine("       the full peak), or else on one thread alone (1/N of the peak)");
            }

            output.WriteLine($"{"backend",-9} {"thr",3} {"shape",-16} {"m",5} {"n",5} {"k",5} {"GFLOP/s",9} {"of peak",8} {"bound",6}");
            foreach (var g in results)
            {
                var bound = forkJoin.TryGetValue(g.Parallelism, out var ns) ? GemmBenchmark.ForkJoinBound(g, peaks[g.Parallelism], ns).ToString("P0", c) : "";
                output.WriteLine(string.Create(c, $"{g.Backend,-9} {g.Threads,3} {g.Label,-16} {g.M,5} {g.N,5} {g.K,5} {g.Gflops,9:0.0} {g.Gflops / peaks[g.Parallelism],8:P0} {bound,6}"));
            }

            return Task.FromResult(0);
        });
        return command;
    }

    private static Command Train()
    {
        var command = new Command("train", "Seconds and samples/s of one MNIST epoch of the default network (784-128-64-10, SGD), per backend and thread count; the fastest of --epochs epochs is reported (the first includes JIT warm-up).");
        var json = Json();
        var backends = Backends();
        var threads = ThreadCounts();
        var batch = new Option<int>("--batch-size") { Description = "Mini-batch size.", DefaultValueFactory = _ => 64 };
        var epochs = new Option<int>("--epochs") { Description = "Epochs per configuration.", DefaultValueFactory = _ => 2 };
        var dataDir = EnvOption.Create("--data-dir", "Folder of the MNIST files (fetched when missing).", "CLUSTER_DATA_DIR", Path.Combine("data", "mnist"));
        foreach (var o in new Option[] { json, backends, threads, batch, epochs, dataDir })
        {
            command.Options.Add(o);
        }

        CliApp.SetHandler(command, async (r, output, cancellationToken) =>
        {
            var counts = ParsePositiveList(r.GetValue(threads)!, "--threads");
            var dir = r.GetValue(dataDir)!;
            await MnistFetcher.EnsureAsync(dir, log: r.GetValue(json) ? null : output.WriteLine, cancellationToken: cancellationToken).ConfigureAwait(false);
            var train = Mnist.LoadTrain(dir);
            var test = Mnist.LoadTest(dir);
            var results = new List<TrainResult>();
            foreach (var (name, t) in Configurations(r.GetValue(backends)!, counts, output, r.GetValue(json)))
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var backend = BackendFactory.Create(name, t);
                results.Add(TrainBenchmark.Measure(backend, train, test, [128, 64], r.GetValue(batch), Math.Max(1, r.GetValue(epochs)), cancellationToken: cancellationToken));
            }

            if (r.GetValue(json))
            {
                WriteJson(output, w =>
                {
                    w.WriteStartArray("train");
                    foreach (var e in results)
                    {
                        w.WriteStartObject();
                        w.WriteString("backend", e.Backend);
                        w.WriteNumber("threads", e.Threads);
                        w.WriteNumber("computeThreads", e.Parallelism);
                        w.WriteNumber("batch", e.Batch);
                        w.WriteNumber("epochSeconds", Math.Round(e.EpochSeconds, 4));
                        w.WriteNumber("samplesPerSecond", Math.Round(e.SamplesPerSecond));
                        w.WriteNumber("allocatedBytesPerEpoch", e.AllocatedBytesPerEpoch);
                        w.WriteNumber("gen0Collections", e.Gen0Collections);
                        w.WriteNumber("testAccuracy", Math.Round(e.TestAccuracy, 4));
                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                });
                return 0;
            }

            WriteCappedThreads(output, counts);
            output.WriteLine($"{"backend",-9} {"thr",3} {"batch",5} {"epoch s",8} {"samples/s",10} {"alloc/epoch",12} {"gen0",5} {"test acc",8}");
            foreach (var e in results)
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{e.Backend,-9} {e.Threads,3} {e.Batch,5} {e.EpochSeconds,8:0.000} {e.SamplesPerSecond,10:N0} {e.AllocatedBytesPerEpoch,12:N0} {e.Gen0Collections,5} {e.TestAccuracy,8:P2}"));
            }

            return 0;
        });
        return command;
    }

    private static IEnumerable<(string Backend, int Threads)> Configurations(string which, int[] threads, TextWriter output, bool quiet)
    {
        var names = which == "all" ? ["managed", "openblas"] : new[] { which == "auto" ? "managed" : which };
        foreach (var name in names)
        {
            if (name == "openblas" && which == "all")
            {
                using var probe = OpenBlasBackend.TryCreate(1, out var reason);
                if (probe is null)
                {
                    if (!quiet)
                    {
                        output.WriteLine($"openblas: skipped: {reason}");
                    }

                    continue;
                }
            }

            foreach (var t in threads)
            {
                yield return (name, t);
            }
        }
    }

    /// <summary>The threads a backend asked for <paramref name="threads"/> computes on (<see cref="ComputeBackend.Parallelism"/>).</summary>
    private static int ComputeThreads(int threads) => Math.Min(threads, Environment.ProcessorCount);

    /// <summary>Says which asked thread counts compute on fewer threads, so a row's "thr" is not read as what ran.</summary>
    private static void WriteCappedThreads(TextWriter output, int[] counts)
    {
        foreach (var t in counts.Where(t => ComputeThreads(t) != t))
        {
            output.WriteLine($"Note: {t} threads on {Environment.ProcessorCount} processor(s): the backends compute on {ComputeThreads(t)} (threads past the processors only queue for a core); the rows of {t} threads measure that.");
        }
    }

    /// <summary>A comma-separated list of positive whole numbers, as <paramref name="option"/> takes; duplicates dropped.</summary>
    internal static int[] ParsePositiveList(string s, string option) =>
        [.. s.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(p =>
            int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1 ? n : throw new ArgumentException($"{option} takes positive whole numbers separated by commas; '{p}' is not one.")).Distinct()];

    /// <summary>Writes <paramref name="values"/> as an array named <paramref name="name"/> of { threads, <paramref name="field"/> }.</summary>
    private static void WritePerThreadCount(Utf8JsonWriter w, string name, string field, Dictionary<int, double> values, int digits)
    {
        w.WriteStartArray(name);
        foreach (var (t, v) in values)
        {
            w.WriteStartObject();
            w.WriteNumber("threads", t);
            w.WriteNumber(field, Math.Round(v, digits));
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    internal static void WriteJson(TextWriter output, Action<Utf8JsonWriter> body)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("machine", $"{Environment.ProcessorCount} processors, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}");
            body(w);
            w.WriteEndObject();
        }

        output.WriteLine(System.Text.Encoding.UTF8.GetString(stream.ToArray()));
    }
}
