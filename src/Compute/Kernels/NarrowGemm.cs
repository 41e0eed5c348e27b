using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Cluster.Compute.Kernels;

/// <summary>
/// GEMM for a C of at most <see cref="MaxColumns"/> columns (a 10-class output layer and its weight gradient):
/// vectorised along M instead of N. Padding 10 columns to a 16-wide strip leaves 6 of 16 lanes idle; here a 512-bit
/// vector holds one column of 16 rows, each B value is broadcast, and no lane is idle. Each element is the same
/// sequence of fused multiply-adds as in <see cref="PackedGemm"/>, so the two paths give identical bits.
/// </summary>
internal static unsafe class NarrowGemm
{
    /// <summary>Widest C handled here: 12 accumulators, one A vector and one broadcast fit the 32 vector registers.</summary>
    public const int MaxColumns = 12;

    /// <summary>Rows of one tile: the lanes of a 512-bit vector.</summary>
    public const int Rows = 16;

    /// <summary>Whether this path computes a block of <paramref name="columns"/> columns on this CPU.</summary>
    public static bool Applies(int columns) => columns <= MaxColumns && Vector512.IsHardwareAccelerated && Avx.IsSupported;

    /// <summary>Computes rows [rowStart, rowEnd) x columns [colStart, colEnd) of C; K and alpha are non-zero.</summary>
    public static void Compute(in GemmCall g, int rowStart, int rowEnd, int colStart, int colEnd, float* packA, float* packB)
    {
        var n = colEnd - colStart;
        // The tile column-major (column j at j * Rows) as the accumulators leave it, then row-major for the store.
        var tile = stackalloc float[Rows * MaxColumns];
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
            for (var i0 = rowStart; i0 < rowEnd; i0 += Rows)
            {
                var mr = Math.Min(Rows, rowEnd - i0);
                float* a;
                long sa;
                if (g.TransA && mr == Rows)
                {
                    // op(A)(i, p) = A[p, i]: the tile's 16 rows at one p are already contiguous.
                    a = g.A + (long)pc * g.Lda + i0;
                    sa = g.Lda;
                }
                else
                {
                    PackA(g, i0, mr, pc, kc, packA);
                    a = packA;
                    sa = Rows;
                }

                Kernel(n, kc, a, sa, b, bs, tile);
                Store(g, tile, rowsOut, i0, mr, colStart, n, beta);
            }
        }
    }

    /// <summary>Copies op(A)[i0..i0+mr, pc..pc+kc] with element (r, p) at p * 16 + r, rows past mr zero.</summary>
    private static void PackA(in GemmCall g, int i0, int mr, int pc, int kc, float* dst)
    {
        if (g.TransA)
        {
            for (var p = 0; p < kc; p++)
            {
                var s = g.A + (long)(pc + p) * g.Lda + i0;
                var d = dst + p * Rows;
                for (var r = 0; r < Rows; r++)
                {
                    d[r] = r < mr ? s[r] : 0f;
                }
            }

            return;
        }

        var p0 = 0;
        if (mr == Rows)
        {
            // Two 8-row groups, transposed 8x8 at a time in registers.
            for (; p0 + 8 <= kc; p0 += 8)
            {
                var s = g.A + (long)i0 * g.Lda + pc + p0;
                PackedGemm.Transpose8x8(s, g.Lda, dst + p0 * Rows, Rows);
                PackedGemm.Transpose8x8(s + 8L * g.Lda, g.Lda, dst + p0 * Rows + 8, Rows);
            }
        }

        for (var r = 0; r < Rows; r++)
        {
            var s = g.A + (long)(i0 + r) * g.Lda + pc;
            for (var p = p0; p < kc; p++)
            {
                dst[p * Rows + r] = r < mr ? s[p] : 0f;
            }
        }
    }

    private static void Kernel(int n, int kc, float* a, long sa, float* b, long bs, float* tile)
    {
        switch (n)
        {
            case 1: Kernel<Columns1>(kc, a, sa, b, bs, tile); break;
            case 2: Kernel<Columns2>(kc, a, sa, b, bs, tile); break;
            case 3: Kernel<Columns3>(kc, a, sa, b, bs, tile); break;
            case 4: Kernel<Columns4>(kc, a, sa, b, bs, tile); break;
            case 5: Kernel<Columns5>(kc, a, sa, b, bs, tile); break;
            case 6: Kernel<Columns6>(kc, a, sa, b, bs, tile); break;
            case 7: Kernel<Columns7>(kc, a, sa, b, bs, tile); break;
            case 8: Kernel<Columns8>(kc, a, sa, b, bs, tile); break;
            case 9: Kernel<Columns9>(kc, a, sa, b, bs, tile); break;
            case 10: Kernel<Columns10>(kc, a, sa, b, bs, tile); break;
            case 11: Kernel<Columns11>(kc, a, sa, b, bs, tile); break;
            default: Kernel<Columns12>(kc, a, sa, b, bs, tile); break;
        }
    }

    /// <summary>16 rows x T.Count columns: one A vector per p, times each broadcast B value of that p.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel<T>(int kc, float* a, long sa, float* b, long bs, float* tile)
        where T : struct, IColumnCount
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
        Vector512<float> c6 = default, c7 = default, c8 = default, c9 = default, c10 = default, c11 = default;
        for (var p = 0; p < kc; p++)
        {
            var av = Vector512.Load(a);
            c0 = Vector512.MultiplyAddEstimate(av, Vector512.Create(b[0]), c0);
            if (T.Count > 1) { c1 = Vector512.MultiplyAddEstimate(av, Vector512.Create(b[1]), c1); }
            if (T.Count > 2) { c2 = Vector512.MultiplyAddEstimate(av, Vector512.Create(b[2]), c2); }
            if (T.Count > 3) { c3 = Vector512.MultiplyAddEstimate(av, Vector512.Create(b[3]), c3); }
            if (T.Count > 4) { c4 = Vector512.MultiplyAddEstimate(av, Vector512.Create(b[4]), c4); }
            if (T.Count > 5) { c5 = Vector512.MultiplyAddEstimate(av, Vector512.Create(b[5]), c5); }
            if (T.Count > 6) { c6 = Vector512.MultiplyAddEstimate(av, Vector512.Create(b[6]), c6); }
            if (T.Count > 7) { c7 = Vector512.MultiplyAddEstimate(av, Vector512.Create(b[7]), c7); }
            if (T.Count > 8) { c8 = Vector512.MultiplyAddEstimate(av, Vector512.Create(b[8]), c8); }
            if (T.Count > 9) { c9 = Vector512.MultiplyAddEstimate(av, Vector512.Create(b[9]), c9); }
            if (T.Count > 10) { c10 = Vector512.MultiplyAddEstimate(av, Vector512.Create(b[10]), c10); }
            if (T.Count > 11) { c11 = Vector512.MultiplyAddEstimate(av, Vector512.Create(b[11]), c11); }
            a += sa;
            b += bs;
        }

        c0.Store(tile);
        if (T.Count > 1) { c1.Store(tile + Rows); }
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
