using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Cluster.Compute.Kernels;

/// <summary>The arguments of one row-major GEMM call, with its operands pinned by the caller.</summary>
internal unsafe struct GemmCall
{
    public bool TransA;
    public bool TransB;
    public int M;
    public int N;
    public int K;
    public float Alpha;
    public float Beta;
    public float* A;
    public int Lda;
    public float* B;
    public int Ldb;
    public float* C;
    public int Ldc;
}

/// <summary>
/// Cache-blocked GEMM on packed panels (the BLIS loop nest): B is packed into KC x NR strips that stay in L1,
/// A into MC x KC blocks of MR-row strips that stay in L2, and a 6x16 register-blocked FMA micro-kernel
/// computes each tile. The transposes are absorbed by the packing routines.
/// </summary>
internal static unsafe class PackedGemm
{
    public const int Mr = 6;
    public const int Nr = 16;
    public const int Kc = 256;
    public const int Mc = 120;
    public const int Nc = 2048;

    /// <summary>Floats a thread needs for its packed A block.</summary>
    public const int PackASize = Mc * Kc;

    /// <summary>Floats a thread needs for its packed B panel.</summary>
    public const int PackBSize = Kc * Nc;

    /// <summary>Computes rows [rowStart, rowEnd) x columns [colStart, colEnd) of C.</summary>
    public static void Compute(in GemmCall g, int rowStart, int rowEnd, int colStart, int colEnd, float* packA, float* packB)
    {
        if (rowStart >= rowEnd || colStart >= colEnd)
        {
            return;
        }

        if (g.K == 0 || g.Alpha == 0)
        {
            ScaleBlock(g, rowStart, rowEnd, colStart, colEnd);
            return;
        }

        for (var jc = colStart; jc < colEnd; jc += Nc)
        {
            var nc = Math.Min(Nc, colEnd - jc);
            for (var pc = 0; pc < g.K; pc += Kc)
            {
                var kc = Math.Min(Kc, g.K - pc);
                PackB(g, pc, kc, jc, nc, packB);
                var beta = pc == 0 ? g.Beta : 1f;
                for (var ic = rowStart; ic < rowEnd; ic += Mc)
                {
                    var mc = Math.Min(Mc, rowEnd - ic);
                    PackA(g, ic, mc, pc, kc, packA);
                    for (var jr = 0; jr < nc; jr += Nr)
                    {
                        var nr = Math.Min(Nr, nc - jr);
                        var bPanel = packB + jr * kc;
                        for (var ir = 0; ir < mc; ir += Mr)
                        {
                            var mr = Math.Min(Mr, mc - ir);
                            var c = g.C + (long)(ic + ir) * g.Ldc + jc + jr;
                            Tile(kc, packA + ir * kc, bPanel, c, g.Ldc, mr, nr, g.Alpha, beta);
                        }
                    }
                }
            }
        }
    }

    private static void ScaleBlock(in GemmCall g, int rowStart, int rowEnd, int colStart, int colEnd)
    {
        for (var i = rowStart; i < rowEnd; i++)
        {
            var row = new Span<float>(g.C + (long)i * g.Ldc + colStart, colEnd - colStart);
            if (g.Beta == 0)
            {
                row.Clear();
            }
            else if (g.Beta != 1)
            {
                System.Numerics.Tensors.TensorPrimitives.Multiply(row, g.Beta, row);
            }
        }
    }

    private static void Tile(int kc, float* a, float* b, float* c, int ldc, int mr, int nr, float alpha, float beta)
    {
        if (mr == Mr && nr == Nr)
        {
            Kernel(kc, a, b, c, ldc, alpha, beta);
            return;
        }

        var tmp = stackalloc float[Mr * Nr];
        Kernel(kc, a, b, tmp, Nr, 1f, 0f);
        for (var r = 0; r < mr; r++)
        {
            var dst = c + (long)r * ldc;
            var src = tmp + r * Nr;
            for (var j = 0; j < nr; j++)
            {
                dst[j] = beta == 0 ? alpha * src[j] : alpha * src[j] + beta * dst[j];
            }
        }
    }

