using Cluster.Compute.Randomness;

namespace Cluster.Compute.Classic;

/// <summary>
/// A single sigmoid neuron y = sigma(w.x + b) trained by the (generalised) delta rule
/// w += lr (t - y) y (1 - y) x, the gradient step on the squared error, sample by sample.
/// </summary>
public sealed class LogisticNeuron
{
    private readonly float[] _weights;

    /// <summary>Creates a neuron for <paramref name="inputs"/> inputs, weights from <paramref name="seed"/> in [-0.1, 0.1].</summary>
    public LogisticNeuron(int inputs, ulong seed = 0)
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

    /// <summary>The bias.</summary>
    public float Bias { get; private set; }

    /// <summary>The neuron's output in (0, 1).</summary>
    public float Output(ReadOnlySpan<float> x)
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

        return 1f / (1f + MathF.Exp(-sum));
    }

    /// <summary>Class 1 when the output is at least 0.5.</summary>
    public int Predict(ReadOnlySpan<float> x) => Output(x) >= 0.5f ? 1 : 0;

    /// <summary>Runs <paramref name="epochs"/> passes of the delta rule; returns the mean squared error after each.</summary>
    public IReadOnlyList<double> Fit(float[][] inputs, float[] targets, float learningRate = 0.5f, int epochs = 1000, Action<int, double>? onEpoch = null)
    {
        if (inputs.Length != targets.Length)
        {
            throw new ArgumentException($"{inputs.Length} samples but {targets.Length} targets.");
        }

        var history = new List<double>();
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            for (var s = 0; s < inputs.Length; s++)
            {
                var y = Output(inputs[s]);
                var delta = (targets[s] - y) * y * (1 - y);
                for (var i = 0; i < _weights.Length; i++)
                {
                    _weights[i] += learningRate * delta * inputs[s][i];
                }

                Bias += learningRate * delta;
            }

            double mse = 0;
            for (var s = 0; s < inputs.Length; s++)
            {
                var e = targets[s] - Output(inputs[s]);
                mse += e * e;
            }

            mse /= inputs.Length;
            history.Add(mse);
            onEpoch?.Invoke(epoch + 1, mse);
        }

        return history;
    }
}
