using Cluster.Compute.Randomness;

namespace Cluster.Compute.Classic;

/// <summary>
/// Rosenblatt's perceptron: a single threshold unit y = step(w.x + b) trained by the perceptron rule
/// w += lr (t - y) x, sample by sample. It converges on linearly separable data (OR) and never on XOR.
/// </summary>
public sealed class Perceptron
{
    private readonly float[] _weights;

    /// <summary>Creates a perceptron for <paramref name="inputs"/> inputs, weights from <paramref name="seed"/> in [-0.1, 0.1].</summary>
    public Perceptron(int inputs, ulong seed = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputs, 1);
        _weights = new float[inputs];
        var rng = new Rng(CounterRandom.Hash(seed, CounterRandom.Streams.Init, 0, 0));
        for (var i = 0; i < inputs; i++)
        {
            _weights[i] = (rng.NextFloat() * 2 - 1) * 0.1f;
        }
    }

    /// <summary>The weights.</summary>
    public IReadOnlyList<float> Weights => _weights;

    /// <summary>The bias (threshold with its sign flipped).</summary>
    public float Bias { get; private set; }

    /// <summary>0 or 1 for one sample.</summary>
    public int Predict(ReadOnlySpan<float> x)
    {
        if (x.Length != _weights.Length)
        {
            throw new ArgumentException($"Expected {_weights.Length} inputs, got {x.Length}.", nameof(x));
        }

        var sum = Bias;
        for (var i = 0; i < x.Length; i++)
        {
            sum += _weights[i] * x[i];
        }

        return sum >= 0 ? 1 : 0;
    }

    /// <summary>
    /// Runs up to <paramref name="maxEpochs"/> passes of the perceptron rule over the samples (targets 0 or 1) and
    /// returns the number of samples misclassified in each pass, as they came (each one an update, so they are not the
    /// mistakes of the weights at the pass's end); stops after the first pass without error.
    /// </summary>
    public IReadOnlyList<int> Fit(float[][] inputs, int[] targets, float learningRate = 0.1f, int maxEpochs = 100, Action<int, int>? onEpoch = null)
    {
        if (inputs.Length != targets.Length)
        {
            throw new ArgumentException($"{inputs.Length} samples but {targets.Length} targets.");
        }

        var errors = new List<int>();
        for (var epoch = 0; epoch < maxEpochs; epoch++)
        {
            var wrong = 0;
            for (var s = 0; s < inputs.Length; s++)
            {
                if (targets[s] is not (0 or 1))
                {
                    throw new ArgumentException($"Perceptron targets are 0 or 1; sample {s} has {targets[s]}.");
                }

                var delta = targets[s] - Predict(inputs[s]);
                if (delta == 0)
                {
                    continue;
                }

                wrong++;
                for (var i = 0; i < _weights.Length; i++)
                {
                    _weights[i] += learningRate * delta * inputs[s][i];
                }

                Bias += learningRate * delta;
            }

            errors.Add(wrong);
            onEpoch?.Invoke(epoch + 1, wrong);
            if (wrong == 0)
            {
                break;
            }
        }

        return errors;
    }
}
