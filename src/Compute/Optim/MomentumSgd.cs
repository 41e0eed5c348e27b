using System.Numerics.Tensors;

namespace Cluster.Compute.Optim;

/// <summary>Gradient descent with momentum, as PyTorch defines it: v = mu * v + g; w -= lr * v.</summary>
public sealed class MomentumSgd : Optimizer
{
    private readonly float[] _velocity;

    /// <summary>Creates the optimizer with momentum <paramref name="momentum"/>.</summary>
    public MomentumSgd(int parameterCount, float momentum)
        : base(parameterCount)
    {
        if (!(momentum >= 0 && momentum < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "Momentum must be in [0, 1).");
        }

        Momentum = momentum;
        _velocity = new float[parameterCount];
    }

    /// <inheritdoc/>
    public override string Name => "momentum";

    /// <summary>The momentum coefficient.</summary>
    public float Momentum { get; }

    /// <inheritdoc/>
    public override IReadOnlyList<float[]> StateBuffers => [_velocity];

    /// <inheritdoc/>
    protected override void Update(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        TensorPrimitives.MultiplyAdd(_velocity, Momentum, gradient, _velocity);
        TensorPrimitives.MultiplyAdd(_velocity, -learningRate, parameters, parameters);
    }
}
