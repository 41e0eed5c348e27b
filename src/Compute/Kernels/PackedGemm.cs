using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
/// A into MC x KC blocks of MR-row strips that stay in L2, and a 6x32 register-blocked FMA micro-kernel (two 512-bit
/// vectors per row where the CPU has them, else two 6x16 tiles of 256-bit vectors, else 128-bit pieces)
/// computes each tile; with 512-bit vectors, two full strips side by side are one 6x64 tile. The transposes are
/// absorbed by the packing routines. A C of at most 12 columns goes to <see cref="NarrowGemm"/> instead.
/// </summary>
internal static unsafe class PackedGemm
{
    public const int Mr = 6;
    public const int Nr = 32;

    // Columns of the 256-bit kernel; a strip of NR columns is two of its tiles side by side.
    private const int Half = 16;
    public const int Kc = 256;
    public const int Mc = 120;
    public const int Nc = 2048;

    /// <summary>
    /// Width in bits of the vectors the kernels run on this process: 512, 256, or 128 (without AVX). The runtime's
    /// switches narrow it (on .NET 10, DOTNET_EnableAVX512=0 gives 256 and DOTNET_EnableAVX2=0 gives 128).
    /// </summary>
    public static int VectorBits =>
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? 512 : Vector256.IsHardwareAccelerated && Avx.IsSupported ? 256 : 128;

    /// <summary>Floats a thread needs for its packed A block.</summary>
    public const int PackASize = (Mc + Mr) * Kc;

    /// <summary>Widest B row (floats) read in place; wider rows are packed, since rows a page apart thrash the TLB and cache sets.</summary>
    public const int DirectBMaxStride = 512;

    /// <summary>Columns from which A blocks are packed rather than read in place.</summary>
    public const int PackThreshold = 256;

    /// <summary>A misaligned B panel of more bytes than this (L1's size on older cores) is copied aligned (see PackMisalignedB).</summary>
    private const long MisalignedPanelBytes = 32 * 1024;

    /// <summary>Fewest rows of C over which that copy is spread.</summary>
    private const int MinRowsToPackMisalignedB = 64;

    /// <summary>Floats a thread needs for its packed B panel.</summary>
    public const int PackBSize = Kc * Nc;

    /// <summary>
    /// Computes rows [rowStart, rowEnd) x columns [colStart, colEnd) of C, its row blocks and strips from the last to the
    /// first when <paramref name="descending"/> (the same result: each element is computed the same way in either order).
    /// </summary>
    public static void Compute(in GemmCall g, int rowStart, int rowEnd, int colStart, int colEnd, float* packA, float* packB, bool descending = false)
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

        if (NarrowGemm.Applies(colEnd - colStart))
        {
            NarrowGemm.Compute(g, rowStart, rowEnd, colStart, colEnd, packA, packB);
            return;
        }

