using System.Numerics.Tensors;
using Cluster.Compute.Backends;
using Cluster.Compute.Data;

namespace Cluster.Compute;

/// <summary>
/// Forward and backward passes of a <see cref="Sequential"/> model over mini-batches, with every buffer allocated
/// once. Produces the <em>sum</em> of per-sample gradients, so that gradients from several workers add up exactly to
/// the gradient of their union; dividing by the count is the caller's job.
/// </summary>
public sealed class GradientEngine
{
    private readonly Sequential _model;
    private readonly ComputeBackend _backend;
    private readonly float[][] _activations;
    private readonly float[][] _masks;
    private readonly float[] _gradA;
    private readonly float[] _gradZ;
    private readonly bool _fusedSoftmax;
    private readonly bool _fusedSigmoid;

    /// <summary>Creates an engine for batches of up to <paramref name="capacity"/> samples.</summary>
    public GradientEngine(Sequential model, ComputeBackend backend, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _model = model;
        _backend = backend;
        Capacity = capacity;
        var layers = model.Layers;
        _activations = new float[layers.Count][];
        _masks = new float[layers.Count][];
        var widest = model.InputSize;
        for (var l = 0; l < layers.Count; l++)
        {
            _activations[l] = new float[capacity * layers[l].OutputSize];
            _masks[l] = layers[l] is DropoutLayer ? new float[capacity * layers[l].OutputSize] : [];
            widest = Math.Max(widest, layers[l].OutputSize);
        }

        _gradA = new float[capacity * widest];
        _gradZ = new float[capacity * widest];
        _fusedSoftmax = model.Loss == LossKind.CrossEntropy;
        _fusedSigmoid = model.Loss == LossKind.BinaryCrossEntropy && model.OutputLayer.Activation == Activation.Sigmoid;
    }

    /// <summary>Largest batch.</summary>
    public int Capacity { get; }

    /// <summary>The model whose architecture this engine runs.</summary>
    public Sequential Model => _model;

    /// <summary>
    /// Writes into <paramref name="gradient"/> the sum over the batch of per-sample gradients of the loss at
    /// <paramref name="parameters"/>, with dropout masks from <paramref name="dropout"/>; returns the batch's sums.
    /// </summary>
    public BatchStats ComputeGradient(Batch batch, ReadOnlySpan<float> parameters, Span<float> gradient, DropoutKey dropout)
    {
        CheckParameters(parameters, nameof(parameters));
        CheckParameters(gradient, nameof(gradient));
        var rows = batch.Count;
        if (rows == 0)
        {
            gradient.Clear();
            return default;
        }

        Forward(batch.Features, rows, parameters, batch.SampleIds, dropout, training: true);
        var stats = OutputLoss(batch, rows);
        Backward(batch.Features, rows, parameters, gradient);
        return stats;
    }

    /// <summary>Loss and accuracy sums of a batch at <paramref name="parameters"/>, in inference mode.</summary>
    public BatchStats Evaluate(Batch batch, ReadOnlySpan<float> parameters)
    {
        CheckParameters(parameters, nameof(parameters));
        if (batch.Count == 0)
        {
            return default;
        }

        Forward(batch.Features, batch.Count, parameters, default, default, training: false);
        return OutputLoss(batch, batch.Count);
    }

    /// <summary>Evaluates a whole dataset in batches of the engine's capacity.</summary>
    public BatchStats Evaluate(Dataset data, ReadOnlySpan<float> parameters, Batch? scratch = null)
    {
        var batch = scratch ?? new Batch(Capacity, _model.InputSize, _model.OutputSize);
        var buffer = new int[Math.Min(Capacity, batch.Capacity)];
        var total = default(BatchStats);
        for (var start = 0; start < data.Count; start += buffer.Length)
        {
            var n = Math.Min(buffer.Length, data.Count - start);
            for (var i = 0; i < n; i++)
            {
                buffer[i] = start + i;
            }

            batch.Gather(data, buffer.AsSpan(0, n));
            total += Evaluate(batch, parameters);
        }

        return total;
    }

    /// <summary>Model outputs (probabilities for softmax) for <paramref name="rows"/> rows of features, in inference mode.</summary>
    public ReadOnlySpan<float> Predict(ReadOnlySpan<float> features, int rows, ReadOnlySpan<float> parameters)
    {
        CheckParameters(parameters, nameof(parameters));
        if (rows > Capacity)
        {
            throw new ArgumentException($"{rows} rows exceed the engine's capacity of {Capacity}.");
        }

        if (features.Length < rows * _model.InputSize)
        {
            throw new ArgumentException($"{features.Length} feature values are fewer than {rows} rows of {_model.InputSize}.");
        }

        Forward(features, rows, parameters, default, default, training: false);
        var output = _activations[^1].AsSpan(0, rows * _model.OutputSize);
        if (_fusedSoftmax)
        {
            for (var r = 0; r < rows; r++)
            {
                Kernels.ElementwiseKernels.Softmax(output.Slice(r * _model.OutputSize, _model.OutputSize));
            }
        }

        return output;
    }

