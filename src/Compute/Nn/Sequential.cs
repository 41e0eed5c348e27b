using System.Globalization;
using System.Text;
using Cluster.Compute.Randomness;

namespace Cluster.Compute;

/// <summary>
/// A feed-forward model: an ordered list of layers and a loss. All parameters live in one contiguous buffer
/// (<see cref="Parameters"/>), layer by layer, weights then biases; gradients use the same layout, so the cluster
/// ships either as a single tensor.
/// </summary>
public sealed class Sequential
{
    private readonly Layer[] _layers;

    /// <summary>Builds a model from layer descriptions; parameters start at zero until <see cref="Initialize"/>.</summary>
    public Sequential(int inputSize, IEnumerable<LayerSpec> layers, LossKind loss, ModelMetadata? metadata = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 1);
        InputSize = inputSize;
        Loss = loss;
        Metadata = metadata ?? new ModelMetadata();
        var built = new List<Layer>();
        var width = inputSize;
        var offset = 0;
        foreach (var spec in layers)
        {
            Layer layer = spec.Kind switch
            {
                "dense" => spec.Units >= 1
                    ? new DenseLayer(width, spec.Units, spec.Activation, spec.Init)
                    : throw new ArgumentException($"Dense layer {built.Count + 1} needs at least one unit."),
                "dropout" => new DropoutLayer(width, spec.Rate),
                _ => throw new ArgumentException($"Unknown layer kind '{spec.Kind}'; expected dense or dropout."),
            };
            layer.ParameterOffset = offset;
            offset = checked(offset + layer.ParameterCount);
            width = layer.OutputSize;
            built.Add(layer);
        }

        if (built.Count == 0 || built[^1] is not DenseLayer last)
        {
            throw new ArgumentException("A model needs at least one layer and must end with a dense layer.");
        }

        if (loss == LossKind.CrossEntropy && last.Activation != Activation.Softmax)
        {
            throw new ArgumentException($"Cross-entropy needs a softmax output layer, but the last layer uses {Names.Of(last.Activation)}; use --loss mse or binary-cross-entropy, or a softmax output.");
        }

        if (loss == LossKind.CrossEntropy && last.Units < 2)
        {
            throw new ArgumentException("Cross-entropy needs at least two output units; for one output use binary-cross-entropy with a sigmoid.");
        }

