namespace Cluster.Compute.Kernels;

/// <summary>Plain scalar versions of every kernel: the definitions the fast paths are tested against.</summary>
public static class ReferenceKernels
{
    /// <summary>C = alpha * op(A) * op(B) + beta * C, row-major, accumulated in double.</summary>
    public static void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        GemmShape.Validate(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc);
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double sum = 0;
                for (var p = 0; p < k; p++)
                {
                    var av = transA ? a[p * lda + i] : a[i * lda + p];
                    var bv = transB ? b[j * ldb + p] : b[p * ldb + j];
                    sum += (double)av * bv;
                }

                var prior = beta == 0 ? 0 : beta * c[i * ldc + j];
                c[i * ldc + j] = (float)(alpha * sum + prior);
            }
        }
    }

    /// <summary>Adds the bias to every row and applies the activation, in place.</summary>
    public static void BiasActivation(Span<float> z, int rows, int cols, ReadOnlySpan<float> bias, Activation activation)
    {
        for (var r = 0; r < rows; r++)
        {
            var row = z.Slice(r * cols, cols);
            for (var j = 0; j < cols; j++)
            {
                row[j] += bias[j];
            }

            ApplyActivation(row, activation);
        }
    }

    /// <summary>Activation of one row.</summary>
    public static void ApplyActivation(Span<float> row, Activation activation)
    {
        switch (activation)
        {
            case Activation.Softmax:
                var max = float.NegativeInfinity;
                foreach (var v in row)
                {
                    max = Math.Max(max, v);
                }

                double sum = 0;
                for (var j = 0; j < row.Length; j++)
                {
                    row[j] = MathF.Exp(row[j] - max);
                    sum += row[j];
                }

                for (var j = 0; j < row.Length; j++)
                {
                    row[j] = (float)(row[j] / sum);
                }

                break;
            default:
                for (var j = 0; j < row.Length; j++)
                {
                    row[j] = Scalar(row[j], activation);
                }

                break;
        }
    }

    /// <summary>An element-wise activation of one value.</summary>
    public static float Scalar(float x, Activation activation) => activation switch
    {
        Activation.Identity => x,
        Activation.Step => x >= 0 ? 1f : 0f,
        Activation.Sigmoid => 1f / (1f + MathF.Exp(-x)),
        Activation.Tanh => MathF.Tanh(x),
        Activation.Relu => x > 0 || float.IsNaN(x) ? x : 0f,
        _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "Softmax is not element-wise."),
    };

    /// <summary>dZ from dA and the activation's output A, row by row.</summary>
    public static void ActivationBackward(ReadOnlySpan<float> output, ReadOnlySpan<float> gradOutput, Span<float> gradInput, int rows, int cols, Activation activation)
    {
        for (var r = 0; r < rows; r++)
        {
            var y = output.Slice(r * cols, cols);
            var dy = gradOutput.Slice(r * cols, cols);
            var dz = gradInput.Slice(r * cols, cols);
            if (activation == Activation.Softmax)
            {
                double dot = 0;
                for (var j = 0; j < cols; j++)
                {
                    dot += (double)dy[j] * y[j];
                }

                for (var j = 0; j < cols; j++)
                {
                    dz[j] = (float)(y[j] * (dy[j] - dot));
                }

                continue;
            }

            for (var j = 0; j < cols; j++)
            {
                dz[j] = activation switch
                {
                    Activation.Identity => dy[j],
                    Activation.Step => 0f,
                    Activation.Sigmoid => dy[j] * y[j] * (1f - y[j]),
                    Activation.Tanh => dy[j] * (1f - y[j] * y[j]),
                    Activation.Relu => y[j] > 0 ? dy[j] : 0f,
                    _ => throw new ArgumentOutOfRangeException(nameof(activation)),
                };
            }
        }
    }

    /// <summary>Softmax cross-entropy of logits rows against labels: probabilities and dZ = p - onehot; returns the loss sum and correct count.</summary>
    public static (double LossSum, int Correct) SoftmaxCrossEntropy(Span<float> logits, int rows, int cols, ReadOnlySpan<int> labels, Span<float> gradient)
    {
        double loss = 0;
        var correct = 0;
        for (var r = 0; r < rows; r++)
        {
            var z = logits.Slice(r * cols, cols);
            var max = float.NegativeInfinity;
            var arg = 0;
            for (var j = 0; j < cols; j++)
            {
                if (z[j] > max)
                {
                    max = z[j];
                    arg = j;
                }
            }

            double sum = 0;
            for (var j = 0; j < cols; j++)
            {
                sum += Math.Exp(z[j] - max);
            }

            var label = labels[r];
            loss += Math.Log(sum) - (z[label] - max);
            correct += arg == label ? 1 : 0;
            for (var j = 0; j < cols; j++)
            {
                var p = (float)(Math.Exp(z[j] - max) / sum);
                z[j] = p;
                gradient[r * cols + j] = p - (j == label ? 1f : 0f);
            }
        }

        return (loss, correct);
    }

    /// <summary>Column sums of a rows x cols matrix into <paramref name="sums"/> (overwritten).</summary>
    public static void ColumnSums(ReadOnlySpan<float> matrix, int rows, int cols, Span<float> sums)
    {
        for (var j = 0; j < cols; j++)
        {
            double s = 0;
            for (var r = 0; r < rows; r++)
            {
                s += matrix[r * cols + j];
            }

            sums[j] = (float)s;
        }
    }
}
