using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Cluster.Compute.Kernels;

/// <summary>
/// Fused element-wise kernels of the network: bias + activation, activation backward, softmax + cross-entropy and
/// column sums. Plain element-wise work goes through TensorPrimitives; the loops here exist only where they fuse passes.
/// </summary>
public static class ElementwiseKernels
{
    /// <summary>z[r, :] = activation(z[r, :] + bias) for every row, in place.</summary>
    public static void BiasActivation(Span<float> z, int rows, int cols, ReadOnlySpan<float> bias, Activation activation)
    {
        CheckMatrix(z.Length, rows, cols, nameof(z));
        if (bias.Length != cols)
        {
            ThrowLength(nameof(bias), cols, bias.Length);
        }

        if (cols == 0)
        {
            return;
        }

        for (var r = 0; r < rows; r++)
        {
            var row = z.Slice(r * cols, cols);
            switch (activation)
            {
                case Activation.Relu:
                    AddBiasRelu(row, bias);
                    break;
                case Activation.Identity:
                    TensorPrimitives.Add(row, bias, row);
                    break;
                case Activation.Sigmoid:
                    TensorPrimitives.Add(row, bias, row);
                    TensorPrimitives.Sigmoid(row, row);
                    break;
                case Activation.Tanh:
                    TensorPrimitives.Add(row, bias, row);
                    TensorPrimitives.Tanh(row, row);
                    break;
                case Activation.Step:
                    TensorPrimitives.Add(row, bias, row);
                    for (var j = 0; j < row.Length; j++)
                    {
                        row[j] = row[j] >= 0 ? 1f : 0f;
                    }

                    break;
                case Activation.Softmax:
                    TensorPrimitives.Add(row, bias, row);
                    Softmax(row);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(activation), activation, null);
            }
        }
    }

    /// <summary>Numerically stable softmax of one row, in place.</summary>
    public static void Softmax(Span<float> row)
    {
        if (row.IsEmpty)
        {
            return;
        }

        var max = TensorPrimitives.Max(row);
        TensorPrimitives.Subtract(row, max, row);
        TensorPrimitives.Exp(row, row);
        var sum = TensorPrimitives.Sum(row);
        TensorPrimitives.Multiply(row, 1f / sum, row);
    }

    /// <summary>dZ = dA * f'(Z), expressed through the activation's output A, for rows x cols.</summary>
    public static void ActivationBackward(ReadOnlySpan<float> output, ReadOnlySpan<float> gradOutput, Span<float> gradInput, int rows, int cols, Activation activation)
    {
        CheckMatrix(output.Length, rows, cols, nameof(output));
        CheckMatrix(gradOutput.Length, rows, cols, nameof(gradOutput));
        CheckMatrix(gradInput.Length, rows, cols, nameof(gradInput));
        var count = rows * cols;
        if (count == 0)
        {
            return;
        }

        var y = output[..count];
        var dy = gradOutput[..count];
        var dz = gradInput[..count];
        switch (activation)
        {
            case Activation.Identity:
                dy.CopyTo(dz);
                break;
            case Activation.Step:
                dz.Clear();
                break;
            case Activation.Relu:
                ReluBackward(y, dy, dz);
                break;
            case Activation.Sigmoid:
                // dz = dy * y * (1 - y)
                TensorPrimitives.Subtract(1f, y, dz);
                TensorPrimitives.Multiply(dz, y, dz);
                TensorPrimitives.Multiply(dz, dy, dz);
                break;
            case Activation.Tanh:
                // dz = dy * (1 - y*y)
                TensorPrimitives.Multiply(y, y, dz);
                TensorPrimitives.Subtract(1f, dz, dz);
                TensorPrimitives.Multiply(dz, dy, dz);
                break;
            case Activation.Softmax:
                for (var r = 0; r < rows; r++)
                {
                    var yr = y.Slice(r * cols, cols);
                    var dyr = dy.Slice(r * cols, cols);
                    var dot = TensorPrimitives.Dot(yr, dyr);
                    var dzr = dz.Slice(r * cols, cols);
                    TensorPrimitives.Subtract(dyr, dot, dzr);
                    TensorPrimitives.Multiply(dzr, yr, dzr);
                }

                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(activation), activation, null);
        }
    }

    /// <summary>
    /// Fused softmax + categorical cross-entropy: turns logits rows into probabilities in place, writes dZ = p - onehot
    /// (per sample, not averaged), and returns the summed loss and the number of rows whose arg-max is the label.
    /// </summary>
    public static (double LossSum, int Correct) SoftmaxCrossEntropy(Span<float> logits, int rows, int cols, ReadOnlySpan<int> labels, Span<float> gradient)
    {
        CheckMatrix(logits.Length, rows, cols, nameof(logits));
        CheckMatrix(gradient.Length, rows, cols, nameof(gradient));
        if (labels.Length < rows)
        {
            ThrowLength(nameof(labels), rows, labels.Length);
        }

        double loss = 0;
        var correct = 0;
        for (var r = 0; r < rows; r++)
        {
            var z = logits.Slice(r * cols, cols);
            var label = labels[r];
            if ((uint)label >= (uint)cols)
            {
                throw new ArgumentException($"Label {label} of row {r} is outside 0..{cols - 1}.", nameof(labels));
            }

            var arg = TensorPrimitives.IndexOfMax(z);
            var max = z[arg];
            var shiftedLabel = z[label] - max;
            TensorPrimitives.Subtract(z, max, z);
            TensorPrimitives.Exp(z, z);
            var sum = TensorPrimitives.Sum(z);
            loss += Math.Log(sum) - shiftedLabel;
            correct += arg == label ? 1 : 0;
            TensorPrimitives.Multiply(z, 1f / sum, z);
            var g = gradient.Slice(r * cols, cols);
            z.CopyTo(g);
            g[label] -= 1f;
        }

        return (loss, correct);
    }

    /// <summary>sums[j] = sum over rows of matrix[r, j] (overwrites <paramref name="sums"/>).</summary>
    public static void ColumnSums(ReadOnlySpan<float> matrix, int rows, int cols, Span<float> sums)
    {
        CheckMatrix(matrix.Length, rows, cols, nameof(matrix));
        if (sums.Length != cols)
        {
            ThrowLength(nameof(sums), cols, sums.Length);
        }

        sums.Clear();
        for (var r = 0; r < rows; r++)
        {
            TensorPrimitives.Add(sums, matrix.Slice(r * cols, cols), sums);
        }
    }

    /// <summary>
    /// values[i] /= divisor for every i, in place, and returns the sum of squares of the results: the mean gradient
    /// and its squared norm in one pass over the buffer instead of two. Each value is divided exactly as
    /// TensorPrimitives.Divide divides it; the sum is accumulated in float, in an order of its own.
    /// </summary>
    public static double DivideAndSumSquares(Span<float> values, float divisor)
    {
        ref var v = ref MemoryMarshal.GetReference(values);
        var n = values.Length;
        var i = 0;
        var sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= 2 * Vector512<float>.Count)
        {
            var d = Vector512.Create(divisor);
            Vector512<float> s0 = default, s1 = default;
            for (; i <= n - 2 * Vector512<float>.Count; i += 2 * Vector512<float>.Count)
            {
                var a = Vector512.LoadUnsafe(ref v, (nuint)i) / d;
                var b = Vector512.LoadUnsafe(ref v, (nuint)(i + Vector512<float>.Count)) / d;
                a.StoreUnsafe(ref v, (nuint)i);
                b.StoreUnsafe(ref v, (nuint)(i + Vector512<float>.Count));
                s0 = Vector512.MultiplyAddEstimate(a, a, s0);
                s1 = Vector512.MultiplyAddEstimate(b, b, s1);
            }

            sum += Vector512.Sum(s0 + s1);
        }

        if (Vector256.IsHardwareAccelerated && n - i >= Vector256<float>.Count)
        {
            var d = Vector256.Create(divisor);
            Vector256<float> s0 = default;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var a = Vector256.LoadUnsafe(ref v, (nuint)i) / d;
                a.StoreUnsafe(ref v, (nuint)i);
                s0 = Vector256.MultiplyAddEstimate(a, a, s0);
            }

            sum += Vector256.Sum(s0);
        }

        for (; i < n; i++)
        {
            var a = Unsafe.Add(ref v, i) / divisor;
            Unsafe.Add(ref v, i) = a;
            sum = MathF.FusedMultiplyAdd(a, a, sum);
        }

        return sum;
    }

    /// <summary>
    /// destination[i] = x[i] + y[i], as TensorPrimitives.Add computes it, but with ordinary stores: TensorPrimitives
    /// writes an output of more than 256 KB with non-temporal stores, which send it past the caches, and the
    /// coordinator reads its sum of the workers' gradients again at once. The destination may be <paramref name="x"/>
    /// or <paramref name="y"/> itself, not a shifted overlap of either.
    /// </summary>
    public static void Add(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> destination)
    {
        var n = x.Length;
        if (y.Length != n || destination.Length != n)
        {
            throw new ArgumentException($"x, y and destination must have one length; got {n}, {y.Length} and {destination.Length}.", nameof(destination));
        }

        if ((x.Overlaps(destination, out var xOffset) && xOffset != 0) || (y.Overlaps(destination, out var yOffset) && yOffset != 0))
        {
            throw new ArgumentException("The destination overlaps an input at a shifted position.", nameof(destination));
        }

        ref var xr = ref MemoryMarshal.GetReference(x);
        ref var yr = ref MemoryMarshal.GetReference(y);
        ref var dr = ref MemoryMarshal.GetReference(destination);
        var i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                (Vector512.LoadUnsafe(ref xr, (nuint)i) + Vector512.LoadUnsafe(ref yr, (nuint)i)).StoreUnsafe(ref dr, (nuint)i);
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                (Vector256.LoadUnsafe(ref xr, (nuint)i) + Vector256.LoadUnsafe(ref yr, (nuint)i)).StoreUnsafe(ref dr, (nuint)i);
            }
        }

        for (; i < n; i++)
        {
            Unsafe.Add(ref dr, i) = Unsafe.Add(ref xr, i) + Unsafe.Add(ref yr, i);
        }
    }

    private static void AddBiasRelu(Span<float> row, ReadOnlySpan<float> bias)
    {
        ref var z = ref MemoryMarshal.GetReference(row);
        ref var b = ref MemoryMarshal.GetReference(bias);
        var n = row.Length;
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.LoadUnsafe(ref z, (nuint)i) + Vector256.LoadUnsafe(ref b, (nuint)i);
                // Keeps NaN (v != v) so a diverging run shows it instead of hiding it behind zeros.
                var keep = Vector256.GreaterThan(v, Vector256<float>.Zero) | ~Vector256.Equals(v, v);
                (v & keep).StoreUnsafe(ref z, (nuint)i);
            }
        }

        if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                var v = Vector128.LoadUnsafe(ref z, (nuint)i) + Vector128.LoadUnsafe(ref b, (nuint)i);
                var keep = Vector128.GreaterThan(v, Vector128<float>.Zero) | ~Vector128.Equals(v, v);
                (v & keep).StoreUnsafe(ref z, (nuint)i);
            }
        }

        for (; i < n; i++)
        {
            var v = Unsafe.Add(ref z, i) + Unsafe.Add(ref b, i);
            Unsafe.Add(ref z, i) = v > 0 || float.IsNaN(v) ? v : 0f;
        }
    }

    private static void ReluBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dz)
    {
        ref var yr = ref MemoryMarshal.GetReference(y);
        ref var dyr = ref MemoryMarshal.GetReference(dy);
        ref var dzr = ref MemoryMarshal.GetReference(dz);
        var n = y.Length;
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var mask = Vector256.GreaterThan(Vector256.LoadUnsafe(ref yr, (nuint)i), Vector256<float>.Zero);
                (Vector256.LoadUnsafe(ref dyr, (nuint)i) & mask).StoreUnsafe(ref dzr, (nuint)i);
            }
        }

        if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                var mask = Vector128.GreaterThan(Vector128.LoadUnsafe(ref yr, (nuint)i), Vector128<float>.Zero);
                (Vector128.LoadUnsafe(ref dyr, (nuint)i) & mask).StoreUnsafe(ref dzr, (nuint)i);
            }
        }

        for (; i < n; i++)
        {
            Unsafe.Add(ref dzr, i) = Unsafe.Add(ref yr, i) > 0 ? Unsafe.Add(ref dyr, i) : 0f;
        }
    }

    private static void CheckMatrix(int length, int rows, int cols, string name)
    {
        if (rows < 0 || cols < 0 || (long)rows * cols > length)
        {
            throw new ArgumentException($"{name} holds {length} elements, fewer than {rows}x{cols}.", name);
        }
    }

    private static void ThrowLength(string name, int expected, int actual) =>
        throw new ArgumentException($"{name} must hold {expected} elements, got {actual}.", name);
}
