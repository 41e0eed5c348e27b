using System.Diagnostics.Metrics;
using Cluster.Contracts.Metrics;

namespace Cluster.WorkerSilo;

/// <summary>A worker process's instruments, labelled with its own worker id (one value per process).</summary>
public sealed class WorkerMetrics : IDisposable
{
    private static readonly double[] Buckets = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    private readonly Meter _meter;
    private readonly Histogram<double> _compute;
    private readonly Counter<long> _steps;
    private readonly Counter<long> _samples;
    private readonly KeyValuePair<string, object?> _worker;

    /// <summary>Creates the instruments in a meter of <paramref name="scope"/>.</summary>
    public WorkerMetrics(object scope, string workerId, Func<(long Sent, long Received)> transport)
    {
        _worker = new("worker", workerId);
        _meter = new Meter(new MeterOptions(MetricNames.Meter) { Scope = scope });
        _compute = _meter.CreateHistogram(MetricNames.GradientComputeDuration, "s", "Gradient computation time of one step part", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = Buckets });
        _steps = _meter.CreateCounter<long>(MetricNames.WorkerSteps, description: "Step parts this worker computed");
        _samples = _meter.CreateCounter<long>(MetricNames.Samples, description: "Samples whose gradients this worker computed");
        _meter.CreateObservableCounter(MetricNames.BytesSent, () => new Measurement<long>(transport().Sent, _worker), "By", "Bytes sent to the coordinator");
        _meter.CreateObservableCounter(MetricNames.BytesReceived, () => new Measurement<long>(transport().Received, _worker), "By", "Bytes received from the coordinator");
    }

    /// <summary>Records one computed part.</summary>
    public void Computed(int samples, double seconds)
    {
        _compute.Record(seconds, _worker);
        _steps.Add(1, _worker);
        _samples.Add(samples, _worker);
    }

    /// <inheritdoc/>
    public void Dispose() => _meter.Dispose();
}
