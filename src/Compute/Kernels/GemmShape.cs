using System.Runtime.CompilerServices;

namespace Cluster.Compute.Kernels;

/// <summary>Checks of GEMM arguments shared by every backend (row-major, BLAS semantics).</summary>
public static class GemmShape
{
    /// <summary>Throws when a span is too short for the matrix it is said to hold.</summary>
    public static void Validate(bool transA, bool transB, int m, int n, int k, int aLength, int lda, int bLength, int ldb, int cLength, int ldc)
    {
        if (m < 0 || n < 0 || k < 0)
        {
            ThrowShape($"GEMM sizes must not be negative (m={m}, n={n}, k={k}).");
        }

        var (aRows, aCols) = transA ? (k, m) : (m, k);
        var (bRows, bCols) = transB ? (n, k) : (k, n);
        CheckMatrix("A", aRows, aCols, aLength, lda);
        CheckMatrix("B", bRows, bCols, bLength, ldb);
        CheckMatrix("C", m, n, cLength, ldc);
    }

    private static void CheckMatrix(string name, int rows, int cols, int length, int ld)
    {
        if (rows == 0 || cols == 0)
        {
            return;
        }

        if (ld < cols || (long)(rows - 1) * ld + cols > length)
        {
            ThrowMatrix(name, rows, cols, length, ld);
        }
    }

    // Out of line, so the checks that pass on every call stay a few instructions long.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowMatrix(string name, int rows, int cols, int length, int ld)
    {
        if (ld < cols)
        {
            ThrowShape($"GEMM {name}: leading dimension {ld} is smaller than its {cols} columns.");
        }

        ThrowShape($"GEMM {name}: {rows}x{cols} with leading dimension {ld} needs {(long)(rows - 1) * ld + cols} elements, got {length}.");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowShape(string message) => throw new ArgumentException(message);
}
