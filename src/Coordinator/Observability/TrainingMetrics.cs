using System.Diagnostics.Metrics;
using Cluster.Compute.Training;
using Cluster.Contracts.Metrics;
using Cluster.Coordinator.Grains;

namespace Cluster.Coordinator.Observability;

/// <summary>The coordinator's instruments: training progress, step timing, membership and transport.</summary>
public sealed class TrainingMetrics : ITrainingObserver, IDisposable
{
    private static readonly double[] StepBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    private readonly Meter _meter;
    private readonly Gauge<double> _loss;
    private readonly Gauge<double> _epochLoss;
    private readonly Gauge<double> _trainAccuracy;
    private readonly Gauge<double> _testAccuracy;
    private readonly Gauge<long> _epoch;
    private readonly Gauge<long> _step;
    private readonly Gauge<double> _learningRate;
    private readonly Gauge<double> _gradientNorm;
    private readonly Counter<long> _samples;
    private readonly Histogram<double> _stepDuration;
    private readonly Histogram<double> _phase;
    private readonly Histogram<double> _compute;

    /// <summary>Creates the instruments in a meter of <paramref name="scope"/> and follows <paramref name="grain"/>.</summary>
    public TrainingMetrics(object scope, CoordinatorGrain grain, Func<(long Sent, long Received)> transport)
    {
        _meter = new Meter(new MeterOptions(MetricNames.Meter) { Scope = scope });
        var seconds = new InstrumentAdvice<double> { HistogramBucketBoundaries = StepBuckets };
        _loss = _meter.CreateGauge<double>(MetricNames.TrainingLoss, description: "Training loss of the last step");
        _epochLoss = _meter.CreateGauge<double>(MetricNames.EpochLoss, description: "Mean training loss of the last finished epoch");
        _trainAccuracy = _meter.CreateGauge<double>(MetricNames.TrainingAccuracy, description: "Training accuracy of the last finished epoch");
        _testAccuracy = _meter.CreateGauge<double>(MetricNames.TestAccuracy, description: "Test accuracy after the last finished epoch");
        _epoch = _meter.CreateGauge<long>(MetricNames.Epoch, description: "Epoch in progress (1-based)");
        _step = _meter.CreateGauge<long>(MetricNames.Step, description: "Global training step");
        _learningRate = _meter.CreateGauge<double>(MetricNames.LearningRate, description: "Learning rate in use");
        _gradientNorm = _meter.CreateGauge<double>(MetricNames.GradientNorm, description: "L2 norm of the last averaged gradient");
        _samples = _meter.CreateCounter<long>(MetricNames.Samples, description: "Training samples whose gradients were applied");
        _stepDuration = _meter.CreateHistogram(MetricNames.StepDuration, "s", "Wall time of a training step", advice: seconds);
        _phase = _meter.CreateHistogram(MetricNames.StepPhaseDuration, "s", "Time of a step by phase: compute, wait, serialization, averaging", advice: seconds);
        _compute = _meter.CreateHistogram(MetricNames.GradientComputeDuration, "s", "Mean worker gradient computation time per step", advice: seconds);
        _meter.CreateObservableGauge(MetricNames.Active, () => grain.GetStatusAsync().Result.State == "training" ? 1L : 0L, description: "1 while training, 0 when waiting, paused or over");
        _meter.CreateObservableGauge(MetricNames.ActiveWorkers, () => (long)grain.ActiveWorkers, description: "Workers admitted now");
        _meter.CreateObservableGauge(MetricNames.MinWorkers, () => (long)grain.MinWorkers, description: "Workers the run needs");
        _meter.CreateObservableCounter(MetricNames.Joins, () => grain.Counters.Joins, description: "Workers that joined");
        _meter.CreateObservableCounter(MetricNames.Leaves, () => grain.Counters.Leaves, description: "Workers that left gracefully");
        _meter.CreateObservableCounter(MetricNames.Failures, () => grain.Counters.Failures, description: "Workers dropped after a failure");
        _meter.CreateObservableCounter(MetricNames.Reassignments, () => grain.Counters.ReassignedSamples, description: "Samples recomputed by other workers after a failure");
        _meter.CreateObservableCounter(MetricNames.LateGradients, () => grain.Counters.LateGradients, description: "Gradients for an old weight version, dropped");
        _meter.CreateObservableCounter(MetricNames.NonFiniteAnswers, () => grain.Counters.NonFiniteAnswers, description: "Answers with NaN or infinity from a worker whose peers answered the step with finite numbers");
        _meter.CreateObservableCounter(MetricNames.BytesSent, () => transport().Sent, "By", "Bytes sent to workers");
        _meter.CreateObservableCounter(MetricNames.BytesReceived, () => transport().Received, "By", "Bytes received from workers");
        // One series per current member: the label set is bounded by the membership, not by history.
        _meter.CreateObservableGauge(MetricNames.WorkerThroughput, () => grain.GetStatusAsync().Result.Members
            .Where(m => m.State == "active")
            .Select(m => new Measurement<double>(m.SamplesPerSecond, new KeyValuePair<string, object?>("worker", m.WorkerId))), description: "Gradient samples per second of each worker");
        grain.Timings.Added += (total, compute, serialization, averaging) =>
        {
            var wait = Math.Max(0, total - compute - serialization - averaging);
            _phase.Record(compute, new KeyValuePair<string, object?>("phase", "compute"));
            _phase.Record(wait, new KeyValuePair<string, object?>("phase", "wait"));
            _phase.Record(serialization, new KeyValuePair<string, object?>("phase", "serialization"));
            _phase.Record(averaging, new KeyValuePair<string, object?>("phase", "averaging"));
            _compute.Record(compute);
        };
        grain.Trainer.Observe(this);
    }

    /// <inheritdoc/>
    public void OnEpochStart(int epoch, int stepsInEpoch) => _epoch.Record(epoch + 1);

    /// <inheritdoc/>
    public void OnStep(in StepReport report)
    {
        _loss.Record(report.Stats.MeanLoss);
        _step.Record(report.GlobalStep);
        _samples.Add(report.Stats.Count);
        _stepDuration.Record(report.Seconds);
        _learningRate.Record(report.LearningRate);
        _gradientNorm.Record(report.GradientNorm);
    }

    /// <inheritdoc/>
    public void OnEpochEnd(EpochRecord record)
    {
        _epochLoss.Record(record.TrainLoss);
        if (record.TrainAccuracy is { } a)
        {
            _trainAccuracy.Record(a);
        }

        if (record.TestAccuracy is { } t)
        {
            _testAccuracy.Record(t);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _meter.Dispose();
}
