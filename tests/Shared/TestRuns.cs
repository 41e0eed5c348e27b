using Cluster.Compute;
using Cluster.Compute.Backends;
using Cluster.Compute.Data;
using Cluster.Compute.Randomness;
using Cluster.Compute.Training;
using Cluster.Coordinator.Runs;

namespace Cluster.Tests.Shared;

/// <summary>Small in-memory runs shared by the cluster tests.</summary>
internal static class TestRuns
{
    /// <summary>A 4-class problem with 16 features whose pixel-like values are b / 255.</summary>
    public static Dataset Data(int count, ulong seed)
    {
        var rng = new Rng(seed);
        var x = new float[count * 16];
        var y = new int[count];
        for (var i = 0; i < count; i++)
        {
            y[i] = rng.NextInt(4);
            for (var j = 0; j < 16; j++)
            {
                var signal = j % 4 == y[i] ? 150 : 40;
                x[i * 16 + j] = Math.Clamp(signal + rng.NextInt(80), 0, 255) / 255f;
            }
        }

        return new Dataset("toy", 16, x, y, 4);
    }

    public static PreparedRun Run(int epochs = 2, int batch = 24, float dropout = 0.25f, string optimizer = "momentum", int trainCount = 240, ulong seed = 3, int testCount = 80)
    {
        var train = Data(trainCount, 1);
        var test = Data(testCount, 2);
        var model = new Sequential(16, Sequential.Stack([12, 8], Activation.Relu, 4, Activation.Softmax, dropout), LossKind.CrossEntropy);
        model.Initialize(seed);
        var options = new TrainingOptions { Epochs = epochs, BatchSize = batch, LearningRate = 0.05f, Optimizer = optimizer, Seed = seed, L2 = 1e-4f };
        return new PreparedRun("toy", train, null, test, model, options);
    }

    /// <summary>
    /// A run whose first 48 of 64 features are blank but for one lit in about one sample in twenty (as MNIST's border
    /// pixels are), trained by plain SGD: most of each step's first-layer gradient rows are zero and those weights keep
    /// their bits, which is what block tensors leave off the wire.
    /// </summary>
    public static PreparedRun SparseRun(int epochs = 2, int batch = 24)
    {
        static Dataset Sparse(int count, ulong seed)
        {
            var rng = new Rng(seed);
            var x = new float[count * 64];
            var y = new int[count];
            for (var i = 0; i < count; i++)
            {
                y[i] = rng.NextInt(4);
                if (rng.NextInt(20) == 0)
                {
                    x[i * 64 + rng.NextInt(48)] = 1;
                }

                for (var j = 48; j < 64; j++)
                {
                    x[i * 64 + j] = Math.Clamp((j % 4 == y[i] ? 150 : 40) + rng.NextInt(80), 0, 255) / 255f;
                }
            }

            return new Dataset("sparse", 64, x, y, 4);
        }

        var model = new Sequential(64, Sequential.Stack([12, 8], Activation.Relu, 4, Activation.Softmax, 0), LossKind.CrossEntropy);
        model.Initialize(5);
        var options = new TrainingOptions { Epochs = epochs, BatchSize = batch, LearningRate = 0.05f, Optimizer = "sgd", Seed = 5 };
        return new PreparedRun("sparse", Sparse(240, 1), null, Sparse(80, 2), model, options);
    }

    /// <summary>The reference: the same run in one process with the local gradient source.</summary>
    public static async Task<float[]> SingleProcessAsync(PreparedRun run)
    {
        var model = run.Model.Clone();
        using var backend = new ManagedBackend(1);
        var trainer = new Trainer(model, run.Options, new LocalGradientSource(model, run.Train, backend, run.Options.BatchSize, run.Options.Seed), run.Train, null, run.Test, backend);
        await trainer.RunAsync();
        return model.Parameters;
    }

    public static void AssertClose(float[] expected, float[] actual, double relative)
    {
        Assert.Equal(expected.Length, actual.Length);
        var scale = expected.Max(v => Math.Abs(v));
        for (var i = 0; i < expected.Length; i++)
        {
            var bound = relative * Math.Max(Math.Abs(expected[i]), scale * 1e-2);
            Assert.True(Math.Abs(expected[i] - actual[i]) <= bound, $"parameter {i}: expected {expected[i]}, got {actual[i]} (bound {bound})");
        }
    }

    /// <summary>Waits for a condition, failing with what was awaited and what was seen.</summary>
    public static async Task WaitForAsync(Func<bool> condition, string what, Func<string> seen, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting for {what}; saw {seen()}");
            }

            await Task.Delay(20);
        }
    }
}
