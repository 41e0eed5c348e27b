using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Cluster.Compute.Kernels;

/// <summary>
/// GEMM for a C of at most <see cref="MaxColumns"/> columns (a 10-class output layer and its weight gradient):
/// vectorised along M instead of N. Padding 10 columns to a 16-wide strip leaves 6 of 16 lanes idle; here a 512-bit
/// vector holds one column of 16 rows, each B value is broadcast, and no lane is idle. Rows go in tiles of 32 (two
/// vectors, so each broadcast feeds two multiply-adds: one load per multiply-add was the limit on a core with two
/// 512-bit FMA units) and a last tile of 16. Each element is the same sequence of fused multiply-adds as in
/// <see cref="PackedGemm"/>, so the two paths give identical bits.
/// </summary>
internal static unsafe class NarrowGemm
{
    /// <summary>Widest C handled here: 2 x 12 accumulators, two A vectors and one broadcast fit the 32 vector registers.</summary>
    public const int MaxColumns = 12;

    /// <summary>Rows of one tile: the lanes of a 512-bit vector.</summary>
    public const int Rows = 16;

    /// <summary>Whether this path computes a block of <paramref name="columns"/> columns on this CPU.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Applies(int columns) => columns <= MaxColumns && PackedGemm.VectorBits == 512;

    /// <summary>Computes rows [rowStart, rowEnd) x columns [colStart, colEnd) of C; K and alpha are non-zero.</summary>
    /// <remarks>
    /// Its scratch space is not zeroed (3.3 KB, a sizeable part of a sub-microsecond product): every value is written
    /// before it is read (the accumulators of all 16 rows into the tile, the transposed chunks before the kernel reads
    /// them, the tile's rows before they are stored).
    /// </remarks>
    [SkipLocalsInit]
    public static void Compute(in GemmCall g, int rowStart, int rowEnd, int colStart, int colEnd, float* packA, float* packB)
    {
        var n = colEnd - colStart;
        // The tile column-major (column j at j * Rows) as the accumulators leave it, then row-major for the store.
        var tile = stackalloc float[Rows * MaxColumns];
        // The kernel's two blocks of 8 values of p x 32 rows, when it transposes A itself.
        var blocks = stackalloc float[2 * 8 * 2 * Rows];
        var rowsOut = stackalloc float[Rows * 8];
        for (var pc = 0; pc < g.K; pc += PackedGemm.Kc)
        {
            var kc = Math.Min(PackedGemm.Kc, g.K - pc);
            float* b;
            long bs;
            if (g.TransB)
            {
                // op(B)(p, j) = B[j, p]: a kc x n copy, so the kernel broadcasts from one row per p.
                for (var j = 0; j < n; j++)
                {
                    var src = g.B + (long)(colStart + j) * g.Ldb + pc;
                    for (var p = 0; p < kc; p++)
                    {
                        packB[p * n + j] = src[p];
                    }
                }

                b = packB;
                bs = n;
            }
            else
            {
                b = g.B + (long)pc * g.Ldb + colStart;
                bs = g.Ldb;
            }

            var beta = pc == 0 ? g.Beta : 1f;
            var i0 = rowStart;
            for (; rowEnd - i0 >= 2 * Rows; i0 += 2 * Rows)
            {
                // 32 rows as two vectors: each broadcast B value feeds two multiply-adds, so the kernel loads half as
                // many values per multiply-add. op(A) is read in place as in the 16-row tiles below.
                var a = g.TransA ? g.A + (long)pc * g.Lda + i0 : g.A + (long)i0 * g.Lda + pc;
                Kernel(n, kc, true, a, g.Lda, g.TransA ? null : blocks, b, bs, null, g.C + (long)i0 * g.Ldc + colStart, g.Ldc, g.Alpha, beta);
            }

            for (; i0 < rowEnd; i0 += Rows)
            {
                var mr = Math.Min(Rows, rowEnd - i0);
                float* a;
                long sa;
                float* block = null;
                if (g.TransA && mr == Rows)
                {
                    // op(A)(i, p) = A[p, i]: the tile's 16 rows at one p are already contiguous.
                    a = g.A + (long)pc * g.Lda + i0;
                    sa = g.Lda;
                }
                else if (mr == Rows)
                {
                    // Rows of A: the kernel transposes them 8 values of p at a time, between its multiply-adds.
                    a = g.A + (long)i0 * g.Lda + pc;
                    sa = g.Lda;
                    block = blocks;
                }
                else
                {
                    PackA(g, i0, mr, pc, kc, packA);
                    a = packA;
                    sa = Rows;
                }

                if (mr == Rows)
                {
                    // A full tile goes from the accumulators to C by an in-register transpose and masked row stores.
                    Kernel(n, kc, false, a, sa, block, b, bs, null, g.C + (long)i0 * g.Ldc + colStart, g.Ldc, g.Alpha, beta);
                }
                else
                {
                    Kernel(n, kc, false, a, sa, null, b, bs, tile, null, 0, 0f, 0f);
                    Store(g, tile, rowsOut, i0, mr, colStart, n, beta);
                }
            }
        }
    }

