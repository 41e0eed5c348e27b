namespace Cluster.Compute.Optim;

/// <summary>
/// Updates parameters from an averaged gradient. Its state (velocities, moments, step count) lives only where the
/// optimizer runs: the single-node trainer or the cluster's coordinator.
/// </summary>
public abstract class Optimizer
{
    /// <summary>Creates an optimizer for <paramref name="parameterCount"/> parameters.</summary>
    protected Optimizer(int parameterCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(parameterCount);
        ParameterCount = parameterCount;
    }

    /// <summary>sgd, momentum or adam.</summary>
    public abstract string Name { get; }

    /// <summary>Parameters this optimizer updates.</summary>
    public int ParameterCount { get; }

    /// <summary>Updates applied so far.</summary>
    public long Steps { get; protected set; }

    /// <summary>Applies one update with learning rate <paramref name="learningRate"/>.</summary>
    public void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        if (parameters.Length != ParameterCount || gradient.Length != ParameterCount)
        {
            throw new ArgumentException($"The optimizer holds {ParameterCount} parameters; got {parameters.Length} parameters and {gradient.Length} gradients.");
        }

        Steps++;
        Update(parameters, gradient, learningRate);
    }

    /// <summary>The update rule.</summary>
    protected abstract void Update(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate);

    /// <summary>State buffers, for checkpoints (empty for plain SGD).</summary>
    public abstract IReadOnlyList<float[]> StateBuffers { get; }

    /// <summary>Restores the step count after the state buffers were filled.</summary>
    public void RestoreSteps(long steps) => Steps = steps;

    /// <summary>Creates an optimizer by name.</summary>
    public static Optimizer Create(string name, int parameterCount, float momentum = 0.9f, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f) =>
        name.ToLowerInvariant() switch
        {
            "sgd" => new Sgd(parameterCount),
            "momentum" => new MomentumSgd(parameterCount, momentum),
            "adam" => new Adam(parameterCount, beta1, beta2, epsilon),
            _ => throw new FormatException($"Unknown optimizer '{name}'; expected sgd, momentum or adam."),
        };
}
