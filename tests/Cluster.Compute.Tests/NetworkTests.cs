using Cluster.Compute.Backends;
using Cluster.Compute.Classic;
using Cluster.Compute.Data;
using Cluster.Compute.Training;

namespace Cluster.Compute.Tests;

public sealed class NetworkTests
{
    private static readonly float[] XorInputs = [0, 0, 0, 1, 1, 0, 1, 1];

    [Fact]
    public void Summary_DefaultMnistNetwork_Has109386Parameters()
    {
        var model = new Sequential(784, Sequential.Stack([128, 64], Activation.Relu, 10, Activation.Softmax), LossKind.CrossEntropy);
        Assert.Equal(109_386, model.ParameterCount);
        var summary = model.Summary();
        Assert.Contains("100,480", summary);
        Assert.Contains("8,256", summary);
        Assert.Contains("650", summary);
        Assert.Contains("109,386", summary);
        Assert.Equal("784-128-64-10", model.Shape());
    }

    [Fact]
    public void Build_InvalidArchitectures_ThrowClearly()
    {
        Assert.Contains("softmax", Assert.Throws<ArgumentException>(() => new Sequential(2, [LayerSpec.Dense(2, Activation.Relu)], LossKind.CrossEntropy)).Message);
        Assert.Throws<ArgumentException>(() => new Sequential(2, [], LossKind.MeanSquaredError));
        Assert.Throws<ArgumentException>(() => new Sequential(2, [LayerSpec.Dense(2, Activation.Relu), LayerSpec.Dropout(0.5f)], LossKind.MeanSquaredError));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sequential(2, [LayerSpec.Dropout(1.5f), LayerSpec.Dense(1, Activation.Identity)], LossKind.MeanSquaredError));
    }

    [Fact]
    public void Initialize_SameSeed_BitIdentical_DifferentSeed_Differs()
    {
        var specs = Sequential.Stack([16], Activation.Relu, 3, Activation.Softmax);
        var a = new Sequential(5, specs, LossKind.CrossEntropy);
        var b = new Sequential(5, specs, LossKind.CrossEntropy);
        var c = new Sequential(5, specs, LossKind.CrossEntropy);
        a.Initialize(7);
        b.Initialize(7);
        c.Initialize(8);
        Assert.Equal(a.Parameters, b.Parameters);
        Assert.NotEqual(a.Parameters, c.Parameters);
    }

    [Theory]
    [InlineData(InitKind.XavierUniform)]
    [InlineData(InitKind.XavierNormal)]
    [InlineData(InitKind.HeUniform)]
    [InlineData(InitKind.HeNormal)]
    [InlineData(InitKind.SmallUniform)]
    [InlineData(InitKind.FanInUniform)]
    public void Initialize_EachScheme_HasItsSpread(InitKind init)
    {
        var model = new Sequential(400, [LayerSpec.Dense(300, Activation.Relu, init)], LossKind.MeanSquaredError);
        model.Initialize(1);
        var w = model.Parameters.AsSpan(0, 400 * 300).ToArray();
        var variance = w.Select(v => (double)v * v).Average();
        var expected = init switch
        {
            InitKind.XavierUniform or InitKind.XavierNormal => 2.0 / 700,
            InitKind.HeUniform or InitKind.HeNormal => 2.0 / 400,
            InitKind.SmallUniform => 0.01 / 3,
            _ => 1.0 / (3 * 400),
        };
        Tolerances.Close(expected, variance, 0.03 * expected, 1, init.ToString());
        Assert.True(Math.Abs(w.Average()) < 0.01);
    }

    [Fact]
    public void Training_SameSeedTwice_BitIdenticalWeights()
    {
        var first = TrainSmall(11, threads: 1, dropout: 0.2f);
        var second = TrainSmall(11, threads: 1, dropout: 0.2f);
        var threaded = TrainSmall(11, threads: 3, dropout: 0.2f);
        var other = TrainSmall(12, threads: 1, dropout: 0.2f);
        Assert.Equal(first, second);
        Assert.Equal(first, threaded);
        Assert.NotEqual(first, other);
    }

    private static float[] TrainSmall(ulong seed, int threads, float dropout)
    {
        var data = Blobs(300, seed: 4);
        var model = new Sequential(2, Sequential.Stack([16, 8], Activation.Relu, 3, Activation.Softmax, dropout), LossKind.CrossEntropy);
        model.Initialize(seed);
        using var backend = new ManagedBackend(threads, spin: null, processors: threads);
        var options = new TrainingOptions { Epochs = 3, BatchSize = 32, LearningRate = 0.1f, Optimizer = "momentum", Seed = seed };
        var trainer = new Trainer(model, options, new LocalGradientSource(model, data, backend, 32, seed), data, null, null, backend);
        trainer.RunAsync().GetAwaiter().GetResult();
        return model.Parameters;
    }

    /// <summary>Three separable Gaussian blobs in 2-D.</summary>
    internal static Dataset Blobs(int count, ulong seed)
    {
        var rng = new Randomness.Rng(seed);
        var x = new float[count * 2];
        var y = new int[count];
        for (var i = 0; i < count; i++)
        {
            y[i] = i % 3;
            x[2 * i] = (float)(Math.Cos(y[i] * 2.1) * 2 + rng.NextGaussian() * 0.4);
            x[2 * i + 1] = (float)(Math.Sin(y[i] * 2.1) * 2 + rng.NextGaussian() * 0.4);
        }

        return new Dataset("blobs", 2, x, y, 3);
    }

    [Fact]
    public void Perceptron_ConvergesOnOr_FailsOnXor()
    {
        float[][] inputs = [[0, 0], [0, 1], [1, 0], [1, 1]];
        var or = new Perceptron(2, 0);
        var orErrors = or.Fit(inputs, [0, 1, 1, 1], 0.1f, 100);
        Assert.Equal(0, orErrors[^1]);
        Assert.True(orErrors.Count < 100);
        Assert.Equal([0, 1, 1, 1], inputs.Select(x => or.Predict(x)));

        var xor = new Perceptron(2, 0);
        var xorErrors = xor.Fit(inputs, [0, 1, 1, 0], 0.1f, 200);
        Assert.Equal(200, xorErrors.Count);
        Assert.All(xorErrors, e => Assert.True(e > 0));
        Assert.NotEqual([0, 1, 1, 0], inputs.Select(x => xor.Predict(x)));
    }

    [Fact]
    public void LogisticNeuron_DeltaRule_LearnsAndAndReducesError()
    {
        float[][] inputs = [[0, 0], [0, 1], [1, 0], [1, 1]];
        var neuron = new LogisticNeuron(2, 0);
        var history = neuron.Fit(inputs, [0, 0, 0, 1], 2f, 2000);
        Assert.True(history[^1] < history[0] / 4);
        Assert.Equal([0, 0, 0, 1], inputs.Select(x => neuron.Predict(x)));
    }

    private static async Task<EpochRecord> TrainXor(int hidden, ulong seed)
    {
        var data = new Dataset("xor", 2, XorInputs, [0, 1, 1, 0], 2);
        var model = new Sequential(2, [LayerSpec.Dense(hidden, Activation.Tanh), LayerSpec.Dense(1, Activation.Sigmoid)], LossKind.BinaryCrossEntropy);
        model.Initialize(seed);
        using var backend = new ManagedBackend(1);
        var options = new TrainingOptions { Epochs = 2000, BatchSize = 4, LearningRate = 0.5f, Shuffle = false };
        var trainer = new Trainer(model, options, new LocalGradientSource(model, data, backend, 4, 0), data, null, null, backend);
        return (await trainer.RunAsync())[^1];
    }

    [Fact]
    public async Task Mlp_241_SolvesXorFromEverySeed()
    {
        for (var seed = 0UL; seed < 5; seed++)
        {
            var last = await TrainXor(4, seed);
            Assert.Equal(1.0, last.TrainAccuracy);
            Assert.True(last.TrainLoss < 0.05, $"seed {seed}: loss {last.TrainLoss}");
        }
    }

    [Fact]
    public async Task Mlp_221_SolvesXorFromSomeSeeds()
    {
        // The 2-2-1 network has local minima (the textbook caveat); most starts still reach zero error.
        var solved = 0;
        for (var seed = 0UL; seed < 6; seed++)
        {
            var last = await TrainXor(2, seed);
            solved += last.TrainAccuracy == 1.0 && last.TrainLoss < 0.05 ? 1 : 0;
        }

        Assert.True(solved >= 3, $"only {solved} of 6 starts solved XOR");
    }

    [Fact]
    public async Task Trainer_EarlyStopping_StopsAndKeepsBestWeights()
    {
        // Random labels: whatever the network learns is memorisation, so the validation loss soon rises.
        var rng = new Randomness.Rng(3);
        var x = Tolerances.RandomVector(400 * 2, 4);
        var labels = Enumerable.Range(0, 400).Select(_ => rng.NextInt(3)).ToArray();
        var (train, validation) = new Dataset("noise", 2, x, labels, 3).Split(0.25, 1);
        var model = new Sequential(2, Sequential.Stack([64, 64], Activation.Relu, 3, Activation.Softmax), LossKind.CrossEntropy);
        model.Initialize(1);
        using var backend = new ManagedBackend(1);
        var options = new TrainingOptions { Epochs = 200, BatchSize = 8, LearningRate = 0.1f, EarlyStoppingPatience = 3, Seed = 1 };
        var trainer = new Trainer(model, options, new LocalGradientSource(model, train, backend, 8, 1), train, validation, null, backend);
        var history = await trainer.RunAsync();
        Assert.True(trainer.State.StoppedEarly);
        Assert.True(history.Count < 200);
        Assert.Equal(history.Count - 3, trainer.State.BestEpoch);
        var best = history.Min(h => h.ValidationLoss!.Value);
        Tolerances.Close(best, trainer.Evaluate(validation).MeanLoss, 1e-6, 1, "restored weights give the best validation loss");
    }

    [Fact]
    public void Trainer_EarlyStoppingWithoutValidation_IsRejected()
    {
        var data = Blobs(30, 1);
        var model = new Sequential(2, Sequential.Stack([], Activation.Relu, 3, Activation.Softmax), LossKind.CrossEntropy);
        using var backend = new ManagedBackend(1);
        var ex = Assert.Throws<ArgumentException>(() => new Trainer(model, new TrainingOptions { EarlyStoppingPatience = 2 }, new LocalGradientSource(model, data, backend, 4, 0), data, null, null, backend));
        Assert.Contains("--validation-split", ex.Message);
    }

    [Fact]
    public async Task Trainer_NonFiniteGradient_StopsWithoutTouchingWeights()
    {
        var data = new Dataset("bad", 2, [1, float.NaN, 0, 1], [0, 1], 2);
        var model = new Sequential(2, Sequential.Stack([], Activation.Relu, 2, Activation.Softmax), LossKind.CrossEntropy);
        model.Initialize(1);
        var before = (float[])model.Parameters.Clone();
        using var backend = new ManagedBackend(1);
        var trainer = new Trainer(model, new TrainingOptions { BatchSize = 2, Epochs = 1 }, new LocalGradientSource(model, data, backend, 2, 0), data, null, null, backend);
        var ex = await Assert.ThrowsAsync<TrainingDivergedException>(() => trainer.RunAsync());
        Assert.Contains("not finite", ex.Message);
        Assert.Equal(before, model.Parameters);
    }

    [Fact]
    public async Task Regression_SmoothFunction_IsFitted()
    {
        const int n = 100;
        var x = Enumerable.Range(0, n).Select(i => -2f + 4f * i / (n - 1)).ToArray();
        var y = x.Select(v => v * v * 0.5f - 0.3f * v).ToArray();
        var data = new Dataset("poly", 1, x, null, 0, y, 1);
        var model = new Sequential(1, [LayerSpec.Dense(16, Activation.Tanh), LayerSpec.Dense(1, Activation.Identity)], LossKind.MeanSquaredError);
        model.Initialize(2);
        using var backend = new ManagedBackend(1);
        var options = new TrainingOptions { Epochs = 400, BatchSize = 10, LearningRate = 0.01f, Optimizer = "adam", Seed = 2 };
        var trainer = new Trainer(model, options, new LocalGradientSource(model, data, backend, 10, 2), data, null, data, backend);
        var history = await trainer.RunAsync();
        Assert.Null(history[^1].TestAccuracy);
        Assert.True(history[^1].TestRmse < 0.08, $"rmse {history[^1].TestRmse}");
    }
}