    /// <summary>
    /// Copies op(A)[i0..i0+mr, pc..pc+kc] of a ragged last tile (mr &lt; 16) with element (r, p) at p * 16 + r. Rows
    /// past mr are zero (A transposed) or row mr - 1 again (A in rows): computed, never stored.
    /// </summary>
    private static void PackA(in GemmCall g, int i0, int mr, int pc, int kc, float* dst)
    {
        if (g.TransA)
        {
            // Each p's rows are contiguous: one masked load reads the tile's mr of them, nothing past.
            var rows = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(mr)).AsSingle();
            for (var p = 0; p < kc; p++)
            {
                Avx512F.MaskLoad(g.A + (long)(pc + p) * g.Lda + i0, rows, Vector512<float>.Zero).Store(dst + p * Rows);
            }

            return;
        }

        var src = g.A + (long)i0 * g.Lda + pc;
        for (var p = 0; p < kc; p += 8)
        {
            PackedGemm.Transpose16x8(src + p, g.Lda, dst + p * Rows, Rows, Math.Min(8, kc - p), mr);
        }
    }

    private static void Kernel(int n, int kc, bool two, float* a, long sa, float* block, float* b, long bs, float* tile, float* c, long ldc, float alpha, float beta)
    {
        if (two)
        {
            Kernel<TwoVectors>(n, kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta);
        }
        else
        {
            Kernel<OneVector>(n, kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta);
        }
    }

    private static void Kernel<R>(int n, int kc, float* a, long sa, float* block, float* b, long bs, float* tile, float* c, long ldc, float alpha, float beta)
        where R : struct, IRowVectors
    {
        switch (n)
        {
            case 1: Kernel<Columns1, R>(kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta); break;
            case 2: Kernel<Columns2, R>(kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta); break;
            case 3: Kernel<Columns3, R>(kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta); break;
            case 4: Kernel<Columns4, R>(kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta); break;
            case 5: Kernel<Columns5, R>(kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta); break;
            case 6: Kernel<Columns6, R>(kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta); break;
            case 7: Kernel<Columns7, R>(kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta); break;
            case 8: Kernel<Columns8, R>(kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta); break;
            case 9: Kernel<Columns9, R>(kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta); break;
            case 10: Kernel<Columns10, R>(kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta); break;
            case 11: Kernel<Columns11, R>(kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta); break;
            default: Kernel<Columns12, R>(kc, a, sa, block, b, bs, tile, c, ldc, alpha, beta); break;
        }
    }

    /// <summary>
    /// 16 rows (32 with <typeparamref name="R"/> two vectors) x T.Count columns: one A vector per p and 16 rows (from
    /// <paramref name="a"/> with stride <paramref name="sa"/>, or, with <paramref name="block"/>, transposed from the rows
    /// of A), times each broadcast B value of that p. The accumulators go to <paramref name="tile"/> column-major (one
    /// vector only), or, when <paramref name="tile"/> is null, straight into the rows of C at <paramref name="c"/> as
    /// C = alpha * AB + beta * C.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel<T, R>(int kc, float* a, long sa, float* block, float* b, long bs, float* tile, float* c, long ldc, float alpha, float beta)
        where T : struct, IColumnCount
        where R : struct, IRowVectors
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
        Vector512<float> c6 = default, c7 = default, c8 = default, c9 = default, c10 = default, c11 = default;
        // The second vector's accumulators (rows 16..31), untouched with one vector.
        Vector512<float> d0 = default, d1 = default, d2 = default, d3 = default, d4 = default, d5 = default;
        Vector512<float> d6 = default, d7 = default, d8 = default, d9 = default, d10 = default, d11 = default;
        var rows = R.Two ? 2 * Rows : Rows;
        // With block (two scratch blocks of 8 values of p x the tile's rows), a holds the tile's rows of A (row stride
        // sa): the kernel transposes them 8 values of p at a time, one chunk ahead of its multiply-adds, so the
        // shuffles of the transpose overlap the multiply-adds instead of running as a separate packing pass.
        var transpose = block != null;
        var chunk = transpose ? 8 : kc;
        if (transpose)
        {
            TransposeChunk(a, sa, Math.Min(8, kc), block, rows);
        }

        for (var p0 = 0; p0 < kc; p0 += chunk)
        {
            var length = Math.Min(chunk, kc - p0);
            float* ap = a;
            long step = sa;
            if (transpose)
            {
                // The blocks in turn: the next chunk is transposed before this one's multiply-adds, so its stores have
                // left the store queue when they are loaded (transposing each chunk just before its use was slower
                // than packing), and the shuffles find multiply-adds to run beside.
                ap = block + (p0 & 8) * rows;
                step = rows;
                if (p0 + 8 < kc)
                {
                    TransposeChunk(a + p0 + 8, sa, Math.Min(8, kc - p0 - 8), block + ((p0 + 8) & 8) * rows, rows);
                }
            }

            for (var p = 0; p < length; p++)
            {
                var av = Vector512.Load(ap);
                var aw = R.Two ? Vector512.Load(ap + Rows) : default;
                { var v = Vector512.Create(b[0]); c0 = Vector512.MultiplyAddEstimate(av, v, c0); if (R.Two) { d0 = Vector512.MultiplyAddEstimate(aw, v, d0); } }
                if (T.Count > 1) { var v = Vector512.Create(b[1]); c1 = Vector512.MultiplyAddEstimate(av, v, c1); if (R.Two) { d1 = Vector512.MultiplyAddEstimate(aw, v, d1); } }
                if (T.Count > 2) { var v = Vector512.Create(b[2]); c2 = Vector512.MultiplyAddEstimate(av, v, c2); if (R.Two) { d2 = Vector512.MultiplyAddEstimate(aw, v, d2); } }
                if (T.Count > 3) { var v = Vector512.Create(b[3]); c3 = Vector512.MultiplyAddEstimate(av, v, c3); if (R.Two) { d3 = Vector512.MultiplyAddEstimate(aw, v, d3); } }
                if (T.Count > 4) { var v = Vector512.Create(b[4]); c4 = Vector512.MultiplyAddEstimate(av, v, c4); if (R.Two) { d4 = Vector512.MultiplyAddEstimate(aw, v, d4); } }
                if (T.Count > 5) { var v = Vector512.Create(b[5]); c5 = Vector512.MultiplyAddEstimate(av, v, c5); if (R.Two) { d5 = Vector512.MultiplyAddEstimate(aw, v, d5); } }
                if (T.Count > 6) { var v = Vector512.Create(b[6]); c6 = Vector512.MultiplyAddEstimate(av, v, c6); if (R.Two) { d6 = Vector512.MultiplyAddEstimate(aw, v, d6); } }
                if (T.Count > 7) { var v = Vector512.Create(b[7]); c7 = Vector512.MultiplyAddEstimate(av, v, c7); if (R.Two) { d7 = Vector512.MultiplyAddEstimate(aw, v, d7); } }
                if (T.Count > 8) { var v = Vector512.Create(b[8]); c8 = Vector512.MultiplyAddEstimate(av, v, c8); if (R.Two) { d8 = Vector512.MultiplyAddEstimate(aw, v, d8); } }
                if (T.Count > 9) { var v = Vector512.Create(b[9]); c9 = Vector512.MultiplyAddEstimate(av, v, c9); if (R.Two) { d9 = Vector512.MultiplyAddEstimate(aw, v, d9); } }
                if (T.Count > 10) { var v = Vector512.Create(b[10]); c10 = Vector512.MultiplyAddEstimate(av, v, c10); if (R.Two) { d10 = Vector512.MultiplyAddEstimate(aw, v, d10); } }
                if (T.Count > 11) { var v = Vector512.Create(b[11]); c11 = Vector512.MultiplyAddEstimate(av, v, c11); if (R.Two) { d11 = Vector512.MultiplyAddEstimate(aw, v, d11); } }
                ap += step;
                b += bs;
            }
        }

        if (tile is null)
        {
            // The row stores' mask of T.Count columns: a constant of this instantiation.
            var mask = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(T.Count)).AsSingle();
            // Columns past T.Count were never touched and are zero. Plain products (alpha 1, beta 0, the layers' case)
            // are stored as they are: one test per tile instead of two per row.
            if (alpha == 1 && beta == 0)
            {
                StoreTransposed<PlainStore>(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c, ldc, alpha, beta, mask);
                if (R.Two)
                {
                    StoreTransposed<PlainStore>(d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, c + Rows * ldc, ldc, alpha, beta, mask);
                }
            }
            else
            {
                StoreTransposed<BlasStore>(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c, ldc, alpha, beta, mask);
                if (R.Two)
                {
                    StoreTransposed<BlasStore>(d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, c + Rows * ldc, ldc, alpha, beta, mask);
                }
            }

            return;
        }

        c0.Store(tile);
        if (T.Count > 1) { c1.Store(tile + 1 * Rows); }
        if (T.Count > 2) { c2.Store(tile + 2 * Rows); }
        if (T.Count > 3) { c3.Store(tile + 3 * Rows); }
        if (T.Count > 4) { c4.Store(tile + 4 * Rows); }
        if (T.Count > 5) { c5.Store(tile + 5 * Rows); }
        if (T.Count > 6) { c6.Store(tile + 6 * Rows); }
        if (T.Count > 7) { c7.Store(tile + 7 * Rows); }
        if (T.Count > 8) { c8.Store(tile + 8 * Rows); }
        if (T.Count > 9) { c9.Store(tile + 9 * Rows); }
        if (T.Count > 10) { c10.Store(tile + 10 * Rows); }
        if (T.Count > 11) { c11.Store(tile + 11 * Rows); }
    }

    /// <summary>Writes p = 0..w-1 (w &lt;= 8) of <paramref name="rows"/> rows of A (row stride sa) column-major to <paramref name="dst"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void TransposeChunk(float* src, long sa, int w, float* dst, int rows)
    {
        for (var r = 0; r < rows; r += Rows)
        {
            PackedGemm.Transpose16x8(src + r * sa, sa, dst + r, rows, w);
        }
    }

    /// <summary>
    /// Transposes 12 column vectors of 16 rows (columns 12..15 taken as zero) to 16 row vectors in registers and
    /// stores each row's masked columns as C = alpha * v + beta * C, with the rounding of the wide kernels' stores.
    /// </summary>
    /// <remarks>
    /// The 16x16 transpose in four steps: 32-bit and 64-bit unpacks within 128-bit lanes leave, for each group of
    /// four columns and each q, the rows q, q + 4, q + 8 and q + 12 in the four lanes of one vector; two rounds of
    /// 128-bit lane shuffles then gather lane L of each group into row q + 4L.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreTransposed<S>(
        Vector512<float> r0, Vector512<float> r1, Vector512<float> r2, Vector512<float> r3, Vector512<float> r4, Vector512<float> r5,
        Vector512<float> r6, Vector512<float> r7, Vector512<float> r8, Vector512<float> r9, Vector512<float> r10, Vector512<float> r11,
        float* c, long ldc, float alpha, float beta, Vector512<float> mask)
        where S : struct, IStoreMode
    {
        var t0 = Avx512F.UnpackLow(r0, r1);
        var t1 = Avx512F.UnpackHigh(r0, r1);
        var t2 = Avx512F.UnpackLow(r2, r3);
        var t3 = Avx512F.UnpackHigh(r2, r3);
        var t4 = Avx512F.UnpackLow(r4, r5);
        var t5 = Avx512F.UnpackHigh(r4, r5);
        var t6 = Avx512F.UnpackLow(r6, r7);
        var t7 = Avx512F.UnpackHigh(r6, r7);
        var t8 = Avx512F.UnpackLow(r8, r9);
        var t9 = Avx512F.UnpackHigh(r8, r9);
        var t10 = Avx512F.UnpackLow(r10, r11);
        var t11 = Avx512F.UnpackHigh(r10, r11);

        // u[4g + q]: columns 4g..4g+3 of rows q, q + 4, q + 8, q + 12, one row per 128-bit lane.
        var u0 = Avx512F.UnpackLow(t0.AsDouble(), t2.AsDouble()).AsSingle();
        var u1 = Avx512F.UnpackHigh(t0.AsDouble(), t2.AsDouble()).AsSingle();
        var u2 = Avx512F.UnpackLow(t1.AsDouble(), t3.AsDouble()).AsSingle();
        var u3 = Avx512F.UnpackHigh(t1.AsDouble(), t3.AsDouble()).AsSingle();
        var u4 = Avx512F.UnpackLow(t4.AsDouble(), t6.AsDouble()).AsSingle();
        var u5 = Avx512F.UnpackHigh(t4.AsDouble(), t6.AsDouble()).AsSingle();
        var u6 = Avx512F.UnpackLow(t5.AsDouble(), t7.AsDouble()).AsSingle();
        var u7 = Avx512F.UnpackHigh(t5.AsDouble(), t7.AsDouble()).AsSingle();
        var u8 = Avx512F.UnpackLow(t8.AsDouble(), t10.AsDouble()).AsSingle();
        var u9 = Avx512F.UnpackHigh(t8.AsDouble(), t10.AsDouble()).AsSingle();
        var u10 = Avx512F.UnpackLow(t9.AsDouble(), t11.AsDouble()).AsSingle();
        var u11 = Avx512F.UnpackHigh(t9.AsDouble(), t11.AsDouble()).AsSingle();

        var va = Vector512.Create(alpha);
        var vb = Vector512.Create(beta);
        var accumulate = beta != 0;
        StoreRows<S>(u0, u4, u8, c, ldc, va, vb, accumulate, mask);
        StoreRows<S>(u1, u5, u9, c + ldc, ldc, va, vb, accumulate, mask);
        StoreRows<S>(u2, u6, u10, c + 2 * ldc, ldc, va, vb, accumulate, mask);
        StoreRows<S>(u3, u7, u11, c + 3 * ldc, ldc, va, vb, accumulate, mask);
    }

    /// <summary>Rows q, q + 4, q + 8, q + 12 (<paramref name="c"/> points at row q) from the q-th vector of each column group.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRows<S>(Vector512<float> g0, Vector512<float> g1, Vector512<float> g2, float* c, long ldc,
        Vector512<float> va, Vector512<float> vb, bool accumulate, Vector512<float> mask)
        where S : struct, IStoreMode
    {
        var v0 = Avx512F.Shuffle4x128(g0, g1, 0x44); // g0 lanes 0,1 then g1 lanes 0,1
        var v1 = Avx512F.Shuffle4x128(g0, g1, 0xEE); // g0 lanes 2,3 then g1 lanes 2,3
        var v2 = Avx512F.Shuffle4x128(g2, Vector512<float>.Zero, 0x44);
        var v3 = Avx512F.Shuffle4x128(g2, Vector512<float>.Zero, 0xEE);
        StoreRow<S>(Avx512F.Shuffle4x128(v0, v2, 0x88), c, va, vb, accumulate, mask);
        StoreRow<S>(Avx512F.Shuffle4x128(v0, v2, 0xDD), c + 4 * ldc, va, vb, accumulate, mask);
        StoreRow<S>(Avx512F.Shuffle4x128(v1, v3, 0x88), c + 8 * ldc, va, vb, accumulate, mask);
        StoreRow<S>(Avx512F.Shuffle4x128(v1, v3, 0xDD), c + 12 * ldc, va, vb, accumulate, mask);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow<S>(Vector512<float> v, float* c, Vector512<float> va, Vector512<float> vb, bool accumulate, Vector512<float> mask)
        where S : struct, IStoreMode
    {
        if (S.Plain)
        {
            Avx512F.MaskStore(c, mask, v);
            return;
        }

        var result = accumulate ? Vector512.MultiplyAddEstimate(v, va, Avx512F.MaskLoad(c, mask, Vector512<float>.Zero) * vb) : v * va;
        Avx512F.MaskStore(c, mask, result);
    }

    /// <summary>C = alpha * tile + beta * C for the tile's first mr rows, with the rounding of the wide kernels' stores.</summary>
    private static void Store(in GemmCall g, float* tile, float* rowsOut, int i0, int mr, int colStart, int n, float beta)
    {
        var alpha = g.Alpha;
        var j0 = 0;
        if (n >= 8)
        {
            // Columns 0..7 back to rows by two 8x8 transposes, then stored a row (8 floats) at a time.
            PackedGemm.Transpose8x8(tile, Rows, rowsOut, 8);
            PackedGemm.Transpose8x8(tile + 8, Rows, rowsOut + 64, 8);
            var va = Vector256.Create(alpha);
            var vb = Vector256.Create(beta);
            for (var r = 0; r < mr; r++)
            {
                var c = g.C + (long)(i0 + r) * g.Ldc + colStart;
                var v = Vector256.Load(rowsOut + r * 8);
                var result = beta == 0 ? v * va : Vector256.MultiplyAddEstimate(v, va, Vector256.Load(c) * vb);
                result.Store(c);
            }

            j0 = 8;
        }

        for (var r = 0; r < mr; r++)
        {
            var c = g.C + (long)(i0 + r) * g.Ldc + colStart;
            for (var j = j0; j < n; j++)
            {
                var v = tile[j * Rows + r];
                c[j] = beta == 0 ? v * alpha : MathF.FusedMultiplyAdd(v, alpha, c[j] * beta);
            }
        }
    }

    /// <summary>How a tile's rows reach C: as they are (alpha 1, beta 0; v * 1 is v, bit for bit), or as alpha * v + beta * C.</summary>
    private interface IStoreMode
    {
        static abstract bool Plain { get; }
    }

    private struct PlainStore : IStoreMode { public static bool Plain => true; }
    private struct BlasStore : IStoreMode { public static bool Plain => false; }

    private interface IRowVectors
    {
        static abstract bool Two { get; }
    }

    private struct OneVector : IRowVectors { public static bool Two => false; }
    private struct TwoVectors : IRowVectors { public static bool Two => true; }

    private interface IColumnCount
    {
        static abstract int Count { get; }
    }

    private struct Columns1 : IColumnCount { public static int Count => 1; }
    private struct Columns2 : IColumnCount { public static int Count => 2; }
    private struct Columns3 : IColumnCount { public static int Count => 3; }
    private struct Columns4 : IColumnCount { public static int Count => 4; }
    private struct Columns5 : IColumnCount { public static int Count => 5; }
    private struct Columns6 : IColumnCount { public static int Count => 6; }
    private struct Columns7 : IColumnCount { public static int Count => 7; }
    private struct Columns8 : IColumnCount { public static int Count => 8; }
    private struct Columns9 : IColumnCount { public static int Count => 9; }
    private struct Columns10 : IColumnCount { public static int Count => 10; }
    private struct Columns11 : IColumnCount { public static int Count => 11; }
    private struct Columns12 : IColumnCount { public static int Count => 12; }
}
