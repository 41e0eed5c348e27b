using Cluster.Compute.Backends;
using Cluster.Compute.Kernels;

namespace Cluster.Compute.Tests;

public sealed class GemmTests
{
    public static TheoryData<string, int> Backends() => new()
    {
        { "managed", 1 },
        { "managed", 2 },
        { "managed", 3 },
        { "openblas", 1 },
        { "openblas", 2 },
    };

    /// <summary>The backend under test; the managed one splits over all its threads even where the machine has fewer processors.</summary>
    internal static ComputeBackend Create(string name, int threads) =>
        name == "managed" ? new ManagedBackend(threads, spin: null, processors: threads) : BackendFactory.Create(name, threads);

    private static void Check(ComputeBackend backend, bool ta, bool tb, int m, int n, int k, float alpha, float beta, ulong seed, int pad = 0)
    {
        var lda = (ta ? m : k) + pad;
        var ldb = (tb ? k : n) + pad;
        var ldc = n + pad;
        var a = Tolerances.RandomVector(Math.Max(0, (ta ? k : m) * lda), seed);
        var b = Tolerances.RandomVector(Math.Max(0, (tb ? n : k) * ldb), seed + 1);
        var c0 = Tolerances.RandomVector(m * ldc, seed + 2);
        var expected = (float[])c0.Clone();
        var actual = (float[])c0.Clone();
        ReferenceKernels.Gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, expected, ldc);
        backend.Gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, actual, ldc);
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < ldc; j++)
            {
                var at = i * ldc + j;
                if (j >= n)
                {
                    Assert.Equal(c0[at], actual[at]); // padding between rows is never written
                    continue;
                }

                // Each term is bounded by 1 in magnitude, so k (+ |beta|) bounds the accumulated rounding.
                Tolerances.Close(expected[at], actual[at], Tolerances.Gemm, k * Math.Abs(alpha) + Math.Abs(beta), $"{backend.Name} ta={ta} tb={tb} {m}x{n}x{k} C[{i},{j}]");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Gemm_AllTransposesAndOddShapes_MatchReference(string name, int threads)
    {
        using var backend = Create(name, threads);
        int[] sizes = [0, 1, 2, 3, 5, 6, 7, 15, 16, 17, 31, 33, 64, 97];
        var seed = 1UL;
        foreach (var ta in new[] { false, true })
        {
            foreach (var tb in new[] { false, true })
            {
                foreach (var m in sizes)
                {
                    foreach (var n in new[] { 1, 7, 16, 33 })
                    {
                        foreach (var k in new[] { 0, 1, 9, 64 })
                        {
                            Check(backend, ta, tb, m, n, k, 1f, 0f, seed++);
                        }
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Gemm_EveryDimensionUpTo256_MatchesReference(string name, int threads)
    {
        using var backend = Create(name, threads);
        for (var size = 0; size <= 256; size++)
        {
            // Each dimension in turn walks 0..256 with the others small, covering every tile remainder.
            Check(backend, false, false, size, 5, 3, 1f, 0f, (ulong)size);
            Check(backend, true, false, 4, size, 7, 1f, 1f, (ulong)size + 1000);
            Check(backend, false, true, 3, 9, size, 1f, 0f, (ulong)size + 2000);
            // A full 32-column strip of a transposed B is packed by 8x8 register transposes, with a masked K tail.
            Check(backend, true, true, 7, 33, size, 1f, 0f, (ulong)size + 3000);
            // A 10-column C: full 16-row tiles transpose A inside the kernel, 8 values of K at a time, then its tail.
            Check(backend, false, false, 17, 10, size, 1f, 0f, (ulong)size + 4000);
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Gemm_NarrowOutputs_MatchReference(string name, int threads)
    {
        // Up to 12 columns (an output layer) the managed backend vectorises along M: 32-row tiles (m 33 and 64), 16-row
        // tiles, A transposed inside the kernel 8 values of K at a time (K tails of 1..7), ragged last tiles, transposed
        // B, several K blocks, and alpha with and without beta.
        using var backend = Create(name, threads);
        var seed = 5000UL;
        foreach (var ta in new[] { false, true })
        {
            foreach (var tb in new[] { false, true })
            {
                for (var n = 1; n <= 13; n++)
                {
                    foreach (var (m, k) in new[] { (1, 1), (15, 7), (16, 8), (17, 9), (33, 64), (64, 257) })
                    {
                        Check(backend, ta, tb, m, n, k, 1f, 0f, seed++);
                        Check(backend, ta, tb, m, n, k, 0.75f, 0f, seed++, pad: 1);
                        Check(backend, ta, tb, m, n, k, -0.5f, 1.5f, seed++, pad: 2);
                    }
                }
            }
        }
    }

    [Fact]
    public void Gemm_NarrowAndWideTiles_GiveIdenticalBits()
    {
        // A 10-column C is computed by the narrow path; the same columns inside a 40-column C by the wide tiles.
        // Both must be the same fused multiply-adds in the same order, or the thread count (which changes how C is
        // split) would change the weights.
        using var backend = new ManagedBackend(1);
        foreach (var (ta, tb) in new[] { (false, false), (true, false), (false, true), (true, true) })
        {
            const int m = 37, k = 300, wide = 40, narrow = 10;
            var a = Tolerances.RandomVector(m * k, 70);
            var bWide = Tolerances.RandomVector(k * wide, 71);
            var bNarrow = new float[k * narrow];
            for (var p = 0; p < k; p++)
            {
                for (var j = 0; j < narrow; j++)
                {
                    // op(B)(p, j) in each layout: row-major K x N, or its transpose N x K.
                    if (tb)
                    {
                        bNarrow[j * k + p] = bWide[j * k + p];
                    }
                    else
                    {
                        bNarrow[p * narrow + j] = bWide[p * wide + j];
                    }
                }
            }

            var cWide = Tolerances.RandomVector(m * wide, 72);
            var cNarrow = new float[m * narrow];
            for (var i = 0; i < m; i++)
            {
                Array.Copy(cWide, i * wide, cNarrow, i * narrow, narrow);
            }

            int lda = ta ? m : k;
            backend.Gemm(ta, tb, m, wide, k, 0.75f, a, lda, bWide, tb ? k : wide, 0.5f, cWide, wide);
            backend.Gemm(ta, tb, m, narrow, k, 0.75f, a, lda, bNarrow, tb ? k : narrow, 0.5f, cNarrow, narrow);
            for (var i = 0; i < m; i++)
            {
                for (var j = 0; j < narrow; j++)
                {
                    Assert.Equal(cWide[i * wide + j], cNarrow[i * narrow + j]);
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Gemm_LargeBlockedShapes_MatchReference(string name, int threads)
    {
        using var backend = Create(name, threads);
        // Cross every cache-block boundary (KC = 256, MC = 120) and the network's own shapes.
        Check(backend, false, false, 300, 290, 530, 1f, 0f, 7);
        Check(backend, true, false, 257, 130, 64, 1f, 0f, 8);
        Check(backend, false, true, 64, 784, 128, 1f, 0f, 9);
        Check(backend, false, false, 64, 128, 784, 1f, 0f, 10);
        Check(backend, true, true, 121, 47, 259, 1f, 0f, 11);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public unsafe void Gemm_MisalignedB_GivesTheBitsOfAlignedB(int threads)
    {
        // A B read in place whose rows are off the 64-byte lines is copied aligned when its panel outgrows L1 and
        // enough rows reuse it (the network's weight gradients at batch 256); both ways must give the same bits.
        using var backend = new ManagedBackend(threads);
        foreach (var (ta, m, n, k) in new[] { (true, 784, 128, 256), (true, 128, 64, 256), (false, 256, 128, 300), (false, 64, 40, 300) })
        {
            var a = Tolerances.RandomVector(m * k, 90);
            var b = Tolerances.RandomVector(k * n, 91);
            var storage = GC.AllocateArray<float>(k * n + 32, pinned: true);
            float[]? expected = null;
            fixed (float* p = storage)
            {
                var aligned = (int)((64 - ((nint)p & 63)) & 63) / sizeof(float);
                for (var shift = 0; shift < 16; shift += 3)
                {
                    var slice = storage.AsSpan(aligned + shift, k * n);
                    b.CopyTo(slice);
                    var c = new float[m * n];
                    backend.Gemm(ta, false, m, n, k, 1f, a, ta ? m : k, slice, n, 0f, c, n);
                    if (expected is null)
                    {
                        expected = c;
                        var reference = new float[m * n];
                        ReferenceKernels.Gemm(ta, false, m, n, k, 1f, a, ta ? m : k, b, n, 0f, reference, n);
                        for (var i = 0; i < c.Length; i++)
                        {
                            Tolerances.Close(reference[i], c[i], Tolerances.Gemm, k, $"{m}x{n}x{k} C[{i}]");
                        }
                    }
                    else
                    {
                        Assert.True(expected.AsSpan().SequenceEqual(c), $"{m}x{n}x{k}, B {shift} floats off a line: other bits");
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Gemm_AlphaBetaAndLeadingDimensions_FollowBlas(string name, int threads)
    {
        using var backend = Create(name, threads);
        Check(backend, false, false, 13, 21, 17, 0.5f, 2f, 20, pad: 3);
        Check(backend, true, true, 13, 21, 17, -1.5f, 0.25f, 21, pad: 5);
        Check(backend, true, false, 40, 40, 40, 0f, 3f, 22);
        Check(backend, false, true, 40, 40, 0, 2f, -1f, 23);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Gemm_BetaZero_NeverReadsC(string name, int threads)
    {
        using var backend = Create(name, threads);
        var a = Tolerances.RandomVector(20 * 30, 1);
        var b = Tolerances.RandomVector(30 * 19, 2);
        var c = Enumerable.Repeat(float.NaN, 20 * 19).ToArray();
        backend.Gemm(false, false, 20, 19, 30, 1f, a, 30, b, 19, 0f, c, 19);
        Assert.All(c, v => Assert.True(float.IsFinite(v)));
        var empty = Enumerable.Repeat(float.NaN, 4).ToArray();
        backend.Gemm(false, false, 2, 2, 0, 1f, [], 1, [], 2, 0f, empty, 2);
        Assert.All(empty, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Gemm_NaNAndInfinityInInputs_Propagate()
    {
        using var backend = new ManagedBackend(1);
        float[] a = [float.NaN, 1, 0, float.PositiveInfinity];
        float[] b = [1, 0, 0, 1];
        var c = new float[4];
        backend.Gemm(false, false, 2, 2, 2, 1f, a, 2, b, 2, 0f, c, 2);
        Assert.True(float.IsNaN(c[0]));
        Assert.Equal(float.PositiveInfinity, c[3]);
    }

    [Fact]
    public void Gemm_ShortBuffers_ThrowBeforeWriting()
    {
        using var backend = new ManagedBackend(2);
        var c = new float[4];
        var ex = Assert.Throws<ArgumentException>(() => backend.Gemm(false, false, 2, 2, 3, 1f, new float[5], 3, new float[6], 2, 0f, c, 2));
        Assert.Contains("GEMM A", ex.Message);
        Assert.Throws<ArgumentException>(() => backend.Gemm(false, false, 2, 2, 2, 1f, new float[4], 1, new float[4], 2, 0f, c, 2));
        Assert.All(c, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void KernelWidth_IsNoWiderThanThisPassAllows()
    {
        // scripts/test.sh runs these tests once more per narrower kernel, and says how wide the kernel may be. If the
        // runtime ignored the switch that narrows it (.NET 10 ignores DOTNET_EnableAVX512F, which older runtimes
        // read), that pass would run the widest kernel again and test the narrower ones never.
        var bits = PackedGemm.VectorBits;
        Assert.Contains(bits, new[] { 128, 256, 512 });
        if (Environment.GetEnvironmentVariable("CLUSTER_TEST_MAX_VECTOR_BITS") is { } limit)
        {
            Assert.True(bits <= int.Parse(limit, System.Globalization.CultureInfo.InvariantCulture), $"the GEMM kernel runs {bits}-bit vectors; this pass allows {limit}");
        }
    }

    [Fact]
    public void ManagedBackend_MoreThreadsThanProcessors_SplitsOverTheProcessorsWithTheSameBits()
    {
        using var one = new ManagedBackend(1);
        using var eight = new ManagedBackend(8, spin: null, processors: 2);
        using var machine = new ManagedBackend(Environment.ProcessorCount + 3);
        Assert.Equal((8, 2), (eight.Threads, eight.Parallelism));
        Assert.Equal((Environment.ProcessorCount + 3, Environment.ProcessorCount), (machine.Threads, machine.Parallelism));
        var a = Tolerances.RandomVector(200 * 300, 5);
        var b = Tolerances.RandomVector(300 * 250, 6);
        var expected = new float[200 * 250];
        one.Gemm(false, true, 200, 250, 300, 1f, a, 300, b, 300, 0f, expected, 250);
        foreach (var backend in new[] { eight, machine })
        {
            var c = new float[200 * 250];
            backend.Gemm(false, true, 200, 250, 300, 1f, a, 300, b, 300, 0f, c, 250);
            Assert.Equal(expected, c);
        }
    }

    [Fact]
    public void Gemm_ThreadCount_DoesNotChangeBits()
    {
        using var one = new ManagedBackend(1);
        using var three = new ManagedBackend(3, spin: null, processors: 3);
        var a = Tolerances.RandomVector(200 * 300, 3);
        var b = Tolerances.RandomVector(300 * 250, 4);
        var c1 = new float[200 * 250];
        var c3 = new float[200 * 250];
        one.Gemm(false, false, 200, 250, 300, 1f, a, 300, b, 250, 0f, c1, 250);
        three.Gemm(false, false, 200, 250, 300, 1f, a, 300, b, 250, 0f, c3, 250);
        Assert.Equal(c1, c3);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Gemm_CallersOnManyThreads_EachGetTheirOwnProduct(int threads)
    {
        // One backend's job, packing buffers and team serve one call at a time; callers that overlap must wait their
        // turn rather than share them. Each caller has its own shapes and inputs (a narrow product among them), so a
        // product computed with another caller's arguments or buffers shows.
        using var backend = new ManagedBackend(threads);
        const int callers = 4;
        const int rounds = 200;
        var failures = new string?[callers];
        using var start = new Barrier(callers);
        var workers = Enumerable.Range(0, callers).Select(t => new Thread(() =>
        {
            var (m, n, k) = (20 + 7 * t, t == 0 ? 10 : 33 + 5 * t, 17 + 3 * t);
            var a = Tolerances.RandomVector(m * k, (ulong)(10 * t + 1));
            var b = Tolerances.RandomVector(k * n, (ulong)(10 * t + 2));
            var expected = new float[m * n];
            backend.Gemm(false, false, m, n, k, 1f, a, k, b, n, 0f, expected, n);
            var reference = new float[m * n];
            ReferenceKernels.Gemm(false, false, m, n, k, 1f, a, k, b, n, 0f, reference, n);
            var c = new float[m * n];
            start.SignalAndWait();
            for (var round = 0; round < rounds && failures[t] is null; round++)
            {
                Array.Fill(c, float.NaN);
                backend.Gemm(false, false, m, n, k, 1f, a, k, b, n, 0f, c, n);
                if (!c.AsSpan().SequenceEqual(expected))
                {
                    failures[t] = $"caller {t} ({m}x{n}x{k}), round {round}: the product changed";
                }
            }

            for (var i = 0; i < reference.Length && failures[t] is null; i++)
            {
                if (Math.Abs(reference[i] - expected[i]) > Tolerances.Gemm * (k + 1))
                {
                    failures[t] = $"caller {t}: C[{i}] = {expected[i]}, reference {reference[i]}";
                }
            }
        })).ToArray();
        foreach (var worker in workers)
        {
            worker.Start();
        }

        foreach (var worker in workers)
        {
            worker.Join();
        }

        Assert.All(failures, f => Assert.Null(f));
    }

    [Fact]
    public void Gemm_AfterDispose_Throws()
    {
        var backend = new ManagedBackend(2);
        backend.Dispose();
        backend.Dispose(); // a second Dispose does nothing
        var c = new float[4];
        Assert.Throws<ObjectDisposedException>(() => backend.Gemm(false, false, 2, 2, 2, 1f, new float[4], 2, new float[4], 2, 0f, c, 2));
        Assert.All(c, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void OpenBlas_WhenRequested_LoadsOrExplains()
    {
        // CI installs libopenblas0; the factory must either load it or say how to get it.
        var backend = OpenBlasBackend.TryCreate(1, out var reason);
        if (backend is null)
        {
            Assert.Contains("libopenblas", reason);
            Assert.Throws<InvalidOperationException>(() => BackendFactory.Create("openblas", 1));
        }
        else
        {
            using (backend)
            {
                Assert.Equal("openblas", backend.Name);
            }

            // More threads than processors: the library is told the processor count, as the managed backend splits.
            using var wide = OpenBlasBackend.TryCreate(Environment.ProcessorCount + 2, out _)!;
            Assert.Equal((Environment.ProcessorCount + 2, Environment.ProcessorCount), (wide.Threads, wide.Parallelism));
            Assert.Equal(Environment.ProcessorCount, wide.LibraryThreads ?? Environment.ProcessorCount);
            using var one = OpenBlasBackend.TryCreate(1, out _)!;
            Assert.Equal(1, one.LibraryThreads ?? 1);
        }

        Assert.Throws<ArgumentException>(() => BackendFactory.Create("cuda-please", 1));
    }
}
