using System.Text.Json;
using Cluster.Coordinator.Grains;

namespace Cluster.Coordinator.Observability;

/// <summary>The dashboard's view of a run as JSON: state, progress, per-epoch history, recent step losses, members.</summary>
public static class StatusJson
{
    /// <summary>Writes the status document.</summary>
    public static async Task<byte[]> BuildAsync(CoordinatorGrain grain)
    {
        var status = await grain.GetStatusAsync().ConfigureAwait(false);
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("state", status.State);
            w.WriteString("runId", status.RunId);
            w.WriteNumber("epoch", status.Epoch);
            w.WriteNumber("epochs", status.Epochs);
            w.WriteNumber("step", status.Step);
            w.WriteNumber("stepsPerEpoch", status.StepsPerEpoch);
            w.WriteNumber("workers", status.Workers);
            w.WriteNumber("samplesPerSecond", Finite(status.SamplesPerSecond));
            w.WriteNumber("lastLoss", Finite(status.LastLoss));
            w.WriteNumber("stepInEpoch", grain.Trainer.State.StepInEpoch);
            w.WriteStartArray("history");
            foreach (var e in grain.History)
            {
                w.WriteStartObject();
                w.WriteNumber("epoch", e.Epoch);
                w.WriteNumber("trainLoss", Finite(e.TrainLoss));
                Nullable(w, "trainAccuracy", e.TrainAccuracy);
                Nullable(w, "testLoss", e.TestLoss);
                Nullable(w, "testAccuracy", e.TestAccuracy);
                w.WriteNumber("seconds", e.Seconds);
                w.WriteNumber("samplesPerSecond", e.SamplesPerSecond);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartArray("recentLoss");
            foreach (var (step, loss) in grain.RecentLoss)
            {
                w.WriteStartArray();
                w.WriteNumberValue(step);
                w.WriteNumberValue(Finite(loss));
                w.WriteEndArray();
            }

            w.WriteEndArray();
            w.WriteStartArray("members");
            foreach (var m in status.Members)
            {
                w.WriteStartObject();
                w.WriteString("workerId", m.WorkerId);
                w.WriteNumber("rank", m.Rank);
                w.WriteString("state", m.State);
                w.WriteNumber("samplesPerSecond", Finite(m.SamplesPerSecond));
                w.WriteNumber("samples", m.Samples);
                w.WriteString("address", m.Address);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            grain.Counters.Write(w);
            w.WriteEndObject();
        }

        return stream.ToArray();
    }

    private static double Finite(double v) => double.IsFinite(v) ? v : 0;

    private static void Nullable(Utf8JsonWriter w, string name, double? v)
    {
        if (v is { } x && double.IsFinite(x))
        {
            w.WriteNumber(name, x);
        }
        else
        {
            w.WriteNull(name);
        }
    }
}
