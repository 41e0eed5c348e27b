using System.Text.Json;

namespace Cluster.Coordinator.Grains;

/// <summary>
/// Where the time of cluster steps goes: workers computing, encoding and decoding messages, the coordinator summing
/// and applying the optimizer, and the rest (network, scheduling, waiting for the slowest worker).
/// </summary>
public sealed class StepTimings
{
    private readonly Lock _lock = new();

    /// <summary>Steps measured.</summary>
    public long Steps { get; private set; }

    /// <summary>Total wall seconds of the steps.</summary>
    public double TotalSeconds { get; private set; }

    /// <summary>Mean worker compute seconds, summed over steps.</summary>
    public double ComputeSeconds { get; private set; }

    /// <summary>Mean encode/decode seconds per step (worker and coordinator sides), summed over steps.</summary>
    public double SerializationSeconds { get; private set; }

    /// <summary>Summation, division and optimizer seconds.</summary>
    public double AveragingSeconds { get; private set; }

    /// <summary>The remainder: transfer, scheduling, waiting for the slowest member.</summary>
    public double WaitSeconds => Math.Max(0, TotalSeconds - ComputeSeconds - SerializationSeconds - AveragingSeconds);

    /// <summary>Bytes the coordinator sent to workers.</summary>
    public long BytesSent { get; set; }

    /// <summary>Bytes the coordinator received from workers.</summary>
    public long BytesReceived { get; set; }

    /// <summary>Tensor bytes exchanged with workers through shared-memory files instead of the stream (both ways).</summary>
    public long SharedMemoryBytes { get; set; }

    /// <summary>Raised for every step: total, compute, serialization, averaging seconds.</summary>
    public event Action<double, double, double, double>? Added;

    /// <summary>Adds one step.</summary>
    public void Add(double total, double compute, double serialization, double averaging)
    {
        Added?.Invoke(total, compute, serialization, averaging);
        lock (_lock)
        {
            Steps++;
            TotalSeconds += total;
            ComputeSeconds += compute;
            SerializationSeconds += serialization;
            AveragingSeconds += averaging;
        }
    }

    /// <summary>Writes the "stepBreakdown" report object.</summary>
    public void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject("stepBreakdown");
        w.WriteNumber("steps", Steps);
        w.WriteNumber("totalSeconds", Math.Round(TotalSeconds, 4));
        w.WriteNumber("computeSeconds", Math.Round(ComputeSeconds, 4));
        w.WriteNumber("waitSeconds", Math.Round(WaitSeconds, 4));
        w.WriteNumber("serializationSeconds", Math.Round(SerializationSeconds, 4));
        w.WriteNumber("averagingSeconds", Math.Round(AveragingSeconds, 4));
        w.WriteNumber("meanStepMilliseconds", Steps == 0 ? 0 : Math.Round(TotalSeconds / Steps * 1000, 4));
        w.WriteNumber("bytesSent", BytesSent);
        w.WriteNumber("bytesReceived", BytesReceived);
        w.WriteNumber("sharedMemoryBytes", SharedMemoryBytes);
        w.WriteEndObject();
    }

    /// <summary>A one-line summary for the console.</summary>
    public string Describe()
    {
        if (Steps == 0 || TotalSeconds <= 0)
        {
            return "no steps";
        }

        string Part(double s) => $"{s / TotalSeconds * 100:0.0}%";
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{Steps} steps, {TotalSeconds / Steps * 1000:0.000} ms each: compute {Part(ComputeSeconds)}, wait {Part(WaitSeconds)}, serialization {Part(SerializationSeconds)}, averaging {Part(AveragingSeconds)}; sent {BytesSent / 1e6:0.0} MB, received {BytesReceived / 1e6:0.0} MB{(SharedMemoryBytes > 0 ? $", through shared memory {SharedMemoryBytes / 1e6:0.0} MB" : "")}");
    }
}
