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

/// <summary>Writes the training report JSON shared by single-node and cluster runs.</summary>
public static class TrainingReport
{
    /// <summary>Writes the report; <paramref name="extra"/> adds fields of its own (the cluster's workers and step breakdown).</summary>
    public static void Write(string path, RunDescription run, IReadOnlyList<EpochRecord> epochs, Action<Utf8JsonWriter>? extra = null)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + ".tmp";
        using (var stream = File.Create(temp))
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            WriteTo(w, run, epochs, extra);
        }

        File.Move(temp, full, overwrite: true);
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
            Number(w, "learningRate", e.LearningRate);
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
