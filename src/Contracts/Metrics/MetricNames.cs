namespace Cluster.Contracts.Metrics;

/// <summary>
/// Every instrument of the product's meter, in one place. Names are OpenTelemetry-style; the Prometheus exposition
/// turns "cluster.step.duration" with unit "s" into cluster_step_duration_seconds (and counters get _total).
/// </summary>
public static class MetricNames
{
    /// <summary>The product's meter.</summary>
    public const string Meter = "Cluster.Training";

    /// <summary>Loss of the last step (gauge).</summary>
    public const string TrainingLoss = "cluster.training.loss";

    /// <summary>Mean training loss of the last finished epoch (gauge).</summary>
    public const string EpochLoss = "cluster.training.epoch_loss";

    /// <summary>Training accuracy of the last finished epoch (gauge).</summary>
    public const string TrainingAccuracy = "cluster.training.accuracy";

    /// <summary>Test accuracy after the last epoch (gauge).</summary>
    public const string TestAccuracy = "cluster.test.accuracy";

    /// <summary>Epoch in progress, 1-based (gauge).</summary>
    public const string Epoch = "cluster.training.epoch";

    /// <summary>1 while the run is training, 0 when waiting, paused or over (gauge).</summary>
    public const string Active = "cluster.training.active";

    /// <summary>Global step (gauge).</summary>
    public const string Step = "cluster.training.step";

    /// <summary>Training samples whose gradient was applied (counter).</summary>
    public const string Samples = "cluster.samples";

    /// <summary>Wall time of a training step, seconds (histogram).</summary>
    public const string StepDuration = "cluster.step.duration";

    /// <summary>Time of a step spent in each phase (compute, wait, serialization, averaging), seconds (histogram).</summary>
    public const string StepPhaseDuration = "cluster.step.phase.duration";

    /// <summary>Gradient computation time of one worker part, seconds (histogram).</summary>
    public const string GradientComputeDuration = "cluster.gradient.compute.duration";

    /// <summary>Bytes sent on the training transport (counter).</summary>
    public const string BytesSent = "cluster.transport.sent";

    /// <summary>Bytes received on the training transport (counter).</summary>
    public const string BytesReceived = "cluster.transport.received";

    /// <summary>Workers admitted now (gauge).</summary>
    public const string ActiveWorkers = "cluster.workers.active";

    /// <summary>Workers the run needs (gauge).</summary>
    public const string MinWorkers = "cluster.workers.min";

    /// <summary>Workers that joined (counter).</summary>
    public const string Joins = "cluster.membership.joins";

    /// <summary>Workers that left gracefully (counter).</summary>
    public const string Leaves = "cluster.membership.leaves";

    /// <summary>Workers dropped after a failure (counter).</summary>
    public const string Failures = "cluster.membership.failures";

    /// <summary>Samples recomputed by other workers after a failure (counter).</summary>
    public const string Reassignments = "cluster.membership.reassignments";

    /// <summary>Late gradients dropped (counter).</summary>
    public const string LateGradients = "cluster.gradients.late";

    /// <summary>Answers with NaN or infinity from a worker whose peers answered the same step with finite numbers (counter).</summary>
    public const string NonFiniteAnswers = "cluster.gradients.non_finite";

    /// <summary>Learning rate in use (gauge).</summary>
    public const string LearningRate = "cluster.training.learning_rate";

    /// <summary>L2 norm of the last averaged gradient (gauge).</summary>
    public const string GradientNorm = "cluster.gradient.norm";

    /// <summary>Per-member throughput, samples per second (gauge, label worker).</summary>
    public const string WorkerThroughput = "cluster.worker.throughput";

    /// <summary>Steps a worker process computed (counter).</summary>
    public const string WorkerSteps = "cluster.worker.steps";
}
