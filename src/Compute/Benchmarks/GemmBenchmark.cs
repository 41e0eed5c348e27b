using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Cluster.Compute.Backends;
using Cluster.Compute.Kernels;

namespace Cluster.Compute.Benchmarks;

/// <summary>One measured GEMM shape.</summary>
/// <param name="Threads">The threads the backend was asked for.</param>
/// <param name="Parallelism">The threads it computed on: <paramref name="Threads"/>, up to the processor count.</param>
/// <param name="Label">What the shape is (e.g. "L1 forward b64").</param>
public sealed record GemmResult(string Backend, int Threads, int Parallelism, int M, int N, int K, bool TransA, bool TransB, string Label, double Gflops, double Seconds);

/// <summary>GFLOP/s of GEMM shapes and of the CPU's FMA peak, measured on this machine.</summary>
public static class GemmBenchmark
{
    /// <summary>The GEMM shapes of a dense network's training step: forward, weight gradient and input gradient per layer.</summary>
    public static IEnumerable<(string Label, int M, int N, int K, bool TransA, bool TransB)> NetworkShapes(int[] sizes, int batch)
    {
        for (var l = 0; l + 1 < sizes.Length; l++)
        {
            int input = sizes[l], output = sizes[l + 1];
            yield return ($"L{l + 1} forward b{batch}", batch, output, input, false, false);
            yield return ($"L{l + 1} dW b{batch}", input, output, batch, true, false);
            yield return ($"L{l + 1} dX b{batch}", batch, input, output, false, true);
        }
    }

    /// <summary>Measures one shape: the best of ten timed windows, together lasting at least <paramref name="minSeconds"/>.</summary>
    public static GemmResult Measure(ComputeBackend backend, string label, int m, int n, int k, bool transA, bool transB, double minSeconds = 0.25)
    {
        var a = Fill((long)m * k, 1);
        var b = Fill((long)k * n, 2);
        var c = new float[(long)m * n];
        int lda = transA ? m : k, ldb = transB ? k : n;
        backend.Gemm(transA, transB, m, n, k, 1f, a, lda, b, ldb, 0f, c, n);
        // Calibrate a window of calls that lasts about a tenth of the budget, so the clock is read twice per window
        // and not once per call (a clock read is tens of nanoseconds, several percent of the smallest shapes).
        var calibration = Stopwatch.GetTimestamp();
        var calls = 0;
        do
        {
            backend.Gemm(transA, transB, m, n, k, 1f, a, lda, b, ldb, 0f, c, n);
            calls++;
        }
        while (Stopwatch.GetElapsedTime(calibration).TotalSeconds < minSeconds / 40);
        var perCall = Stopwatch.GetElapsedTime(calibration).TotalSeconds / calls;
        const int trials = 10;
        var reps = (int)Math.Clamp(minSeconds / trials / perCall, 1, int.MaxValue);
        var best = double.MaxValue;
        // Many short timed windows rather than a few long ones: on a shared machine the best window is the one
        // nothing else ran in, and both backends are measured the same way.
        for (var trial = 0; trial < trials; trial++)
        {
            var start = Stopwatch.GetTimestamp();
            for (var rep = 0; rep < reps; rep++)
            {
                backend.Gemm(transA, transB, m, n, k, 1f, a, lda, b, ldb, 0f, c, n);
            }

            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds / reps);
        }