    private void Forward(ReadOnlySpan<float> x, int rows, ReadOnlySpan<float> parameters, ReadOnlySpan<int> sampleIds, DropoutKey dropout, bool training)
    {
        if (rows > Capacity)
        {
            throw new ArgumentException($"A batch of {rows} exceeds the engine's capacity of {Capacity}.");
        }

        var layers = _model.Layers;
        var input = x[..(rows * _model.InputSize)];
        for (var l = 0; l < layers.Count; l++)
        {
            var layer = layers[l];
            var output = _activations[l].AsSpan(0, rows * layer.OutputSize);
            switch (layer)
            {
                case DenseLayer d:
                    _backend.Gemm(false, false, rows, d.Units, d.InputSize, 1f, input, d.InputSize, parameters.Slice(d.ParameterOffset, d.WeightCount), d.Units, 0f, output, d.Units);
                    var activation = l == layers.Count - 1 && _fusedSoftmax ? Activation.Identity : d.Activation;
                    _backend.BiasActivation(output, rows, d.Units, parameters.Slice(d.BiasOffset, d.Units), activation);
                    break;
                case DropoutLayer p when training && p.Rate > 0:
                    var mask = _masks[l].AsSpan(0, rows * p.OutputSize);
                    for (var r = 0; r < rows; r++)
                    {
                        dropout.FillMask(l, sampleIds[r], p.Rate, mask.Slice(r * p.OutputSize, p.OutputSize));
                    }

                    TensorPrimitives.Multiply(input, mask, output);
                    break;
                case DropoutLayer:
                    input.CopyTo(output);
                    break;
            }

            input = output;
        }
    }

    private BatchStats OutputLoss(Batch batch, int rows)
    {
        var k = _model.OutputSize;
        var y = _activations[^1].AsSpan(0, rows * k);
        var hasLabels = batch.HasLabels;
        if (_fusedSoftmax)
        {
            if (!hasLabels)
            {
                throw new InvalidOperationException("Cross-entropy needs class labels.");
            }

            var (loss, correct) = _backend.SoftmaxCrossEntropy(y, rows, k, batch.Labels.AsSpan(0, rows), _gradZ.AsSpan(0, rows * k));
            return new BatchStats(loss, correct, SquaredError(y, batch.Targets, rows * k), rows);
        }

        var t = batch.Targets.AsSpan(0, rows * k);
        var grad = (_fusedSigmoid ? _gradZ : _gradA).AsSpan(0, rows * k);
        double lossSum = 0;
        long right = 0;
        var threshold = _model.OutputLayer.Activation == Activation.Tanh ? 0f : 0.5f;
        for (var r = 0; r < rows; r++)
        {
            double rowLoss = 0;
            for (var j = 0; j < k; j++)
            {
                var i = r * k + j;
                var yi = y[i];
                var ti = t[i];
                if (_model.Loss == LossKind.MeanSquaredError)
                {
                    var e = yi - ti;
                    rowLoss += (double)e * e;
                    grad[i] = 2f * e / k;
                }
                else
                {
                    var yc = Math.Clamp(yi, 1e-7f, 1f - 1e-7f);
                    rowLoss -= ti * Math.Log(yc) + (1 - ti) * Math.Log(1 - yc);
                    grad[i] = _fusedSigmoid ? (yi - ti) / k : (yc - ti) / (yc * (1f - yc)) / k;
                }
            }

            lossSum += rowLoss / k;
            if (hasLabels)
            {
                var predicted = k == 1 ? (y[r] >= threshold ? 1 : 0) : TensorPrimitives.IndexOfMax(y.Slice(r * k, k));
                right += predicted == batch.Labels[r] ? 1 : 0;
            }
        }

        return new BatchStats(lossSum, right, SquaredError(y, t, rows * k), rows);
    }

    private static double SquaredError(ReadOnlySpan<float> y, ReadOnlySpan<float> t, int count)
    {
        double sum = 0;
        for (var i = 0; i < count; i++)
        {
            var e = y[i] - t[i];
            sum += (double)e * e;
        }

        return sum;
    }

    private void Backward(ReadOnlySpan<float> x, int rows, ReadOnlySpan<float> parameters, Span<float> gradient)
    {
        var layers = _model.Layers;
        for (var l = layers.Count - 1; l >= 0; l--)
        {
            var layer = layers[l];
            var input = l == 0 ? x[..(rows * _model.InputSize)] : _activations[l - 1].AsSpan(0, rows * layer.InputSize);
            var dA = _gradA.AsSpan(0, rows * layer.OutputSize);
            switch (layer)
            {
                case DenseLayer d:
                    var dZ = _gradZ.AsSpan(0, rows * d.Units);
                    var fused = l == layers.Count - 1 && (_fusedSoftmax || _fusedSigmoid);
                    if (!fused)
                    {
                        _backend.ActivationBackward(_activations[l].AsSpan(0, rows * d.Units), dA, dZ, rows, d.Units, d.Activation);
                    }

                    _backend.Gemm(true, false, d.InputSize, d.Units, rows, 1f, input, d.InputSize, dZ, d.Units, 0f, gradient.Slice(d.ParameterOffset, d.WeightCount), d.Units);
                    _backend.ColumnSums(dZ, rows, d.Units, gradient.Slice(d.BiasOffset, d.Units));
                    if (l > 0)
                    {
                        _backend.Gemm(false, true, rows, d.InputSize, d.Units, 1f, dZ, d.Units, parameters.Slice(d.ParameterOffset, d.WeightCount), d.Units, 0f, _gradA.AsSpan(0, rows * d.InputSize), d.InputSize);
                    }

                    break;
                case DropoutLayer p:
                    if (l > 0 && p.Rate > 0)
                    {
                        TensorPrimitives.Multiply(dA, _masks[l].AsSpan(0, rows * p.OutputSize), dA);
                    }

                    break;
            }
        }
    }

    private void CheckParameters(ReadOnlySpan<float> values, string name)
    {
        if (values.Length != _model.ParameterCount)
        {
            throw new ArgumentException($"{name} holds {values.Length} values; the model has {_model.ParameterCount} parameters.", name);
        }
    }
}
