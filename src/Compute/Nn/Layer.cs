namespace Cluster.Compute;

/// <summary>A layer of a <see cref="Sequential"/> model: an immutable description whose parameters live in the model's buffer.</summary>
public abstract class Layer
{
    private protected Layer(int inputSize, int outputSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outputSize, 1);
        InputSize = inputSize;
        OutputSize = outputSize;
    }

    /// <summary>"dense" or "dropout".</summary>
    public abstract string Kind { get; }

    /// <summary>Width of the layer's input.</summary>
    public int InputSize { get; }

    /// <summary>Width of the layer's output.</summary>
    public int OutputSize { get; }

    /// <summary>Number of trainable parameters.</summary>
    public virtual int ParameterCount => 0;

    /// <summary>Where the layer's parameters start in the model's buffer.</summary>
    public int ParameterOffset { get; internal set; }

    /// <summary>One-line description for summaries.</summary>
    public abstract string Describe();
}

/// <summary>A fully connected layer: y = f(x W + b), with W stored input-major (W[i, j] links input i to unit j), then b.</summary>
public sealed class DenseLayer : Layer
{
    /// <summary>Creates a dense layer.</summary>
    public DenseLayer(int inputSize, int units, Activation activation, InitKind init = InitKind.Auto)
        : base(inputSize, units)
    {
        Activation = activation;
        Init = init;
    }

    /// <inheritdoc/>
    public override string Kind => "dense";

    /// <summary>Number of units.</summary>
    public int Units => OutputSize;

    /// <summary>The activation applied after the affine map.</summary>
    public Activation Activation { get; }

    /// <summary>Initialisation scheme for the weights.</summary>
    public InitKind Init { get; }

    /// <summary>Number of weights (inputs x units).</summary>
    public int WeightCount => InputSize * OutputSize;

    /// <summary>Offset of the bias vector in the model's buffer.</summary>
    public int BiasOffset => ParameterOffset + WeightCount;

    /// <inheritdoc/>
    public override int ParameterCount => WeightCount + OutputSize;

    /// <inheritdoc/>
    public override string Describe() => $"Dense({Units}, {Names.Of(Activation)})";
}

/// <summary>Inverted dropout: during training each unit is kept with probability 1 - rate and scaled by 1 / (1 - rate); identity at inference.</summary>
public sealed class DropoutLayer : Layer
{
    /// <summary>Creates a dropout layer over <paramref name="size"/> units.</summary>
    public DropoutLayer(int size, float rate)
        : base(size, size)
    {
        if (!(rate >= 0f && rate < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(rate), rate, "Dropout rate must be in [0, 1).");
        }

        Rate = rate;
    }

    /// <inheritdoc/>
    public override string Kind => "dropout";

    /// <summary>Probability of dropping a unit.</summary>
    public float Rate { get; }

    /// <inheritdoc/>
    public override string Describe() => $"Dropout({Rate:0.###})";
}
