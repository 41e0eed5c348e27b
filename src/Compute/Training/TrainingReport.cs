using System.Globalization;
using System.Text.Json;

namespace Cluster.Compute.Training;

/// <summary>What a report says about the run besides its epochs.</summary>
public sealed record RunDescription
{
    /// <summary>Dataset name.</summary>
    public required string Dataset { get; init; }

    /// <summary>The trained model.</summary>
    public required Sequential Model { get; init; }

    /// <summary>Training options.</summary>
    public required TrainingOptions Options { get; init; }

    /// <summary>Backend name.</summary>
    public string Backend { get; init; } = "managed";

    /// <summary>Compute threads of each worker; null when the workers had different counts.</summary>
    public int? Threads { get; init; } = 1;

    /// <summary>True for classification.</summary>
    public bool Classification { get; init; } = true;

    /// <summary>Final test figures, when there is a test set.</summary>
    public BatchStats? FinalTest { get; init; }

    /// <summary>Total wall seconds of the run.</summary>
    public double TotalSeconds { get; init; }

    /// <summary>Run state at the end (early stopping).</summary>
    public TrainingState? State { get; init; }
}

/// <summary>Writes the training report (JSON, or the epochs as CSV) shared by single-node and cluster runs.</summary>
public static class TrainingReport
{
    /// <summary>
    /// Writes the report, atomically: JSON (<paramref name="extra"/> adds fields of its own, the cluster's workers and
    /// step breakdown), or, for a name ending in .csv, the per-epoch history as CSV (<see cref="WriteCsv"/>).
    /// </summary>
    public static void Write(string path, RunDescription run, IReadOnlyList<EpochRecord> epochs, Action<Utf8JsonWriter>? extra = null)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + ".tmp";
        using (var stream = File.Create(temp))
        {
            if (IsCsv(path))
            {
                using var text = new StreamWriter(stream);
                WriteCsv(text, run, epochs);
            }
            else
            {
                using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
                WriteTo(w, run, epochs, extra);
            }
        }

        File.Move(temp, full, overwrite: true);
    }

    /// <summary>Whether <see cref="Write"/> writes CSV for this name.</summary>
    public static bool IsCsv(string path) => path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The per-epoch history as CSV, a row per epoch under a header of the JSON report's epoch fields (RMSE columns for
    /// regression); an empty field where the JSON has null (no validation or test set, accuracy of a regression).
    /// </summary>
    public static void WriteCsv(TextWriter w, RunDescription run, IReadOnlyList<EpochRecord> epochs)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(epochs);
        var regression = !run.Classification;
        w.Write("epoch,trainLoss,trainAccuracy,validationLoss,validationAccuracy,testLoss,testAccuracy,");
        w.Write(regression ? "trainRmse,testRmse," : "");
        w.Write("seconds,samplesPerSecond,learningRate,steps,samples\n");
        foreach (var e in epochs)
        {
            var c = CultureInfo.InvariantCulture;
            string[] head = [e.Epoch.ToString(c), Field(e.TrainLoss), Field(e.TrainAccuracy), Field(e.ValidationLoss), Field(e.ValidationAccuracy), Field(e.TestLoss), Field(e.TestAccuracy)];
            string[] rmse = regression ? [Field(e.TrainRmse), Field(e.TestRmse)] : [];
            string[] tail = [Field(e.Seconds), Field(e.SamplesPerSecond), e.LearningRate.ToString("R", c), e.Steps.ToString(c), e.Samples.ToString(c)];
            w.Write(string.Join(',', [.. head, .. rmse, .. tail]));
            w.Write('\n');
        }

        static string Field(double? value) => value is { } v && double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "";
    }

    /// <summary>Writes the report object.</summary>
    public static void WriteTo(Utf8JsonWriter w, RunDescription run, IReadOnlyList<EpochRecord> epochs, Action<Utf8JsonWriter>? extra)
    {
        var o = run.Options;
        w.WriteStartObject();
        w.WriteNumber("version", 1);
        w.WriteString("dataset", run.Dataset);
        w.WriteString("task", run.Classification ? "classification" : "regression");
        w.WriteString("model", run.Model.Shape());
        w.WriteNumber("parameters", run.Model.ParameterCount);
        w.WriteString("loss", Names.Of(run.Model.Loss));
        w.WriteString("optimizer", o.Optimizer);
        w.WriteNumber("learningRate", o.LearningRate);
        w.WriteString("learningRateSchedule", o.Schedule.ToString());
        w.WriteNumber("batchSize", o.BatchSize);
        w.WriteNumber("epochsRequested", o.Epochs);
        w.WriteNumber("seed", o.Seed);
        w.WriteNumber("l1", o.L1);
        w.WriteNumber("l2", o.L2);
        w.WriteString("backend", run.Backend);
        Number(w, "threads", run.Threads);
        w.WriteStartArray("epochs");
        foreach (var e in epochs)
        {
            w.WriteStartObject();
            w.WriteNumber("epoch", e.Epoch);
            Number(w, "trainLoss", e.TrainLoss);
            Number(w, "trainAccuracy", e.TrainAccuracy);
            Number(w, "validationLoss", e.ValidationLoss);
            Number(w, "validationAccuracy", e.ValidationAccuracy);
            Number(w, "testLoss", e.TestLoss);
            Number(w, "testAccuracy", e.TestAccuracy);
            if (!run.Classification)
            {
                Number(w, "trainRmse", e.TrainRmse);
                Number(w, "testRmse", e.TestRmse);
            }

            Number(w, "seconds", e.Seconds);
            Number(w, "samplesPerSecond", e.SamplesPerSecond);
            // As a float: 0.1, not the double nearest the float 0.1 (0.10000000149011612).
            w.WriteNumber("learningRate", e.LearningRate);
            w.WriteNumber("steps", e.Steps);
            w.WriteNumber("samples", e.Samples);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        var test = run.FinalTest;
        Number(w, "testLoss", test?.MeanLoss);
        Number(w, "testAccuracy", run.Classification ? test?.Accuracy : null);
        if (!run.Classification)
        {
            Number(w, "rmse", test?.Rmse(run.Model.OutputSize) ?? epochs.LastOrDefault()?.TrainRmse);
        }

        Number(w, "trainingSeconds", epochs.Sum(e => e.Seconds));
        Number(w, "totalSeconds", run.TotalSeconds);
        w.WriteBoolean("stoppedEarly", run.State?.StoppedEarly ?? false);
        if (run.State is { BestEpoch: > 0 } s)
        {
            w.WriteNumber("bestEpoch", s.BestEpoch);
        }

        extra?.Invoke(w);
        w.WriteEndObject();
    }

    private static void Number(Utf8JsonWriter w, string name, double? value)
    {
        if (value is { } v && double.IsFinite(v))
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }
}