        // op(A)(i, p) = A[i * rowStride + p * colStride]: full MR-row strips are read in place (no packing), since
        // for either transpose a strip is a regular 2-D walk; only a ragged last strip is copied, zero-padded.
        long rowStride = g.TransA ? 1 : g.Lda;
        long colStride = g.TransA ? g.Lda : 1;
        for (var jc = colStart; jc < colEnd; jc += Nc)
        {
            var nc = Math.Min(Nc, colEnd - jc);
            for (var pc = 0; pc < g.K; pc += Kc)
            {
                var kc = Math.Min(Kc, g.K - pc);
                // Without a transpose, a full 32-column strip of B is already rows of 32 contiguous floats: read it
                // in place and pack only a ragged last strip, unless its rows are off the cache lines (below).
                var directB = !g.TransB && g.Ldb <= DirectBMaxStride && !PackMisalignedB(g, jc, kc, nc, rowEnd - rowStart);
                var fullColumns = directB ? nc / Nr * Nr : 0;
                PackB(g, pc, kc, jc + fullColumns, nc - fullColumns, packB);
                var beta = pc == 0 ? g.Beta : 1f;
                var blocks = (rowEnd - rowStart + Mc - 1) / Mc;
                for (var blockIndex = 0; blockIndex < blocks; blockIndex++)
                {
                    var ic = rowStart + (descending ? blocks - 1 - blockIndex : blockIndex) * Mc;
                    var mc = Math.Min(Mc, rowEnd - ic);
                    var strips = (mc + Mr - 1) / Mr;
                    // Reused across many column strips, a packed block beats in-place reads (no cache-set
                    // aliasing between rows a power of two apart); for a few strips the copy is not worth it.
                    // Read in place, a ragged last strip of mr < MR rows is too: the kernels point the missing rows at
                    // its last row, and store only its own.
                    var packAll = nc >= PackThreshold;
                    if (packAll)
                    {
                        for (var ir = 0; ir < mc; ir += Mr)
                        {
                            PackStripA(g, ic + ir, Math.Min(Mr, mc - ir), pc, kc, packA + ir * kc);
                        }
                    }

                    for (var jr = 0; jr < nc; jr += Nr)
                    {
                        var nr = Math.Min(Nr, nc - jr);
                        var bPanel = jr < fullColumns ? g.B + (long)pc * g.Ldb + jc + jr : packB + (jr - fullColumns) * kc;
                        long bs = jr < fullColumns ? g.Ldb : StripWidth(nr);
                        // Two full strips side by side per tile (6 x 64, 24 of the 32 vector registers) where the CPU has
                        // 512-bit vectors: each A value broadcast feeds four multiply-adds instead of two, and a tile's
                        // fixed costs (the call, the row pointers, the stores' wait for the last multiply-adds) are spread
                        // over twice the work, which counts most where K is small (the output layer's input gradient).
                        var pair = jr + 2 * Nr <= nc && (jr + Nr < fullColumns) == (jr < fullColumns) && VectorBits == 512;
                        var bPanel2 = jr + Nr < fullColumns ? bPanel + Nr : bPanel + (long)Nr * kc;
                        for (var stripIndex = 0; stripIndex < strips; stripIndex++)
                        {
                            var ir = (descending ? strips - 1 - stripIndex : stripIndex) * Mr;
                            var c = g.C + (long)(ic + ir) * g.Ldc + jc + jr;
                            var mr = Math.Min(Mr, mc - ir);
                            var a = packAll ? packA + ir * kc : g.A + (ic + ir) * rowStride + pc * colStride;
                            var rs = packAll ? 1 : rowStride;
                            var ps = packAll ? Mr : colStride;
                            if (pair)
                            {
                                Kernel512Pair(kc, a, rs, ps, bPanel, bPanel2, bs, c, g.Ldc, g.Alpha, beta, mr);
                            }
                            else
                            {
                                Tile(kc, a, rs, ps, bPanel, bs, c, g.Ldc, mr, nr, g.Alpha, beta);
                            }
                        }

                        if (pair)
                        {
                            jr += Nr;
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// Whether a B panel that could be read in place is copied instead because its rows do not start on 64-byte
    /// lines: then every 512-bit load of it spans two lines, which costs little while the panel stays in L1 but about
    /// a fifth of the product's time when it comes from L2 (a 784x128x256 weight gradient: 102% of the measured peak
    /// aligned, 81% four floats off). The copy is aligned; it pays when enough rows of A reuse each value.
    /// </summary>
    private static bool PackMisalignedB(in GemmCall g, int jc, int kc, int nc, int rows) =>
        (((nint)(g.B + jc) & 63) != 0 || (g.Ldb & 15) != 0)
        && (long)kc * nc * sizeof(float) > MisalignedPanelBytes
        && rows >= MinRowsToPackMisalignedB;

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

    private static void Tile(int kc, float* a, long rs, long ps, float* b, long bs, float* c, int ldc, int mr, int nr, float alpha, float beta)
    {
        if (VectorBits == 512 && nr > Half)
        {
            // A full tile, or a 32-column strip short of rows or columns: the 512-bit kernel, storing only the tile's
            // rows and (by an AVX-512 mask, as fast as a plain store) its columns.
            Kernel512(kc, a, rs, ps, b, bs, c, ldc, alpha, beta, mr, nr);
            return;
        }

        if (mr == Mr && nr == Nr)
        {
            Kernel(kc, a, rs, ps, b, bs, c, ldc, alpha, beta);
            return;
        }

        if (Vector256.IsHardwareAccelerated && Avx.IsSupported)
        {
            // A ragged edge tile: the padded strips are computed in full and only its rows and columns are stored.
            Kernel256(kc, a, rs, ps, b, bs, c, ldc, alpha, beta, mr, Math.Min(nr, Half));
            if (nr > Half)
            {
                Kernel256(kc, a, rs, ps, b + Half, bs, c + Half, ldc, alpha, beta, mr, nr - Half);
            }

            return;
        }

        // Without 256-bit vectors: 8-column pieces into a scratch tile, as many as the strip is wide.
        var tmp = stackalloc float[Mr * Nr];
        for (var column = 0; column < StripWidth(nr); column += 8)
        {
            Kernel128(kc, a, rs, ps, b, bs, tmp, Nr, 1f, 0f, column, mr);
        }

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

    /// <summary>A full tile without 512-bit vectors (<see cref="Tile"/> gives those to <see cref="Kernel512"/>).</summary>
    private static void Kernel(int kc, float* a, long rs, long ps, float* b, long bs, float* c, int ldc, float alpha, float beta)
    {
        if (Vector256.IsHardwareAccelerated)
        {
            Kernel256(kc, a, rs, ps, b, bs, c, ldc, alpha, beta, Mr, Half);
            Kernel256(kc, a, rs, ps, b + Half, bs, c + Half, ldc, alpha, beta, Mr, Half);
        }
        else
        {
            for (var column = 0; column < Nr; column += 8)
            {
                Kernel128(kc, a, rs, ps, b, bs, c, ldc, alpha, beta, column, Mr);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel256(int kc, float* a, long rs, long ps, float* b, long bs, float* c, int ldc, float alpha, float beta, int mr, int nr)
    {
        if (Sse.IsSupported)
        {
            // The C tile is touched only at the end; start fetching its rows now.
            for (var r = 0; r < Mr; r++)
            {
                Sse.Prefetch0(c + (long)r * ldc);
                Sse.Prefetch0(c + (long)r * ldc + Half - 1);
            }
        }

        float* a0 = a, a1 = Row(a, 1, mr, rs), a2 = Row(a, 2, mr, rs), a3 = Row(a, 3, mr, rs), a4 = Row(a, 4, mr, rs), a5 = Row(a, 5, mr, rs);
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        long end = kc * ps;
        for (long off = 0; off != end; off += ps)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var av = Vector256.Create(a0[off]);
            c00 = Vector256.MultiplyAddEstimate(av, b0, c00);
            c01 = Vector256.MultiplyAddEstimate(av, b1, c01);
            av = Vector256.Create(a1[off]);
            c10 = Vector256.MultiplyAddEstimate(av, b0, c10);
            c11 = Vector256.MultiplyAddEstimate(av, b1, c11);
            av = Vector256.Create(a2[off]);
            c20 = Vector256.MultiplyAddEstimate(av, b0, c20);
            c21 = Vector256.MultiplyAddEstimate(av, b1, c21);
            av = Vector256.Create(a3[off]);
            c30 = Vector256.MultiplyAddEstimate(av, b0, c30);
            c31 = Vector256.MultiplyAddEstimate(av, b1, c31);
            av = Vector256.Create(a4[off]);
            c40 = Vector256.MultiplyAddEstimate(av, b0, c40);
            c41 = Vector256.MultiplyAddEstimate(av, b1, c41);
            av = Vector256.Create(a5[off]);
            c50 = Vector256.MultiplyAddEstimate(av, b0, c50);
            c51 = Vector256.MultiplyAddEstimate(av, b1, c51);
            b += bs;
        }

        if (mr == Mr && nr == Half && alpha == 1 && beta == 0)
        {
            // Plain products (the layers' case) without the two tests per store.
            StoreRow(c, c00, c01);
            StoreRow(c + ldc, c10, c11);
            StoreRow(c + 2L * ldc, c20, c21);
            StoreRow(c + 3L * ldc, c30, c31);
            StoreRow(c + 4L * ldc, c40, c41);
            StoreRow(c + 5L * ldc, c50, c51);
            return;
        }

        if (mr == Mr && nr == Half)
        {
            Store256(c, c00, c01, alpha, beta);
            Store256(c + ldc, c10, c11, alpha, beta);
            Store256(c + 2L * ldc, c20, c21, alpha, beta);
            Store256(c + 3L * ldc, c30, c31, alpha, beta);
            Store256(c + 4L * ldc, c40, c41, alpha, beta);
            Store256(c + 5L * ldc, c50, c51, alpha, beta);
            return;
        }

        StorePartial256(c, c00, c01, nr, alpha, beta);
        if (mr > 1)
        {
            StorePartial256(c + ldc, c10, c11, nr, alpha, beta);
        }

        if (mr > 2)
        {
            StorePartial256(c + 2L * ldc, c20, c21, nr, alpha, beta);
        }

        if (mr > 3)
        {
            StorePartial256(c + 3L * ldc, c30, c31, nr, alpha, beta);
        }

        if (mr > 4)
        {
            StorePartial256(c + 4L * ldc, c40, c41, nr, alpha, beta);
        }

        if (mr > 5)
        {
            StorePartial256(c + 5L * ldc, c50, c51, nr, alpha, beta);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512(int kc, float* a, long rs, long ps, float* b, long bs, float* c, int ldc, float alpha, float beta, int mr, int nr)
    {
        if (Sse.IsSupported && kc >= 32)
        {
            for (var r = 0; r < Mr; r++)
            {
                Sse.Prefetch0(c + (long)r * ldc);
                Sse.Prefetch0(c + (long)r * ldc + Nr - 1);
            }
        }

        float* a0 = a, a1 = Row(a, 1, mr, rs), a2 = Row(a, 2, mr, rs), a3 = Row(a, 3, mr, rs), a4 = Row(a, 4, mr, rs), a5 = Row(a, 5, mr, rs);
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        long end = kc * ps;
        for (long off = 0; off != end; off += ps)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var av = Vector512.Create(a0[off]);
            c00 = Vector512.MultiplyAddEstimate(av, b0, c00);
            c01 = Vector512.MultiplyAddEstimate(av, b1, c01);
            av = Vector512.Create(a1[off]);
            c10 = Vector512.MultiplyAddEstimate(av, b0, c10);
            c11 = Vector512.MultiplyAddEstimate(av, b1, c11);
            av = Vector512.Create(a2[off]);
            c20 = Vector512.MultiplyAddEstimate(av, b0, c20);
            c21 = Vector512.MultiplyAddEstimate(av, b1, c21);
            av = Vector512.Create(a3[off]);
            c30 = Vector512.MultiplyAddEstimate(av, b0, c30);
            c31 = Vector512.MultiplyAddEstimate(av, b1, c31);
            av = Vector512.Create(a4[off]);
            c40 = Vector512.MultiplyAddEstimate(av, b0, c40);
            c41 = Vector512.MultiplyAddEstimate(av, b1, c41);
            av = Vector512.Create(a5[off]);
            c50 = Vector512.MultiplyAddEstimate(av, b0, c50);
            c51 = Vector512.MultiplyAddEstimate(av, b1, c51);
            b += bs;
        }

        if (mr == Mr && nr == Nr && alpha == 1 && beta == 0)
        {
            // Plain products (the layers' case) without the two tests per store.
            StoreRow(c, c00, c01);
            StoreRow(c + ldc, c10, c11);
            StoreRow(c + 2L * ldc, c20, c21);
            StoreRow(c + 3L * ldc, c30, c31);
            StoreRow(c + 4L * ldc, c40, c41);
            StoreRow(c + 5L * ldc, c50, c51);
            return;
        }

        if (mr == Mr && nr == Nr)
        {
            Store512(c, c00, c01, alpha, beta);
            Store512(c + ldc, c10, c11, alpha, beta);
            Store512(c + 2L * ldc, c20, c21, alpha, beta);
            Store512(c + 3L * ldc, c30, c31, alpha, beta);
            Store512(c + 4L * ldc, c40, c41, alpha, beta);
            Store512(c + 5L * ldc, c50, c51, alpha, beta);
            return;
        }

        var lanes = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        var maskHi = Vector512.LessThan(lanes, Vector512.Create(nr - 16)).AsSingle();
        StorePartial512(c, c00, c01, maskHi, alpha, beta);
        if (mr > 1)
        {
            StorePartial512(c + ldc, c10, c11, maskHi, alpha, beta);
        }

        if (mr > 2)
        {
            StorePartial512(c + 2L * ldc, c20, c21, maskHi, alpha, beta);
        }

        if (mr > 3)
        {
            StorePartial512(c + 3L * ldc, c30, c31, maskHi, alpha, beta);
        }

        if (mr > 4)
        {
            StorePartial512(c + 4L * ldc, c40, c41, maskHi, alpha, beta);
        }

        if (mr > 5)
        {
            StorePartial512(c + 5L * ldc, c50, c51, maskHi, alpha, beta);
        }
    }

    /// <summary>
    /// Two full 32-column strips at once (B panels <paramref name="b0"/> and <paramref name="b1"/>, the same stride): 24
    /// accumulators, each element the same multiply-adds in the same order as in <see cref="Kernel512"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512Pair(int kc, float* a, long rs, long ps, float* b0, float* b1, long bs, float* c, int ldc, float alpha, float beta, int mr)
    {
        float* a0 = a, a1 = Row(a, 1, mr, rs), a2 = Row(a, 2, mr, rs), a3 = Row(a, 3, mr, rs), a4 = Row(a, 4, mr, rs), a5 = Row(a, 5, mr, rs);
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> d00 = default, d01 = default, d10 = default, d11 = default, d20 = default, d21 = default;
        Vector512<float> d30 = default, d31 = default, d40 = default, d41 = default, d50 = default, d51 = default;
        long end = kc * ps;
        long boff = 0;
        for (long off = 0; off != end; off += ps)
        {
            var x0 = Vector512.Load(b0 + boff);
            var x1 = Vector512.Load(b0 + boff + 16);
            var y0 = Vector512.Load(b1 + boff);
            var y1 = Vector512.Load(b1 + boff + 16);
            Fma4(Vector512.Create(a0[off]), x0, x1, y0, y1, ref c00, ref c01, ref d00, ref d01);
            Fma4(Vector512.Create(a1[off]), x0, x1, y0, y1, ref c10, ref c11, ref d10, ref d11);
            Fma4(Vector512.Create(a2[off]), x0, x1, y0, y1, ref c20, ref c21, ref d20, ref d21);
            Fma4(Vector512.Create(a3[off]), x0, x1, y0, y1, ref c30, ref c31, ref d30, ref d31);
            Fma4(Vector512.Create(a4[off]), x0, x1, y0, y1, ref c40, ref c41, ref d40, ref d41);
            Fma4(Vector512.Create(a5[off]), x0, x1, y0, y1, ref c50, ref c51, ref d50, ref d51);
            boff += bs;
        }

        if (alpha == 1 && beta == 0 && mr == Mr)
        {
            // A full tile of plain products (the layers' case) without the two tests per store: with K as small as
            // an output layer's 10, those tests cost a tenth of the tile.
            StoreRow(c, c00, c01, d00, d01);
            StoreRow(c + ldc, c10, c11, d10, d11);
            StoreRow(c + 2L * ldc, c20, c21, d20, d21);
            StoreRow(c + 3L * ldc, c30, c31, d30, d31);
            StoreRow(c + 4L * ldc, c40, c41, d40, d41);
            StoreRow(c + 5L * ldc, c50, c51, d50, d51);
            return;
        }

        Store512(c, c00, c01, alpha, beta);
        Store512(c + Nr, d00, d01, alpha, beta);
        if (mr > 1) { Store512(c + ldc, c10, c11, alpha, beta); Store512(c + ldc + Nr, d10, d11, alpha, beta); }
        if (mr > 2) { Store512(c + 2L * ldc, c20, c21, alpha, beta); Store512(c + 2L * ldc + Nr, d20, d21, alpha, beta); }
        if (mr > 3) { Store512(c + 3L * ldc, c30, c31, alpha, beta); Store512(c + 3L * ldc + Nr, d30, d31, alpha, beta); }
        if (mr > 4) { Store512(c + 4L * ldc, c40, c41, alpha, beta); Store512(c + 4L * ldc + Nr, d40, d41, alpha, beta); }
        if (mr > 5) { Store512(c + 5L * ldc, c50, c51, alpha, beta); Store512(c + 5L * ldc + Nr, d50, d51, alpha, beta); }
    }

    /// <summary>Stores one row of a 6x64 tile as it is (alpha 1, beta 0: v * 1 is v, bit for bit).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* c, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3)
    {
        StoreRow(c, v0, v1);
        StoreRow(c + Nr, v2, v3);
    }

    /// <summary>Stores one row of a 6x32 tile as it is (alpha 1, beta 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* c, Vector512<float> v0, Vector512<float> v1)
    {
        v0.Store(c);
        v1.Store(c + 16);
    }

    /// <summary>Stores one row of a 6x16 tile of 256-bit vectors as it is (alpha 1, beta 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* c, Vector256<float> v0, Vector256<float> v1)
    {
        v0.Store(c);
        v1.Store(c + 8);
    }

    /// <summary>One row of a 6x64 tile: the row's A value times the four B vectors, into the row's four accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fma4(Vector512<float> av, Vector512<float> x0, Vector512<float> x1, Vector512<float> y0, Vector512<float> y1,
        ref Vector512<float> c0, ref Vector512<float> c1, ref Vector512<float> d0, ref Vector512<float> d1)
    {
        c0 = Vector512.MultiplyAddEstimate(av, x0, c0);
        c1 = Vector512.MultiplyAddEstimate(av, x1, c1);
        d0 = Vector512.MultiplyAddEstimate(av, y0, d0);
        d1 = Vector512.MultiplyAddEstimate(av, y1, d1);
    }

    /// <summary>
    /// Row <paramref name="r"/> of a strip of <paramref name="mr"/> rows read in place. Rows past a ragged strip's last
    /// are that last row again: read in bounds, computed, never stored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float* Row(float* a, int r, int mr, long rs) => a + Math.Min(r, mr - 1) * rs;

    /// <summary>Stores a row of 16 + (up to 16 masked) columns; masked lanes are neither read nor written.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StorePartial512(float* c, Vector512<float> lo, Vector512<float> hi, Vector512<float> maskHi, float alpha, float beta)
    {
        var va = Vector512.Create(alpha);
        if (beta == 0)
        {
            // v * 1 is v, bit for bit: the common alpha = 1 skips the multiply.
            if (alpha != 1)
            {
                lo *= va;
                hi *= va;
            }

            lo.Store(c);
            Avx512F.MaskStore(c + 16, maskHi, hi);
        }
        else
        {
            var vb = Vector512.Create(beta);
            Vector512.MultiplyAddEstimate(lo, va, Vector512.Load(c) * vb).Store(c);
            Avx512F.MaskStore(c + 16, maskHi, Vector512.MultiplyAddEstimate(hi, va, Avx512F.MaskLoad(c + 16, maskHi, Vector512<float>.Zero) * vb));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(float* c, Vector512<float> lo, Vector512<float> hi, float alpha, float beta)
    {
        var va = Vector512.Create(alpha);
        if (beta == 0)
        {
            // v * 1 is v, bit for bit: the common alpha = 1 skips the multiply.
            if (alpha != 1)
            {
                lo *= va;
                hi *= va;
            }

            lo.Store(c);
            hi.Store(c + 16);
        }
        else
        {
            var vb = Vector512.Create(beta);
            Vector512.MultiplyAddEstimate(lo, va, Vector512.Load(c) * vb).Store(c);
            Vector512.MultiplyAddEstimate(hi, va, Vector512.Load(c + 16) * vb).Store(c + 16);
        }
    }

    /// <summary>Stores the first <paramref name="nr"/> columns of a row; masked lanes are neither read nor written.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StorePartial256(float* c, Vector256<float> lo, Vector256<float> hi, int nr, float alpha, float beta)
    {
        var lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
        var maskLo = Vector256.LessThan(lanes, Vector256.Create(nr)).AsSingle();
        var maskHi = Vector256.LessThan(lanes, Vector256.Create(nr - 8)).AsSingle();
        var va = Vector256.Create(alpha);
        if (beta == 0)
        {
            Avx.MaskStore(c, maskLo, lo * va);
            Avx.MaskStore(c + 8, maskHi, hi * va);
        }
        else
        {
            var vb = Vector256.Create(beta);
            Avx.MaskStore(c, maskLo, Vector256.MultiplyAddEstimate(lo, va, Avx.MaskLoad(c, maskLo) * vb));
            Avx.MaskStore(c + 8, maskHi, Vector256.MultiplyAddEstimate(hi, va, Avx.MaskLoad(c + 8, maskHi) * vb));
        }
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
    private static void Kernel128(int kc, float* a, long rs, long ps, float* b, long bs, float* c, int ldc, float alpha, float beta, int column, int mr)
    {
        float* a0 = a, a1 = Row(a, 1, mr, rs), a2 = Row(a, 2, mr, rs), a3 = Row(a, 3, mr, rs), a4 = Row(a, 4, mr, rs), a5 = Row(a, 5, mr, rs);
        Vector128<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector128<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        b += column;
        long end = kc * ps;
        for (long off = 0; off != end; off += ps)
        {
            var b0 = Vector128.Load(b);
            var b1 = Vector128.Load(b + 4);
            var av = Vector128.Create(a0[off]);
            c00 = Vector128.MultiplyAddEstimate(av, b0, c00);
            c01 = Vector128.MultiplyAddEstimate(av, b1, c01);
            av = Vector128.Create(a1[off]);
            c10 = Vector128.MultiplyAddEstimate(av, b0, c10);
            c11 = Vector128.MultiplyAddEstimate(av, b1, c11);
            av = Vector128.Create(a2[off]);
            c20 = Vector128.MultiplyAddEstimate(av, b0, c20);
            c21 = Vector128.MultiplyAddEstimate(av, b1, c21);
            av = Vector128.Create(a3[off]);
            c30 = Vector128.MultiplyAddEstimate(av, b0, c30);
            c31 = Vector128.MultiplyAddEstimate(av, b1, c31);
            av = Vector128.Create(a4[off]);
            c40 = Vector128.MultiplyAddEstimate(av, b0, c40);
            c41 = Vector128.MultiplyAddEstimate(av, b1, c41);
            av = Vector128.Create(a5[off]);
            c50 = Vector128.MultiplyAddEstimate(av, b0, c50);
            c51 = Vector128.MultiplyAddEstimate(av, b1, c51);
            b += bs;
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

    /// <summary>Copies op(A)[i0..i0+mr, pc..pc+kc] as one MR-row strip, element (r, p) at p * MR + r, zero-padded.</summary>
    private static void PackStripA(in GemmCall g, int i0, int mr, int pc, int kc, float* dst)
    {
        if (g.TransA && Avx.IsSupported)
        {
            // Row p of the stored A holds the strip's MR values side by side: a masked load (nothing read past the
            // strip's rows) and a masked store of MR lanes per p.
            var lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
            var load = Vector256.LessThan(lanes, Vector256.Create(mr)).AsSingle();
            var store = Vector256.LessThan(lanes, Vector256.Create(Mr)).AsSingle();
            for (var p = 0; p < kc; p++)
            {
                Avx.MaskStore(dst + p * Mr, store, Avx.MaskLoad(g.A + (long)(pc + p) * g.Lda + i0, load));
            }

            return;
        }

        if (g.TransA)
        {
            for (var p = 0; p < kc; p++)
            {
                var s = g.A + (long)(pc + p) * g.Lda + i0;
                var d = dst + p * Mr;
                for (var r = 0; r < Mr; r++)
                {
                    d[r] = r < mr ? s[r] : 0f;
                }
            }

            return;
        }

        if (mr == Mr)
        {
            float* s0 = g.A + (long)i0 * g.Lda + pc, s1 = s0 + g.Lda, s2 = s1 + g.Lda, s3 = s2 + g.Lda, s4 = s3 + g.Lda, s5 = s4 + g.Lda;
            for (var p = 0; p < kc; p++)
            {
                var d = dst + p * Mr;
                d[0] = s0[p];
                d[1] = s1[p];
                d[2] = s2[p];
                d[3] = s3[p];
                d[4] = s4[p];
                d[5] = s5[p];
            }

            return;
        }

        for (var p = 0; p < kc; p++)
        {
            var d = dst + p * Mr;
            for (var r = 0; r < Mr; r++)
            {
                d[r] = r < mr ? g.A[(long)(i0 + r) * g.Lda + pc + p] : 0f;
            }
        }
    }

    /// <summary>Packs op(B)[pc..pc+kc, jc..jc+nc] as NR-column strips, element (p, j) of a strip at p * NR + j, zero-padded.</summary>
    /// <summary>Row stride of a packed strip of <paramref name="nr"/> columns: a narrow last strip is packed 16 wide, for the 256-bit kernel alone.</summary>
    private static int StripWidth(int nr) => nr <= Half ? Half : Nr;

    private static void PackB(in GemmCall g, int pc, int kc, int jc, int nc, float* dst)
    {
        for (var jr = 0; jr < nc; jr += Nr)
        {
            var nr = Math.Min(Nr, nc - jr);
            var width = StripWidth(nr);
            var strip = dst + jr * kc;
            if (!g.TransB)
            {
                var src = g.B + (long)pc * g.Ldb + jc + jr;
                for (var p = 0; p < kc; p++)
                {
                    var s = src + (long)p * g.Ldb;
                    var d = strip + p * width;
                    if (nr == Nr && Vector256.IsHardwareAccelerated)
                    {
                        Vector256.Store(Vector256.Load(s), d);
                        Vector256.Store(Vector256.Load(s + 8), d + 8);
                        Vector256.Store(Vector256.Load(s + 16), d + 16);
                        Vector256.Store(Vector256.Load(s + 24), d + 24);
                        continue;
                    }

                    if (Avx.IsSupported)
                    {
                        // A ragged strip: masked loads read only its columns and leave zeros in the padding.
                        for (var j8 = 0; j8 < width; j8 += 8)
                        {
                            var mask = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(nr - j8)).AsSingle();
                            Avx.Store(d + j8, Avx.MaskLoad(s + j8, mask));
                        }

                        continue;
                    }

                    var j = 0;
                    for (; j < nr; j++)
                    {
                        d[j] = s[j];
                    }

                    for (; j < width; j++)
                    {
                        d[j] = 0;
                    }
                }
            }
            else if (nr == Nr && VectorBits == 512)
            {
                // op(B)(p, j) = B[j, p]: 16 source rows x 8 values at a time, transposed in registers.
                var src = g.B + (long)(jc + jr) * g.Ldb + pc;
                for (var p = 0; p < kc; p += 8)
                {
                    var w = Math.Min(8, kc - p);
                    Transpose16x8(src + p, g.Ldb, strip + p * Nr, Nr, w);
                    Transpose16x8(src + 16 * g.Ldb + p, g.Ldb, strip + p * Nr + 16, Nr, w);
                }
            }
            else if (nr == Nr && Avx.IsSupported)
            {
                // op(B)(p, j) = B[j, p]: 8x8 blocks of the source rows, transposed in registers.
                var src = g.B + (long)(jc + jr) * g.Ldb + pc;
                var p = 0;
                for (; p + 8 <= kc; p += 8)
                {
                    for (var j = 0; j < Nr; j += 8)
                    {
                        Transpose8x8(src + (long)j * g.Ldb + p, g.Ldb, strip + p * Nr + j, Nr);
                    }
                }

                if (p < kc)
                {
                    // The last kc - p (< 8) values of each row: masked loads, nothing read past the panel.
                    for (var j = 0; j < Nr; j += 8)
                    {
                        Transpose8xW(src + (long)j * g.Ldb + p, g.Ldb, strip + p * Nr + j, Nr, kc - p);
                    }
                }
            }
            else
            {
                // op(B)(p, j) = B[j, p]: walk each source row once.
                for (var j = 0; j < width; j++)
                {
                    var d = strip + j;
                    if (j < nr)
                    {
                        var s = g.B + (long)(jc + jr + j) * g.Ldb + pc;
                        for (var p = 0; p < kc; p++)
                        {
                            d[p * width] = s[p];
                        }
                    }
                    else
                    {
                        for (var p = 0; p < kc; p++)
                        {
                            d[p * width] = 0;
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// Writes the transpose of the 8 x <paramref name="w"/> block at <paramref name="src"/> (w &lt; 8 columns, row stride
    /// <paramref name="lds"/>) as <paramref name="w"/> rows of 8 at <paramref name="dst"/>; nothing past the block is read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Transpose8xW(float* src, long lds, float* dst, long ldd, int w)
    {
        var mask = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(w)).AsSingle();
        StoreTransposed8(
            Avx.MaskLoad(src, mask), Avx.MaskLoad(src + lds, mask), Avx.MaskLoad(src + 2 * lds, mask), Avx.MaskLoad(src + 3 * lds, mask),
            Avx.MaskLoad(src + 4 * lds, mask), Avx.MaskLoad(src + 5 * lds, mask), Avx.MaskLoad(src + 6 * lds, mask), Avx.MaskLoad(src + 7 * lds, mask),
            dst, ldd, w);
    }

    /// <summary>
    /// Writes the transpose of the 16 x <paramref name="w"/> block at <paramref name="src"/> (w &lt;= 8 columns, row
    /// stride <paramref name="lds"/>) as <paramref name="w"/> rows of 16 at <paramref name="dst"/> (row stride
    /// <paramref name="ldd"/>), with 512-bit vectors; nothing past the block is read. With <paramref name="rows"/>
    /// under 16, the rows past the block's last are that last row again.
    /// </summary>
    /// <remarks>
    /// Each register holds two source rows of 8 (rows i and i + 4, or 8 + i and 12 + i), so the 32-bit and 64-bit
    /// in-lane shuffles transpose two 8x8 halves at once, and one 128-bit lane shuffle per output row puts the four
    /// groups of four rows in order: half the shuffles of two 8x8 transposes in 256-bit vectors, and half the
    /// stores. The in-lane shuffles run beside the multiply-adds on the FMA ports' neighbours; the lane-crossing
    /// ones (the inserts and the last step) take FMA slots, two per output row.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Transpose16x8(float* src, long lds, float* dst, long ldd, int w, int rows = 16)
    {
        if (w == 8)
        {
            Transpose16x8(
                RowPair(Row(src, 0, rows, lds), Row(src, 4, rows, lds)), RowPair(Row(src, 1, rows, lds), Row(src, 5, rows, lds)),
                RowPair(Row(src, 2, rows, lds), Row(src, 6, rows, lds)), RowPair(Row(src, 3, rows, lds), Row(src, 7, rows, lds)),
                RowPair(Row(src, 8, rows, lds), Row(src, 12, rows, lds)), RowPair(Row(src, 9, rows, lds), Row(src, 13, rows, lds)),
                RowPair(Row(src, 10, rows, lds), Row(src, 14, rows, lds)), RowPair(Row(src, 11, rows, lds), Row(src, 15, rows, lds)),
                dst, ldd, 8);
            return;
        }

        var m = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(w)).AsSingle();
        Transpose16x8(
            RowPair(Row(src, 0, rows, lds), Row(src, 4, rows, lds), m), RowPair(Row(src, 1, rows, lds), Row(src, 5, rows, lds), m),
            RowPair(Row(src, 2, rows, lds), Row(src, 6, rows, lds), m), RowPair(Row(src, 3, rows, lds), Row(src, 7, rows, lds), m),
            RowPair(Row(src, 8, rows, lds), Row(src, 12, rows, lds), m), RowPair(Row(src, 9, rows, lds), Row(src, 13, rows, lds), m),
            RowPair(Row(src, 10, rows, lds), Row(src, 14, rows, lds), m), RowPair(Row(src, 11, rows, lds), Row(src, 15, rows, lds), m),
            dst, ldd, w);
    }

    /// <summary>8 floats at <paramref name="lo"/> then 8 at <paramref name="hi"/> (the load of the second folded into the insert).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> RowPair(float* lo, float* hi) =>
        Avx512F.InsertVector256(Vector256.Load(lo).ToVector512Unsafe(), Vector256.Load(hi), 1);

    /// <summary>The masked columns of 8 at <paramref name="lo"/> then at <paramref name="hi"/>, zero elsewhere.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> RowPair(float* lo, float* hi, Vector256<float> mask) =>
        Avx512F.InsertVector256(Avx.MaskLoad(lo, mask).ToVector512Unsafe(), Avx.MaskLoad(hi, mask), 1);

    /// <summary>
    /// The shuffles of <see cref="Transpose16x8(float*, long, float*, long, int, int)"/>: z0..z3 hold rows i and i + 4
    /// (i = 0..3), z4..z7 rows 8 + i and 12 + i; the first <paramref name="w"/> rows of the transpose are stored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose16x8(
        Vector512<float> z0, Vector512<float> z1, Vector512<float> z2, Vector512<float> z3,
        Vector512<float> z4, Vector512<float> z5, Vector512<float> z6, Vector512<float> z7, float* dst, long ldd, int w)
    {
        var t0 = Avx512F.UnpackLow(z0, z1);
        var t1 = Avx512F.UnpackHigh(z0, z1);
        var t2 = Avx512F.UnpackLow(z2, z3);
        var t3 = Avx512F.UnpackHigh(z2, z3);
        var t4 = Avx512F.UnpackLow(z4, z5);
        var t5 = Avx512F.UnpackHigh(z4, z5);
        var t6 = Avx512F.UnpackLow(z6, z7);
        var t7 = Avx512F.UnpackHigh(z6, z7);

        // u[q] (u[4 + q]): its 128-bit lanes hold rows 0-3 (8-11) at p = q and at p = 4 + q, then rows 4-7 (12-15) at both.
        var u0 = Avx512F.Shuffle(t0, t2, 0x44);
        var u1 = Avx512F.Shuffle(t0, t2, 0xEE);
        var u2 = Avx512F.Shuffle(t1, t3, 0x44);
        var u3 = Avx512F.Shuffle(t1, t3, 0xEE);
        var u4 = Avx512F.Shuffle(t4, t6, 0x44);
        var u5 = Avx512F.Shuffle(t4, t6, 0xEE);
        var u6 = Avx512F.Shuffle(t5, t7, 0x44);
        var u7 = Avx512F.Shuffle(t5, t7, 0xEE);

        // Row p of the transpose: lanes 0 and 2 of u[p] and of u[4 + p] (p < 4), or lanes 1 and 3 of u[p - 4] and u[p].
        Avx512F.Shuffle4x128(u0, u4, 0x88).Store(dst);
        if (w > 1) { Avx512F.Shuffle4x128(u1, u5, 0x88).Store(dst + ldd); }
        if (w > 2) { Avx512F.Shuffle4x128(u2, u6, 0x88).Store(dst + 2 * ldd); }
        if (w > 3) { Avx512F.Shuffle4x128(u3, u7, 0x88).Store(dst + 3 * ldd); }
        if (w > 4) { Avx512F.Shuffle4x128(u0, u4, 0xDD).Store(dst + 4 * ldd); }
        if (w > 5) { Avx512F.Shuffle4x128(u1, u5, 0xDD).Store(dst + 5 * ldd); }
        if (w > 6) { Avx512F.Shuffle4x128(u2, u6, 0xDD).Store(dst + 6 * ldd); }
        if (w > 7) { Avx512F.Shuffle4x128(u3, u7, 0xDD).Store(dst + 7 * ldd); }
    }

    /// <summary>Writes the transpose of the 8x8 block at <paramref name="src"/> (row stride <paramref name="lds"/>) to <paramref name="dst"/> (row stride <paramref name="ldd"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Transpose8x8(float* src, long lds, float* dst, long ldd)
    {
        StoreTransposed8(
            Avx.LoadVector256(src), Avx.LoadVector256(src + lds), Avx.LoadVector256(src + 2 * lds), Avx.LoadVector256(src + 3 * lds),
            Avx.LoadVector256(src + 4 * lds), Avx.LoadVector256(src + 5 * lds), Avx.LoadVector256(src + 6 * lds), Avx.LoadVector256(src + 7 * lds),
            dst, ldd, 8);
    }

    /// <summary>Stores the first <paramref name="rows"/> rows of the transpose of the 8x8 matrix whose rows are r0..r7.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreTransposed8(
        Vector256<float> r0, Vector256<float> r1, Vector256<float> r2, Vector256<float> r3,
        Vector256<float> r4, Vector256<float> r5, Vector256<float> r6, Vector256<float> r7, float* dst, long ldd, int rows)
    {
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        if (rows > 1) { Avx.Store(dst + ldd, Avx.Permute2x128(u1, u5, 0x20)); }
        if (rows > 2) { Avx.Store(dst + 2 * ldd, Avx.Permute2x128(u2, u6, 0x20)); }
        if (rows > 3) { Avx.Store(dst + 3 * ldd, Avx.Permute2x128(u3, u7, 0x20)); }
        if (rows > 4) { Avx.Store(dst + 4 * ldd, Avx.Permute2x128(u0, u4, 0x31)); }
        if (rows > 5) { Avx.Store(dst + 5 * ldd, Avx.Permute2x128(u1, u5, 0x31)); }
        if (rows > 6) { Avx.Store(dst + 6 * ldd, Avx.Permute2x128(u2, u6, 0x31)); }
        if (rows > 7) { Avx.Store(dst + 7 * ldd, Avx.Permute2x128(u3, u7, 0x31)); }
    }
}
