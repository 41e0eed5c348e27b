using System.CommandLine;
using System.Globalization;
using Cluster.Compute;
using Cluster.Compute.Backends;
using Cluster.Compute.Classic;
using Cluster.Compute.Data;
using Cluster.Compute.Optim;
using Cluster.Compute.Training;

namespace Cluster.Coordinator.Cli;

/// <summary><c>cluster example</c>: the textbook problems, each printing its error as it learns.</summary>
public static class ExampleCommand
{
    /// <summary>The example names.</summary>
    public static readonly IReadOnlyList<string> Examples = ["xor", "or-perceptron", "streetlight", "regression"];

    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var command = new Command("example", "Run a textbook problem: xor (2-4-1 MLP), or-perceptron (perceptron rule on OR, and its failure on XOR), streetlight (3-4-1 ReLU network), regression (1-D sine fit).");
        var name = new Argument<string>("name") { Description = string.Join(", ", Examples) };
        name.AcceptOnlyFromAmong([.. Examples]);
        var seed = new Option<ulong>("--seed") { Description = "Seed of the initial weights.", DefaultValueFactory = _ => 0 };
        command.Arguments.Add(name);
        command.Options.Add(seed);
        CliApp.SetHandler(command, async (r, output, cancellationToken) =>
        {
            var s = r.GetValue(seed);
            switch (r.GetValue(name))
            {
                case "xor":
                    return await Xor(output, s, cancellationToken).ConfigureAwait(false);
                case "or-perceptron":
                    return OrPerceptron(output, s);
                case "streetlight":
                    return await Streetlight(output, s, cancellationToken).ConfigureAwait(false);
                default:
                    return await Regression(output, s, cancellationToken).ConfigureAwait(false);
            }
        });
        return command;
    }

    /// <summary>XOR with a 2-4-1 tanh/sigmoid network, full-batch gradient descent.</summary>
    public static async Task<int> Xor(TextWriter output, ulong seed, CancellationToken cancellationToken)
    {
        var data = new Dataset("xor", 2, [0, 0, 0, 1, 1, 0, 1, 1], [0, 1, 1, 0], 2);
        var model = new Sequential(2, [LayerSpec.Dense(4, Activation.Tanh), LayerSpec.Dense(1, Activation.Sigmoid)], LossKind.BinaryCrossEntropy);
        model.Initialize(seed);
        var options = new TrainingOptions { Epochs = 1000, BatchSize = 4, LearningRate = 0.5f, Seed = seed, Shuffle = false };
        var history = await Fit(output, model, data, options, every: 100, cancellationToken).ConfigureAwait(false);
        PrintPredictions(output, model, [[0, 0], [0, 1], [1, 0], [1, 1]]);
        return history[^1].TrainAccuracy == 1.0 ? 0 : 1;
    }

    /// <summary>The perceptron rule on OR (converges) and on XOR (cannot).</summary>
    public static int OrPerceptron(TextWriter output, ulong seed)
    {
        float[][] inputs = [[0, 0], [0, 1], [1, 0], [1, 1]];
        var perceptron = new Perceptron(2, seed);
        output.WriteLine("Perceptron rule on OR:");
        var errors = perceptron.Fit(inputs, [0, 1, 1, 1], 0.1f, 100, (epoch, wrong) => output.WriteLine($"  epoch {epoch}: {wrong} misclassified during the pass (each one an update)"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  converged after {errors.Count} epochs: w = [{perceptron.Weights[0]:0.###}, {perceptron.Weights[1]:0.###}], b = {perceptron.Bias:0.###}"));
        foreach (var x in inputs)
        {
            output.WriteLine($"  OR({x[0]}, {x[1]}) = {perceptron.Predict(x)}");
        }

        var xor = new Perceptron(2, seed);
        int[] xorTargets = [0, 1, 1, 0];
        var xorErrors = xor.Fit(inputs, xorTargets, 0.1f, 100);
        // A pass's count is of the samples misclassified as they came, each moving the weights: XOR's final weights
        // misclassify at least one point and at most three (no line puts all four on the wrong side either).
        var wrongAtEnd = inputs.Where((x, i) => xor.Predict(x) != xorTargets[i]).Count();
        output.WriteLine($"Perceptron rule on XOR: {xorErrors[^1]} misclassified during pass {xorErrors.Count}, and no pass without one; its final weights misclassify {wrongAtEnd} of the 4 points. XOR is not linearly separable.");
        return errors[^1] == 0 ? 0 : 1;
    }

    /// <summary>The streetlight problem with a 3-4-1 ReLU network, one sample per step.</summary>
    public static async Task<int> Streetlight(TextWriter output, ulong seed, CancellationToken cancellationToken)
    {
        float[] lights = [1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1];
        var data = new Dataset("streetlight", 3, lights, null, 0, [0, 1, 0, 1, 1, 0], 1);
        var model = new Sequential(3, [LayerSpec.Dense(4, Activation.Relu), LayerSpec.Dense(1, Activation.Identity)], LossKind.MeanSquaredError);
        model.Initialize(seed);
        var options = new TrainingOptions { Epochs = 60, BatchSize = 1, LearningRate = 0.1f, Seed = seed, Shuffle = false };
        var history = await Fit(output, model, data, options, every: 10, cancellationToken).ConfigureAwait(false);
        PrintPredictions(output, model, [[1, 0, 1], [0, 1, 1], [0, 0, 1], [1, 1, 1]]);
        return history[^1].TrainLoss < 0.05 ? 0 : 1;
    }

    /// <summary>Fits y = sin(x) on [-pi, pi] with a 1-16-16-1 tanh network and Adam.</summary>
    public static async Task<int> Regression(TextWriter output, ulong seed, CancellationToken cancellationToken)
    {
        const int n = 200;
        var x = new float[n];
        var y = new float[n];
        for (var i = 0; i < n; i++)
        {
            x[i] = (float)(-Math.PI + 2 * Math.PI * i / (n - 1));
            y[i] = MathF.Sin(x[i]);
        }

        var data = new Dataset("sine", 1, x, null, 0, y, 1);
        var model = new Sequential(1, [LayerSpec.Dense(16, Activation.Tanh), LayerSpec.Dense(16, Activation.Tanh), LayerSpec.Dense(1, Activation.Identity)], LossKind.MeanSquaredError);
        model.Initialize(seed);
        var options = new TrainingOptions { Epochs = 300, BatchSize = 20, LearningRate = 0.01f, Optimizer = "adam", Seed = seed };
        var history = await Fit(output, model, data, options, every: 30, cancellationToken).ConfigureAwait(false);
        PrintPredictions(output, model, [[-2f], [-1f], [0f], [1f], [2f]]);
        return history[^1].TrainRmse < 0.1 ? 0 : 1;
    }

    private static async Task<IReadOnlyList<EpochRecord>> Fit(TextWriter output, Sequential model, Dataset data, TrainingOptions options, int every, CancellationToken cancellationToken)
    {
        using var backend = new ManagedBackend(1);
        var source = new LocalGradientSource(model, data, backend, options.BatchSize, options.Seed);
        var trainer = new Trainer(model, options, source, data, null, null, backend);
        trainer.Observe(new EveryN(output, every, options.Epochs));
        output.WriteLine($"{model.Shape()} network, {Names.Of(model.Loss)}, {options.Optimizer} lr {options.LearningRate.ToString(CultureInfo.InvariantCulture)}, batch {options.BatchSize}:");
        return await trainer.RunAsync(cancellationToken).ConfigureAwait(false);
    }

    private static void PrintPredictions(TextWriter output, Sequential model, float[][] inputs)
    {
        using var backend = new ManagedBackend(1);
        var engine = new GradientEngine(model, backend, inputs.Length);
        var y = engine.Predict([.. inputs.SelectMany(v => v)], inputs.Length, model.Parameters);
        for (var i = 0; i < inputs.Length; i++)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  f({string.Join(", ", inputs[i])}) = {y[i * model.OutputSize]:0.0000}"));
        }

    }

    private sealed class EveryN(TextWriter output, int every, int epochs) : ITrainingObserver
    {
        public void OnEpochEnd(EpochRecord r)
        {
            if (r.Epoch == 1 || r.Epoch % every == 0 || r.Epoch == epochs)
            {
                var accuracy = r.TrainAccuracy is { } a ? string.Create(CultureInfo.InvariantCulture, $"  accuracy {a * 100:0}%") : "";
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  iteration {r.Epoch,5}: error {r.TrainLoss:0.000000}{accuracy}"));
            }
        }
    }
}