    private static void Kernel(int kc, float* a, float* b, float* c, int ldc, float alpha, float beta)
    {
        if (Vector256.IsHardwareAccelerated)
        {
            Kernel256(kc, a, b, c, ldc, alpha, beta);
        }
        else
        {
            Kernel128(kc, a, b, c, ldc, alpha, beta, 0);
            Kernel128(kc, a, b, c, ldc, alpha, beta, 8);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel256(int kc, float* a, float* b, float* c, int ldc, float alpha, float beta)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (var p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var av = Vector256.Create(a[0]);
            c00 = Vector256.MultiplyAddEstimate(av, b0, c00);
            c01 = Vector256.MultiplyAddEstimate(av, b1, c01);
            av = Vector256.Create(a[1]);
            c10 = Vector256.MultiplyAddEstimate(av, b0, c10);
            c11 = Vector256.MultiplyAddEstimate(av, b1, c11);
            av = Vector256.Create(a[2]);
            c20 = Vector256.MultiplyAddEstimate(av, b0, c20);
            c21 = Vector256.MultiplyAddEstimate(av, b1, c21);
            av = Vector256.Create(a[3]);
            c30 = Vector256.MultiplyAddEstimate(av, b0, c30);
            c31 = Vector256.MultiplyAddEstimate(av, b1, c31);
            av = Vector256.Create(a[4]);
            c40 = Vector256.MultiplyAddEstimate(av, b0, c40);
            c41 = Vector256.MultiplyAddEstimate(av, b1, c41);
            av = Vector256.Create(a[5]);
            c50 = Vector256.MultiplyAddEstimate(av, b0, c50);
            c51 = Vector256.MultiplyAddEstimate(av, b1, c51);
            a += Mr;
            b += Nr;
        }

        Store256(c, c00, c01, alpha, beta);
        Store256(c + ldc, c10, c11, alpha, beta);
        Store256(c + 2L * ldc, c20, c21, alpha, beta);
        Store256(c + 3L * ldc, c30, c31, alpha, beta);
        Store256(c + 4L * ldc, c40, c41, alpha, beta);
        Store256(c + 5L * ldc, c50, c51, alpha, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store256(float* c, Vector256<float> lo, Vector256<float> hi, float alpha, float beta)
    {
        var va = Vector256.Create(alpha);
        if (beta == 0)
        {
            (lo * va).Store(c);
            (hi * va).Store(c + 8);
        }
        else
        {
            var vb = Vector256.Create(beta);
            Vector256.MultiplyAddEstimate(lo, va, Vector256.Load(c) * vb).Store(c);
            Vector256.MultiplyAddEstimate(hi, va, Vector256.Load(c + 8) * vb).Store(c + 8);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel128(int kc, float* a, float* b, float* c, int ldc, float alpha, float beta, int column)
    {
        Vector128<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector128<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        b += column;
        for (var p = 0; p < kc; p++)
        {
            var b0 = Vector128.Load(b);
            var b1 = Vector128.Load(b + 4);
            var av = Vector128.Create(a[0]);
            c00 = Vector128.MultiplyAddEstimate(av, b0, c00);
            c01 = Vector128.MultiplyAddEstimate(av, b1, c01);
            av = Vector128.Create(a[1]);
            c10 = Vector128.MultiplyAddEstimate(av, b0, c10);
            c11 = Vector128.MultiplyAddEstimate(av, b1, c11);
            av = Vector128.Create(a[2]);
            c20 = Vector128.MultiplyAddEstimate(av, b0, c20);
            c21 = Vector128.MultiplyAddEstimate(av, b1, c21);
            av = Vector128.Create(a[3]);
            c30 = Vector128.MultiplyAddEstimate(av, b0, c30);
            c31 = Vector128.MultiplyAddEstimate(av, b1, c31);
            av = Vector128.Create(a[4]);
            c40 = Vector128.MultiplyAddEstimate(av, b0, c40);
            c41 = Vector128.MultiplyAddEstimate(av, b1, c41);
            av = Vector128.Create(a[5]);
            c50 = Vector128.MultiplyAddEstimate(av, b0, c50);
            c51 = Vector128.MultiplyAddEstimate(av, b1, c51);
            a += Mr;
            b += Nr;
        }

        c += column;
        Store128(c, c00, c01, alpha, beta);
        Store128(c + ldc, c10, c11, alpha, beta);
        Store128(c + 2L * ldc, c20, c21, alpha, beta);
        Store128(c + 3L * ldc, c30, c31, alpha, beta);
        Store128(c + 4L * ldc, c40, c41, alpha, beta);
        Store128(c + 5L * ldc, c50, c51, alpha, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store128(float* c, Vector128<float> lo, Vector128<float> hi, float alpha, float beta)
    {
        var va = Vector128.Create(alpha);
        if (beta == 0)
        {
            (lo * va).Store(c);
            (hi * va).Store(c + 4);
        }
        else
        {
            var vb = Vector128.Create(beta);
            Vector128.MultiplyAddEstimate(lo, va, Vector128.Load(c) * vb).Store(c);
            Vector128.MultiplyAddEstimate(hi, va, Vector128.Load(c + 4) * vb).Store(c + 4);
        }
    }

    /// <summary>Packs op(A)[ic..ic+mc, pc..pc+kc] as MR-row strips, element (r, p) of a strip at p * MR + r, zero-padded.</summary>
    private static void PackA(in GemmCall g, int ic, int mc, int pc, int kc, float* dst)
    {
        for (var ir = 0; ir < mc; ir += Mr)
        {
            var mr = Math.Min(Mr, mc - ir);
            var strip = dst + ir * kc;
            if (g.TransA)
            {
                // op(A)(i, p) = A[p, i]: each p gives MR contiguous values.
                var src = g.A + (long)pc * g.Lda + ic + ir;
                for (var p = 0; p < kc; p++)
                {
                    var s = src + (long)p * g.Lda;
                    var d = strip + p * Mr;
                    var r = 0;
                    for (; r < mr; r++)
                    {
                        d[r] = s[r];
                    }

                    for (; r < Mr; r++)
                    {
                        d[r] = 0;
                    }
                }
            }
            else
            {
                for (var r = 0; r < Mr; r++)
                {
                    var d = strip + r;
                    if (r < mr)
                    {
                        var s = g.A + (long)(ic + ir + r) * g.Lda + pc;
                        for (var p = 0; p < kc; p++)
                        {
                            d[p * Mr] = s[p];
                        }
                    }
                    else
                    {
                        for (var p = 0; p < kc; p++)
                        {
                            d[p * Mr] = 0;
                        }
                    }
                }
            }
        }
    }

    /// <summary>Packs op(B)[pc..pc+kc, jc..jc+nc] as NR-column strips, element (p, j) of a strip at p * NR + j, zero-padded.</summary>
    private static void PackB(in GemmCall g, int pc, int kc, int jc, int nc, float* dst)
    {
        for (var jr = 0; jr < nc; jr += Nr)
        {
            var nr = Math.Min(Nr, nc - jr);
            var strip = dst + jr * kc;
            if (!g.TransB)
            {
                var src = g.B + (long)pc * g.Ldb + jc + jr;
                for (var p = 0; p < kc; p++)
                {
                    var s = src + (long)p * g.Ldb;
                    var d = strip + p * Nr;
                    if (nr == Nr && Vector256.IsHardwareAccelerated)
                    {
                        Vector256.Store(Vector256.Load(s), d);
                        Vector256.Store(Vector256.Load(s + 8), d + 8);
                        continue;
                    }

                    var j = 0;
                    for (; j < nr; j++)
                    {
                        d[j] = s[j];
                    }

                    for (; j < Nr; j++)
                    {
                        d[j] = 0;
                    }
                }
            }
            else
            {
                // op(B)(p, j) = B[j, p]: walk each source row once.
                for (var j = 0; j < Nr; j++)
                {
                    var d = strip + j;
                    if (j < nr)
                    {
                        var s = g.B + (long)(jc + jr + j) * g.Ldb + pc;
                        for (var p = 0; p < kc; p++)
                        {
                            d[p * Nr] = s[p];
                        }
                    }
                    else
                    {
                        for (var p = 0; p < kc; p++)
                        {
                            d[p * Nr] = 0;
                        }
                    }
                }
            }
        }
    }
}
