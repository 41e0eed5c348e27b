using System.Numerics.Tensors;

namespace Cluster.Compute.Optim;

/// <summary>
/// L1 and L2 penalties on the weights of dense layers (biases are not penalised): adds l2 * w + l1 * sign(w) to the
/// averaged gradient, the gradient of (l2 / 2) * |w|^2 + l1 * |w|_1.
/// </summary>
public static class Regularization
{
    /// <summary>Adds the penalty gradients to <paramref name="gradient"/>.</summary>
    public static void Apply(Sequential model, ReadOnlySpan<float> parameters, Span<float> gradient, float l1, float l2)
    {
        if (l1 == 0 && l2 == 0)
        {
            return;
        }

        var layers = model.Layers;
        for (var l = 0; l < layers.Count; l++)
        {
            if (layers[l] is not DenseLayer d)
            {
                continue;
            }

            var w = parameters.Slice(d.ParameterOffset, d.WeightCount);
            var g = gradient.Slice(d.ParameterOffset, d.WeightCount);
            if (l2 != 0)
            {
                TensorPrimitives.MultiplyAdd(w, l2, g, g);
            }

            if (l1 != 0)
            {
                for (var i = 0; i < w.Length; i++)
                {
                    g[i] += l1 * MathF.Sign(w[i]);
                }
            }
        }
    }

    /// <summary>The penalty value for the given weights.</summary>
    public static double Penalty(Sequential model, ReadOnlySpan<float> parameters, float l1, float l2)
    {
        double sum = 0;
        foreach (var layer in model.Layers)
        {
            if (layer is DenseLayer d)
            {
                var w = parameters.Slice(d.ParameterOffset, d.WeightCount);
                sum += 0.5 * l2 * TensorPrimitives.Dot(w, w) + l1 * TensorPrimitives.SumOfMagnitudes(w);
            }
        }

        return sum;
    }
}
