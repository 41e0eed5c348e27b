using Cluster.Compute.Kernels;

namespace Cluster.Compute.Backends;

/// <summary>
/// What the layers call for their heavy work: GEMM with every transpose backpropagation needs, and the fused
/// element-wise kernels. Backends differ in GEMM; the element-wise kernels are shared managed code unless overridden.
/// A backend instance serves one caller at a time.
/// </summary>
public abstract class ComputeBackend : IDisposable
{
    /// <summary>Short name used on the command line (managed, openblas).</summary>
    public abstract string Name { get; }

    /// <summary>Threads the backend was asked for.</summary>
    public abstract int Threads { get; }

    /// <summary>
    /// The most threads that compute one product at once: <see cref="Threads"/>, up to the processor count (threads past
    /// it only queue for a core). Peaks and fork-joins of a backend are those of this many threads.
    /// </summary>
    public abstract int Parallelism { get; }

    /// <summary>C = alpha * op(A) * op(B) + beta * C, row-major; beta = 0 never reads C.</summary>
    public abstract void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc);

    /// <summary>z = activation(z + bias) row by row, in place.</summary>
    public virtual void BiasActivation(Span<float> z, int rows, int cols, ReadOnlySpan<float> bias, Activation activation) =>
        ElementwiseKernels.BiasActivation(z, rows, cols, bias, activation);

    /// <summary>dZ = dA * f'(Z), through the activation's output.</summary>
    public virtual void ActivationBackward(ReadOnlySpan<float> output, ReadOnlySpan<float> gradOutput, Span<float> gradInput, int rows, int cols, Activation activation) =>
        ElementwiseKernels.ActivationBackward(output, gradOutput, gradInput, rows, cols, activation);

    /// <summary>Fused softmax + cross-entropy; see <see cref="ElementwiseKernels.SoftmaxCrossEntropy"/>.</summary>
    public virtual (double LossSum, int Correct) SoftmaxCrossEntropy(Span<float> logits, int rows, int cols, ReadOnlySpan<int> labels, Span<float> gradient) =>
        ElementwiseKernels.SoftmaxCrossEntropy(logits, rows, cols, labels, gradient);

    /// <summary>Column sums (bias gradients).</summary>
    public virtual void ColumnSums(ReadOnlySpan<float> matrix, int rows, int cols, Span<float> sums) =>
        ElementwiseKernels.ColumnSums(matrix, rows, cols, sums);

    /// <inheritdoc/>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases native buffers and threads.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }
}
