using System.Runtime.InteropServices;
using Cluster.Compute.Kernels;

namespace Cluster.Compute.Backends;

/// <summary>The portable backend: packed, cache-blocked Vector512/Vector256 FMA GEMM split over a thread team.</summary>
public sealed unsafe class ManagedBackend : ComputeBackend
{
    // Below this many multiply-adds per thread, forking costs more than it saves. A fork-join takes from about 50 ns
    // to 650 ns depending on the machine (bench gemm prints it); at 64 x 32 x 32 an output layer's products at batch 64
    // (40,960 multiply-adds, about 0.5 us on one core) stay on one thread, and those at batch 256 are split.
    private const long MinWorkPerThread = 64L * 32 * 32;
    private readonly ThreadTeam? _team;
    private readonly GemmJob _job;
    // 1 while a call or Dispose holds the backend.
    private int _busy;
    private bool _disposed;

    /// <summary>
    /// Creates the backend with <paramref name="threads"/> threads (the caller's included). <paramref name="spin"/>:
    /// whether its threads spin between products (see <see cref="ThreadTeam"/>; by default, when they fit the processors).
    /// </summary>
    public ManagedBackend(int threads = 1, bool? spin = null)
        : this(threads, spin, Environment.ProcessorCount)
    {
    }

    /// <summary>The backend with the machine's processor count taken as <paramref name="processors"/> (tests split over more).</summary>
    internal ManagedBackend(int threads, bool? spin, int processors)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(processors, 1);
        Threads = threads;
        // Threads past the processor count only queue for a core: a 4-thread team on 2 cores took 3 to 4 times as long
        // per epoch as a 2-thread one (parts waiting for a core, spinning members taking it). Such threads are not
        // started; each element is computed the same way whatever the split, so the bits do not change.
        Parallelism = Math.Min(threads, processors);
        _team = Parallelism > 1 ? new ThreadTeam(Parallelism, spin) : null;
        _job = new GemmJob(Parallelism);
    }

    /// <inheritdoc/>
    public override string Name => "managed";

    /// <inheritdoc/>
    public override int Threads { get; }

    /// <inheritdoc/>
    public override int Parallelism { get; }

    /// <inheritdoc/>
    public override void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        GemmShape.Validate(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc);
        if (m == 0 || n == 0)
        {
            return;
        }

        Acquire();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            fixed (float* pa = a, pb = b, pc = c)
            {
                _job.Call = new GemmCall
                {
                    TransA = transA, TransB = transB, M = m, N = n, K = k, Alpha = alpha, Beta = beta,
                    A = pa, Lda = lda, B = pb, Ldb = ldb, C = pc, Ldc = ldc,
                };
                var work = (long)m * n * Math.Max(k, 1);
                var parts = (int)Math.Clamp(work / MinWorkPerThread, 1, Parallelism);
                if (parts == 1 || _team is null)
                {
                    _job.ExecuteWhole();
                }
                else
                {
                    _job.Partition(parts);
                    _team.Run(_job, parts);
                }
            }
        }
        finally
        {
            Release();
        }
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        Acquire();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _team?.Dispose();
            _job.Free();
        }
        finally
        {
            Release();
        }
    }

    /// <summary>
    /// Takes the backend for one call (its job, packing buffers and team serve one call at a time). Uncontended, as in
    /// training, it is one compare-exchange: about 5 ns against about 17 ns for a <see cref="Lock"/>, whose owner
    /// check reads the thread's id from thread-local storage, on a product that can take 0.5 us. A second caller spins,
    /// then yields.
    /// </summary>
    private void Acquire()
    {
        if (Interlocked.CompareExchange(ref _busy, 1, 0) == 0)
        {
            return;
        }

        var spinner = default(SpinWait);
        while (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            spinner.SpinOnce();
        }
    }

    /// <summary>Gives the backend back after <see cref="Acquire"/>; the call's writes are visible before it is free.</summary>
    private void Release() => Volatile.Write(ref _busy, 0);

    private sealed class GemmJob : ITeamWork
    {
        private readonly nint[] _packA;
        private readonly nint[] _packB;
        private int _parts;
        private bool _splitColumns;
        private int _stride;

        public GemmJob(int threads)
        {
            _packA = new nint[threads];
            _packB = new nint[threads];
            for (var t = 0; t < threads; t++)
            {
                _packA[t] = (nint)NativeMemory.AlignedAlloc(PackedGemm.PackASize * sizeof(float), 64);
                _packB[t] = (nint)NativeMemory.AlignedAlloc(PackedGemm.PackBSize * sizeof(float), 64);
            }
        }

        public GemmCall Call;

        public void Partition(int parts)
        {
            _parts = parts;
            // Split whichever dimension has more micro-tiles, in whole tiles, so each element has one owner and the
            // result does not depend on the thread count.
            // A narrow C (an output layer) is computed in 16-row tiles along M, so it is split in those.
            var narrow = NarrowGemm.Applies(Call.N);
            var rowTile = narrow ? NarrowGemm.Rows : PackedGemm.Mr;
            var columnTiles = narrow ? 1 : (Call.N + PackedGemm.Nr - 1) / PackedGemm.Nr;
            var rowTiles = (Call.M + rowTile - 1) / rowTile;
            _splitColumns = columnTiles >= rowTiles;
            var tiles = _splitColumns ? columnTiles : rowTiles;
            var tileSize = _splitColumns ? PackedGemm.Nr : rowTile;
            _stride = (tiles + parts - 1) / parts * tileSize;
        }

        public void Execute(int part)
        {
            if (part >= _parts)
            {
                return;
            }

            var start = part * _stride;
            var packA = (float*)_packA[part];
            var packB = (float*)_packB[part];
            if (_splitColumns)
            {
                PackedGemm.Compute(Call, 0, Call.M, Math.Min(start, Call.N), Math.Min(start + _stride, Call.N), packA, packB);
            }
            else
            {
                // Even parts walk their rows downwards, odd parts upwards, so the two threads of a 2-way split start
                // side by side and move apart. When both walked upwards, the first thread's stores (and the lines
                // fetched ahead of them) ran into the second's rows and took them from its core: a 256x64x10 product
                // took 1.54 us on 2 threads against 1.17 us like this. Each element is computed the same way.
                PackedGemm.Compute(Call, Math.Min(start, Call.M), Math.Min(start + _stride, Call.M), 0, Call.N, packA, packB, descending: part % 2 == 0 && _parts > 1);
            }
        }

        /// <summary>The whole product on the calling thread: what <see cref="Execute"/> computes with one part.</summary>
        public void ExecuteWhole() => PackedGemm.Compute(Call, 0, Call.M, 0, Call.N, (float*)_packA[0], (float*)_packB[0]);

        public void Free()
        {
            for (var t = 0; t < _packA.Length; t++)
            {
                NativeMemory.AlignedFree((void*)_packA[t]);
                NativeMemory.AlignedFree((void*)_packB[t]);
                _packA[t] = 0;
                _packB[t] = 0;
            }
        }
    }
}
