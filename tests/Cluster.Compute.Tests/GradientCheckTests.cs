using Cluster.Compute.Backends;
using Cluster.Compute.Data;

namespace Cluster.Compute.Tests;

/// <summary>Every layer, activation and loss against central finite differences of the loss.</summary>
public sealed class GradientCheckTests
{
    public static TheoryData<Activation, Activation, LossKind, float> Cases()
    {
        var data = new TheoryData<Activation, Activation, LossKind, float>();
        foreach (var hidden in new[] { Activation.Identity, Activation.Sigmoid, Activation.Tanh, Activation.Relu, Activation.Step })
        {
            data.Add(hidden, Activation.Softmax, LossKind.CrossEntropy, 0f);
            data.Add(hidden, Activation.Identity, LossKind.MeanSquaredError, 0f);
            data.Add(hidden, Activation.Sigmoid, LossKind.BinaryCrossEntropy, 0f);
        }

        foreach (var output in new[] { Activation.Sigmoid, Activation.Tanh, Activation.Relu, Activation.Softmax })
        {
            data.Add(Activation.Tanh, output, LossKind.MeanSquaredError, 0f);
        }

        data.Add(Activation.Tanh, Activation.Softmax, LossKind.BinaryCrossEntropy, 0f);
        data.Add(Activation.Relu, Activation.Softmax, LossKind.CrossEntropy, 0.3f);
        data.Add(Activation.Sigmoid, Activation.Identity, LossKind.MeanSquaredError, 0.5f);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Gradient_MatchesFiniteDifferences(Activation hidden, Activation output, LossKind loss, float dropout)
    {
        const int inputs = 4, rows = 3, outputs = 3;
        var specs = new List<LayerSpec> { LayerSpec.Dense(5, hidden) };
        if (dropout > 0)
        {
            specs.Add(LayerSpec.Dropout(dropout));
        }

        specs.Add(LayerSpec.Dense(6, Activation.Tanh));
        specs.Add(LayerSpec.Dense(outputs, output));
        var model = new Sequential(inputs, specs, loss);
        model.Initialize(42);
        var x = Tolerances.RandomVector(rows * inputs, 5);
        Dataset data = loss == LossKind.CrossEntropy
            ? new Dataset("t", inputs, x, [0, 2, 1], outputs)
            : new Dataset("t", inputs, x, null, 0, loss == LossKind.BinaryCrossEntropy ? [0, 1, 0.3f, 1, 0, 0.7f, 0.2f, 0.9f, 0] : Tolerances.RandomVector(rows * outputs, 6), outputs);
        using var backend = new ManagedBackend(1);
        var engine = new GradientEngine(model, backend, rows);
        var batch = new Batch(rows, inputs, outputs);
        batch.Gather(data, [0, 1, 2]);
        var key = new DropoutKey(9, 1);
        var analytic = new float[model.ParameterCount];
        engine.ComputeGradient(batch, model.Parameters, analytic, key);
        var scratch = new float[model.ParameterCount];
        var p = (float[])model.Parameters.Clone();
        const float eps = 1e-3f;
        for (var i = 0; i < p.Length; i++)
        {
            var saved = p[i];
            p[i] = saved + eps;
            var plus = engine.ComputeGradient(batch, p, scratch, key).LossSum;
            p[i] = saved - eps;
            var minus = engine.ComputeGradient(batch, p, scratch, key).LossSum;
            p[i] = saved;
            var numeric = (plus - minus) / (2 * eps);
            var scale = Math.Max(Math.Abs(numeric), Math.Abs(analytic[i]));
            Assert.True(Math.Abs(numeric - analytic[i]) <= Tolerances.GradientCheck * scale + 2e-3,
                $"{hidden}/{output}/{loss} parameter {i}: analytic {analytic[i]}, numeric {numeric}");
        }

        if (hidden != Activation.Step)
        {
            Assert.Contains(analytic, g => Math.Abs(g) > 1e-4);
        }
    }

    [Fact]
    public void GradientSums_OfParts_AddUpToTheWhole()
    {
        var model = new Sequential(6, [LayerSpec.Dense(8, Activation.Relu), LayerSpec.Dropout(0.25f), LayerSpec.Dense(4, Activation.Softmax)], LossKind.CrossEntropy);
        model.Initialize(3);
        var data = new Dataset("t", 6, Tolerances.RandomVector(10 * 6, 8), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1], 4);
        using var backend = new ManagedBackend(1);
        var engine = new GradientEngine(model, backend, 10);
        var batch = new Batch(10, 6, 4);
        var key = new DropoutKey(1, 0);
        var whole = new float[model.ParameterCount];
        batch.Gather(data, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        var all = engine.ComputeGradient(batch, model.Parameters, whole, key);
        var partA = new float[model.ParameterCount];
        var partB = new float[model.ParameterCount];
        batch.Gather(data, [0, 1, 2, 3]);
        var a = engine.ComputeGradient(batch, model.Parameters, partA, key);
        batch.Gather(data, [4, 5, 6, 7, 8, 9]);
        var b = engine.ComputeGradient(batch, model.Parameters, partB, key);
        Tolerances.Close(all.LossSum, a.LossSum + b.LossSum, 1e-6, all.LossSum);
        Assert.Equal(all.Count, a.Count + b.Count);
        for (var i = 0; i < whole.Length; i++)
        {
            Tolerances.Close(whole[i], partA[i] + partB[i], 1e-5, 1, $"parameter {i}");
        }
    }

    [Fact]
    public void Dropout_MaskDependsOnSampleNotBatch_AndIsOffAtInference()
    {
        var key = new DropoutKey(5, 2);
        var m1 = new float[1000];
        var m2 = new float[1000];
        key.FillMask(1, 12345, 0.5f, m1);
        key.FillMask(1, 12345, 0.5f, m2);
        Assert.Equal(m1, m2);
        Assert.All(m1, v => Assert.True(v is 0f or 2f));
        var kept = m1.Count(v => v > 0);
        Assert.InRange(kept, 430, 570);
        key.FillMask(1, 12346, 0.5f, m2);
        Assert.NotEqual(m1, m2);
        new DropoutKey(5, 3).FillMask(1, 12345, 0.5f, m2);
        Assert.NotEqual(m1, m2);

        var model = new Sequential(3, [LayerSpec.Dense(4, Activation.Relu), LayerSpec.Dropout(0.9f), LayerSpec.Dense(2, Activation.Softmax)], LossKind.CrossEntropy);
        model.Initialize(1);
        using var backend = new ManagedBackend(1);
        var engine = new GradientEngine(model, backend, 1);
        var p1 = engine.Predict([0.1f, 0.2f, 0.3f], 1, model.Parameters).ToArray();
        var p2 = engine.Predict([0.1f, 0.2f, 0.3f], 1, model.Parameters).ToArray();
        Assert.Equal(p1, p2);
    }
}