        _layers = [.. built];
        Parameters = new float[offset];
    }

    /// <summary>Width of the input.</summary>
    public int InputSize { get; }

    /// <summary>Width of the output.</summary>
    public int OutputSize => _layers[^1].OutputSize;

    /// <summary>The layers in order.</summary>
    public IReadOnlyList<Layer> Layers => _layers;

    /// <summary>The loss the model is trained with.</summary>
    public LossKind Loss { get; }

    /// <summary>Input transform and names.</summary>
    public ModelMetadata Metadata { get; set; }

    /// <summary>Every parameter, contiguous.</summary>
    public float[] Parameters { get; }

    /// <summary>Number of parameters.</summary>
    public int ParameterCount => Parameters.Length;

    /// <summary>The output layer.</summary>
    public DenseLayer OutputLayer => (DenseLayer)_layers[^1];

    /// <summary>The layer specs that rebuild this architecture.</summary>
    public IReadOnlyList<LayerSpec> Specs => [.. _layers.Select(l => l switch
    {
        DenseLayer d => LayerSpec.Dense(d.Units, d.Activation, d.Init),
        DropoutLayer p => LayerSpec.Dropout(p.Rate),
        _ => throw new InvalidOperationException(),
    })];

    /// <summary>Parses "128,64"-style hidden sizes into a dense stack ending in the output layer.</summary>
    public static List<LayerSpec> Stack(IEnumerable<int> hidden, Activation hiddenActivation, int outputs, Activation outputActivation, float dropout = 0f, InitKind init = InitKind.Auto)
    {
        var specs = new List<LayerSpec>();
        foreach (var units in hidden)
        {
            specs.Add(LayerSpec.Dense(units, hiddenActivation, init));
            if (dropout > 0)
            {
                specs.Add(LayerSpec.Dropout(dropout));
            }
        }

        specs.Add(LayerSpec.Dense(outputs, outputActivation, init));
        return specs;
    }

    /// <summary>Sets every weight from <paramref name="seed"/> (each layer from its own stream) and every bias to zero.</summary>
    public void Initialize(ulong seed)
    {
        for (var index = 0; index < _layers.Length; index++)
        {
            if (_layers[index] is not DenseLayer dense)
            {
                continue;
            }

            var rng = new Rng(CounterRandom.Hash(seed, CounterRandom.Streams.Init, (ulong)index, 0));
            var weights = Parameters.AsSpan(dense.ParameterOffset, dense.WeightCount);
            var fanIn = dense.InputSize;
            var fanOut = dense.Units;
            var init = dense.Init == InitKind.Auto
                ? (dense.Activation == Activation.Relu ? InitKind.HeUniform : InitKind.XavierUniform)
                : dense.Init;
            for (var i = 0; i < weights.Length; i++)
            {
                weights[i] = init switch
                {
                    InitKind.XavierUniform => Uniform(rng, Math.Sqrt(6.0 / (fanIn + fanOut))),
                    InitKind.XavierNormal => (float)(rng.NextGaussian() * Math.Sqrt(2.0 / (fanIn + fanOut))),
                    InitKind.HeUniform => Uniform(rng, Math.Sqrt(6.0 / fanIn)),
                    InitKind.HeNormal => (float)(rng.NextGaussian() * Math.Sqrt(2.0 / fanIn)),
                    InitKind.SmallUniform => Uniform(rng, 0.1),
                    InitKind.FanInUniform => Uniform(rng, 1 / Math.Sqrt(fanIn)),
                    _ => throw new InvalidOperationException(),
                };
            }

            var bias = Parameters.AsSpan(dense.BiasOffset, dense.Units);
            for (var i = 0; i < bias.Length; i++)
            {
                bias[i] = init == InitKind.FanInUniform ? Uniform(rng, 1 / Math.Sqrt(fanIn)) : 0f;
            }
        }
    }

    /// <summary>A deep copy (architecture, metadata, parameters).</summary>
    public Sequential Clone()
    {
        var copy = new Sequential(InputSize, Specs, Loss, Metadata);
        Parameters.CopyTo(copy.Parameters, 0);
        return copy;
    }

    /// <summary>True when <paramref name="other"/> has the same layers, sizes and loss.</summary>
    public bool SameArchitecture(Sequential other) =>
        other.InputSize == InputSize && other.Loss == Loss && other.Specs.SequenceEqual(Specs);

    /// <summary>A table of layers with output shapes and parameter counts.</summary>
    public string Summary()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{"#",-3} {"Layer",-24} {"Output",-10} {"Params",12}");
        sb.AppendLine(new string('-', 52));
        sb.AppendLine(CultureInfo.InvariantCulture, $"{"",-3} {"Input",-24} {InputSize,-10} {0,12:N0}");
        for (var i = 0; i < _layers.Length; i++)
        {
            var l = _layers[i];
            sb.AppendLine(CultureInfo.InvariantCulture, $"{i + 1,-3} {l.Describe(),-24} {l.OutputSize,-10} {l.ParameterCount,12:N0}");
        }

        sb.AppendLine(new string('-', 52));
        sb.AppendLine(CultureInfo.InvariantCulture, $"Total parameters: {ParameterCount:N0}   Loss: {Names.Of(Loss)}");
        return sb.ToString();
    }

    /// <summary>A short architecture string such as 784-128-64-10.</summary>
    public string Shape() =>
        string.Join('-', new[] { InputSize }.Concat(_layers.OfType<DenseLayer>().Select(d => d.Units)));

    private static float Uniform(Rng rng, double limit) => (float)((rng.NextDouble() * 2 - 1) * limit);
}
