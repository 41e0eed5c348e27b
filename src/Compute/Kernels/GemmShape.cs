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

        if (ld < cols)
        {
            ThrowShape($"GEMM {name}: leading dimension {ld} is smaller than its {cols} columns.");
        }

        if ((long)(rows - 1) * ld + cols > length)
        {
            ThrowShape($"GEMM {name}: {rows}x{cols} with leading dimension {ld} needs {(long)(rows - 1) * ld + cols} elements, got {length}.");
        }
    }

    private static void ThrowShape(string message) => throw new ArgumentException(message);
}