        return new GemmResult(backend.Name, backend.Threads, backend.Parallelism, m, n, k, transA, transB, label, 2.0 * m * n * k / best / 1e9, best);
    }

    /// <summary>
    /// The largest fraction of <paramref name="peakGflops"/> (the peak of all the call's threads) that a call of
    /// <paramref name="result"/>'s shape can reach when a fork and join costs <paramref name="forkJoinNanoseconds"/>:
    /// the better of its work split evenly over the threads, each at the full peak, with the fork-join on top, and
    /// the whole call left on one thread at that thread's share of the peak. An upper bound, not an estimate: no
    /// partition or kernel does better.
    /// </summary>
    public static double ForkJoinBound(GemmResult result, double peakGflops, double forkJoinNanoseconds)
    {
        ArgumentNullException.ThrowIfNull(result);
        var computeNanoseconds = 2.0 * result.M * result.N * result.K / peakGflops;
        var split = computeNanoseconds / (computeNanoseconds + Math.Max(forkJoinNanoseconds, 0));
        return Math.Max(split, 1.0 / result.Parallelism);
    }

    /// <summary>Peak FP32 GFLOP/s of one core: a loop of independent FMAs (2 flops per lane) of the widest vectors the GEMM kernel uses.</summary>
    public static double MeasureCorePeak(double seconds = 0.3)
    {
        if (!Vector256.IsHardwareAccelerated)
        {
            return double.NaN;
        }

        var wide = PackedGemm.VectorBits == 512;
        var lanes = wide ? Vector512<float>.Count : Vector256<float>.Count;
        var iterations = wide ? 2_000_000L : 4_000_000L;
        if (wide)
        {
            FmaLoop512(1000);
        }
        else
        {
            FmaLoop(1000);
        }

        var best = 0.0;
        var deadline = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        do
        {
            var start = Stopwatch.GetTimestamp();
            var sink = wide ? FmaLoop512(iterations) : FmaLoop(iterations);
            var s = Stopwatch.GetElapsedTime(start).TotalSeconds;
            best = Math.Max(best, iterations * 12.0 * lanes * 2 / s / 1e9);
            GC.KeepAlive(sink);
        }
        while (Stopwatch.GetTimestamp() < deadline);
        return best;
    }

    /// <summary>
    /// Peak with <paramref name="threads"/> cores running the FMA loop at once. Threads past the processor count add
    /// nothing: they take turns at the cores (each alone in its best window, so summing them would count a core twice).
    /// </summary>
    public static double MeasurePeak(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        threads = Math.Min(threads, Environment.ProcessorCount);
        if (threads == 1)
        {
            return MeasureCorePeak();
        }

        var results = new double[threads];
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t => results[t] = MeasureCorePeak());
        return results.Sum();
    }

    /// <summary>
    /// Nanoseconds a team of <paramref name="threads"/> takes to run an empty job, best of many windows: the time to
    /// wake the other members and learn that they are done, which every multi-threaded GEMM call pays on top of its
    /// share of the work. It is set by how fast one core sees another's write. A single thread has no team to time.
    /// </summary>
    public static double MeasureForkJoin(int threads, double seconds = 0.2)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 2);
        using var team = new ThreadTeam(threads);
        var nothing = new EmptyJob();
        // Short windows, so that a run on busy cores still has some that no other process interrupted.
        const int reps = 100;
        var best = double.MaxValue;
        var deadline = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        do
        {
            var start = Stopwatch.GetTimestamp();
            for (var rep = 0; rep < reps; rep++)
            {
                team.Run(nothing, threads);
            }

            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalNanoseconds / reps);
        }
        while (Stopwatch.GetTimestamp() < deadline);
        return best;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float FmaLoop(long iterations)
    {
        var x = Vector256.Create(0.999f);
        var y = Vector256.Create(0.001f);
        Vector256<float> a0 = x, a1 = x, a2 = x, a3 = x, a4 = x, a5 = x, a6 = x, a7 = x, a8 = x, a9 = x, a10 = x, a11 = x;
        for (long i = 0; i < iterations; i++)
        {
            a0 = Vector256.MultiplyAddEstimate(a0, x, y);
            a1 = Vector256.MultiplyAddEstimate(a1, x, y);
            a2 = Vector256.MultiplyAddEstimate(a2, x, y);
            a3 = Vector256.MultiplyAddEstimate(a3, x, y);
            a4 = Vector256.MultiplyAddEstimate(a4, x, y);
            a5 = Vector256.MultiplyAddEstimate(a5, x, y);
            a6 = Vector256.MultiplyAddEstimate(a6, x, y);
            a7 = Vector256.MultiplyAddEstimate(a7, x, y);
            a8 = Vector256.MultiplyAddEstimate(a8, x, y);
            a9 = Vector256.MultiplyAddEstimate(a9, x, y);
            a10 = Vector256.MultiplyAddEstimate(a10, x, y);
            a11 = Vector256.MultiplyAddEstimate(a11, x, y);
        }

        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float FmaLoop512(long iterations)
    {
        var x = Vector512.Create(0.999f);
        var y = Vector512.Create(0.001f);
        Vector512<float> a0 = x, a1 = x, a2 = x, a3 = x, a4 = x, a5 = x, a6 = x, a7 = x, a8 = x, a9 = x, a10 = x, a11 = x;
        for (long i = 0; i < iterations; i++)
        {
            a0 = Vector512.MultiplyAddEstimate(a0, x, y);
            a1 = Vector512.MultiplyAddEstimate(a1, x, y);
            a2 = Vector512.MultiplyAddEstimate(a2, x, y);
            a3 = Vector512.MultiplyAddEstimate(a3, x, y);
            a4 = Vector512.MultiplyAddEstimate(a4, x, y);
            a5 = Vector512.MultiplyAddEstimate(a5, x, y);
            a6 = Vector512.MultiplyAddEstimate(a6, x, y);
            a7 = Vector512.MultiplyAddEstimate(a7, x, y);
            a8 = Vector512.MultiplyAddEstimate(a8, x, y);
            a9 = Vector512.MultiplyAddEstimate(a9, x, y);
            a10 = Vector512.MultiplyAddEstimate(a10, x, y);
            a11 = Vector512.MultiplyAddEstimate(a11, x, y);
        }

        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    private static float[] Fill(long length, ulong seed)
    {
        var rng = new Randomness.Rng(seed);
        var v = new float[length];
        for (long i = 0; i < length; i++)
        {
            v[i] = rng.NextFloat() - 0.5f;
        }

        return v;
    }

    private sealed class EmptyJob : ITeamWork
    {
        public void Execute(int part)
        {
        }
    }
}
