using System.Diagnostics;
using System.Globalization;
using Cluster.Compute;
using Cluster.Compute.Backends;
using Cluster.Compute.Models;
using Cluster.Compute.Training;

namespace Cluster.Coordinator.Runs;

/// <summary>Trains in this process: the model computes its own gradients on one backend.</summary>
public static class SingleNodeRunner
{
    /// <summary>Runs the whole job: prepare, train, evaluate, save, report.</summary>
    public static async Task<int> RunAsync(TrainSettings settings, TextWriter output, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var run = await TrainingSetup.PrepareAsync(settings, m => Say(output, settings, m), cancellationToken).ConfigureAwait(false);
        using var backend = BackendFactory.Create(settings.Backend, settings.Threads);
        Say(output, settings, string.Create(CultureInfo.InvariantCulture,
            $"Training {run.Model.Shape()} ({run.Model.ParameterCount:N0} parameters) on {run.DatasetName}: {run.Train.Count:N0} samples, batch {run.Options.BatchSize}, {run.Options.Optimizer} lr {run.Options.LearningRate}, {run.Options.Epochs} epochs, backend {backend.Name} x{backend.Threads}"));
        var source = new LocalGradientSource(run.Model, run.Train, backend, run.Options.BatchSize, run.Options.Seed);
        var trainer = new Trainer(run.Model, run.Options, source, run.Train, run.Validation, run.Test, backend);
        trainer.Observe(new ConsoleProgress(output, run.Options.Epochs, settings.Quiet));
        var history = await trainer.RunAsync(cancellationToken).ConfigureAwait(false);
        var test = run.Test is null ? (BatchStats?)null : trainer.Evaluate(run.Test);
        Finish(output, settings, run, history, test, trainer.State, backend, clock.Elapsed.TotalSeconds, null);
        return 0;
    }

    /// <summary>Prints the result, saves the model and writes the report; shared with cluster runs.</summary>
    public static void Finish(TextWriter output, TrainSettings settings, PreparedRun run, IReadOnlyList<EpochRecord> history, BatchStats? test, TrainingState state, ComputeBackend backend, double seconds, Action<System.Text.Json.Utf8JsonWriter>? extra)
    {
        var c = CultureInfo.InvariantCulture;
        if (state.StoppedEarly)
        {
            output.WriteLine(string.Create(c, $"Early stopping after epoch {history.Count}; kept the weights of epoch {state.BestEpoch}."));
        }

        if (test is { } t)
        {
            output.WriteLine(run.Train.IsClassification
                ? string.Create(c, $"Test accuracy: {t.Accuracy * 100:0.00}% (loss {t.MeanLoss:0.0000}) on {t.Count:N0} samples")
                : string.Create(c, $"Test RMSE: {t.Rmse(run.Model.OutputSize):0.00000} (loss {t.MeanLoss:0.00000}) on {t.Count:N0} samples"));
        }

        if (settings.ModelPath is { } modelPath)
        {
            ModelFile.Save(run.Model, modelPath);
            Say(output, settings, $"Model saved to {modelPath}");
        }

        if (settings.ReportPath is { } reportPath)
        {
            var description = new RunDescription
            {
                Dataset = run.DatasetName,
                Model = run.Model,
                Options = run.Options,
                Backend = backend.Name,
                Threads = backend.Threads,
                Classification = run.Train.IsClassification,
                FinalTest = test,
                TotalSeconds = seconds,
                State = state,
            };
            TrainingReport.Write(reportPath, description, history, extra);
            Say(output, settings, $"Report written to {reportPath}");
        }
    }

    private static void Say(TextWriter output, TrainSettings settings, string message)
    {
        if (!settings.Quiet)
        {
            output.WriteLine(message);
        }
    }
}
