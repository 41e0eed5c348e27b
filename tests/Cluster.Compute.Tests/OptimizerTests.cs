using Cluster.Compute.Optim;

namespace Cluster.Compute.Tests;

public sealed class OptimizerTests
{
    private static readonly float[] Gradient = [0.5f, -1f, 2f, 0f, 1e-3f, -3f, 0.25f, 4f, -0.5f, 1f];

    [Fact]
    public void Sgd_Step_IsLearningRateTimesGradient()
    {
        var p = Enumerable.Range(0, 10).Select(i => (float)i).ToArray();
        new Sgd(10).Step(p, Gradient, 0.1f);
        for (var i = 0; i < 10; i++)
        {
            Tolerances.Close(i - 0.1 * Gradient[i], p[i], 1e-6, i);
        }
    }

    [Fact]
    public void Momentum_ThreeSteps_MatchesHandComputation()
    {
        var p = new float[10];
        var opt = new MomentumSgd(10, 0.9f);
        for (var s = 0; s < 3; s++)
        {
            opt.Step(p, Gradient, 0.1f);
        }

        // v1 = g, v2 = 1.9 g, v3 = 2.71 g; p = -0.1 (1 + 1.9 + 2.71) g
        for (var i = 0; i < 10; i++)
        {
            Tolerances.Close(-0.561 * Gradient[i], p[i], 1e-5, Gradient[i]);
        }
    }

    [Fact]
    public void Adam_MatchesScalarDefinition()
    {
        var p = Enumerable.Range(0, 10).Select(i => i * 0.1f).ToArray();
        var expected = p.Select(v => (double)v).ToArray();
        var m = new double[10];
        var v = new double[10];
        var opt = new Adam(10, 0.9f, 0.999f, 1e-8f);
        for (var t = 1; t <= 5; t++)
        {
            var g = Gradient.Select(x => x * t).ToArray();
            opt.Step(p, g, 0.01f);
            for (var i = 0; i < 10; i++)
            {
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                var mh = m[i] / (1 - Math.Pow(0.9, t));
                var vh = v[i] / (1 - Math.Pow(0.999, t));
                expected[i] -= 0.01 * mh / (Math.Sqrt(vh) + 1e-8);
            }
        }

        for (var i = 0; i < 10; i++)
        {
            Tolerances.Close(expected[i], p[i], 1e-5, 1, $"p[{i}]");
        }

        Assert.Equal(5, opt.Steps);
        Assert.Equal(2, opt.StateBuffers.Count);
    }

    [Fact]
    public void Adam_LongVector_VectorAndTailAgree()
    {
        var n = 1003;
        var p1 = Tolerances.RandomVector(n, 1);
        var g = Tolerances.RandomVector(n, 2);
        var opt = new Adam(n);
        opt.Step(p1, g, 0.1f);
        for (var i = 0; i < n; i++)
        {
            // After one step Adam moves every parameter by about lr * sign(g).
            Assert.True(Math.Abs(Math.Abs(p1[i] - Tolerances.RandomVector(n, 1)[i]) - 0.1) < 1e-3 || Math.Abs(g[i]) < 1e-6, $"i={i}");
        }
    }

    [Fact]
    public void Optimizer_WrongLengths_Throw_AndUnknownNameIsExplained()
    {
        Assert.Throws<ArgumentException>(() => new Sgd(3).Step(new float[3], new float[2], 0.1f));
        Assert.Contains("sgd, momentum or adam", Assert.Throws<FormatException>(() => Optimizer.Create("rmsprop", 3)).Message);
    }

    [Fact]
    public void Regularization_PenalisesWeightsNotBiases()
    {
        var model = new Sequential(2, [LayerSpec.Dense(2, Activation.Identity)], LossKind.MeanSquaredError);
        float[] p = [1f, -2f, 0f, 3f, 5f, -5f];
        p.CopyTo(model.Parameters, 0);
        var g = new float[6];
        Regularization.Apply(model, model.Parameters, g, 0.1f, 0.5f);
        Assert.Equal([0.6f, -1.1f, 0f, 1.6f, 0f, 0f], g);
        Tolerances.Close(0.25 * 14 + 0.1 * 6, Regularization.Penalty(model, model.Parameters, 0.1f, 0.5f), 1e-6);
    }

    [Fact]
    public void Schedules_ParseAndDecay()
    {
        Assert.Equal(0.1f, LearningRateSchedule.Parse("constant").RateAt(0.1f, 9));
        var step = LearningRateSchedule.Parse("step:2:0.5");
        Assert.Equal([1f, 1f, 0.5f, 0.5f, 0.25f], Enumerable.Range(0, 5).Select(e => step.RateAt(1f, e)));
        var exp = LearningRateSchedule.Parse("exp:0.9");
        Tolerances.Close(0.729, exp.RateAt(1f, 3), 1e-6);
        Assert.Equal("step:2:0.5", step.ToString());
        Assert.Throws<FormatException>(() => LearningRateSchedule.Parse("step:0:0.5"));
        Assert.Throws<FormatException>(() => LearningRateSchedule.Parse("cosine"));
    }

    [Theory]
    [InlineData("step:2:0,5")]
    [InlineData("exp:0,9")]
    [InlineData("step:1,000:0.5")]
    [InlineData("exp:Infinity")]
    [InlineData("step:2:NaN")]
    [InlineData("exp:-0.5")]
    public void Schedules_ACommaForThePointOrANonFiniteGamma_AreRefused(string text)
    {
        // Before, "step:2:0,5" read its gamma as 5 (a comma is a thousands separator by default), and exp:Infinity was taken.
        var error = Assert.Throws<FormatException>(() => LearningRateSchedule.Parse(text));
        Assert.Contains(text, error.Message);
    }
}
