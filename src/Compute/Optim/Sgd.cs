using System.Numerics.Tensors;

namespace Cluster.Compute.Optim;

/// <summary>Plain gradient descent: w -= lr * g. Full-batch, mini-batch and stochastic descent differ only in batch size.</summary>
public sealed class Sgd(int parameterCount) : Optimizer(parameterCount)
{
    /// <inheritdoc/>
    public override string Name => "sgd";

    /// <inheritdoc/>
    public override IReadOnlyList<float[]> StateBuffers => [];

    /// <inheritdoc/>
    protected override void Update(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate) =>
        TensorPrimitives.MultiplyAdd(gradient, -learningRate, parameters, parameters);
}
