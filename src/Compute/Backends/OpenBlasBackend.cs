using System.Runtime.InteropServices;
using Cluster.Compute.Kernels;

namespace Cluster.Compute.Backends;

/// <summary>GEMM through the system's OpenBLAS (<c>cblas_sgemm</c>), loaded at run time.</summary>
public sealed unsafe class OpenBlasBackend : ComputeBackend
{
    private const int RowMajor = 101;
    private const int NoTrans = 111;
    private const int Trans = 112;
    private static readonly string[] LibraryNames = ["libopenblas.so.0", "libopenblas.so", "libopenblas", "openblas"];
    private readonly nint _library;
    private readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> _sgemm;

    private OpenBlasBackend(nint library, nint sgemm, int threads)
    {
        _library = library;
        _sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm;
        Threads = threads;
        // As the managed backend: threads past the processor count only queue for a core (4 OpenBLAS threads on 2 cores
        // took 0.65 s per MNIST epoch against 0.47 s with 2).
        Parallelism = Math.Min(threads, Environment.ProcessorCount);
        if (NativeLibrary.TryGetExport(library, "openblas_set_num_threads", out var setThreads))
        {
            ((delegate* unmanaged<int, void>)setThreads)(Parallelism);
        }
    }

    /// <summary>The threads OpenBLAS is told to use: <see cref="Threads"/>, up to the processor count.</summary>
    public override int Parallelism { get; }

    /// <summary>The library's own thread count (openblas_get_num_threads), or null when it does not say.</summary>
    internal int? LibraryThreads => NativeLibrary.TryGetExport(_library, "openblas_get_num_threads", out var get) ? ((delegate* unmanaged<int>)get)() : null;

    /// <inheritdoc/>
    public override string Name => "openblas";

    /// <inheritdoc/>
    public override int Threads { get; }

    /// <summary>Loads OpenBLAS, or returns null with the reason when it cannot be found.</summary>
    public static OpenBlasBackend? TryCreate(int threads, out string? reason)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        foreach (var name in LibraryNames)
        {
            if (NativeLibrary.TryLoad(name, typeof(OpenBlasBackend).Assembly, null, out var handle))
            {
                if (NativeLibrary.TryGetExport(handle, "cblas_sgemm", out var sgemm))
                {
                    reason = null;
                    return new OpenBlasBackend(handle, sgemm, threads);
                }

                NativeLibrary.Free(handle);
            }
        }

        reason = "OpenBLAS (libopenblas.so.0) was not found; install it (Debian: apt-get install libopenblas0) or use --backend managed.";
        return null;
    }

    /// <inheritdoc/>
    public override void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        GemmShape.Validate(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc);
        if (m == 0 || n == 0)
        {
            return;
        }

        // BLAS requires leading dimensions of at least 1 even for empty operands.
        lda = Math.Max(lda, 1);
        ldb = Math.Max(ldb, 1);
        if (beta == 0)
        {
            // cblas treats beta = 0 as "do not read C" too, but NaN garbage in C must not leak when k = 0.
            for (var i = 0; i < m; i++)
            {
                c.Slice(i * ldc, n).Clear();
            }
        }

        fixed (float* pa = a, pb = b, pc = c)
        {
            _sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
        }
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        // The library stays loaded: OpenBLAS's own threads may still reference it, and unloading it is not safe.
        _ = _library;
    }
}
