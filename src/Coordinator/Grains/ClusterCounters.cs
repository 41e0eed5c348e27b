namespace Cluster.Coordinator.Grains;

/// <summary>Membership and fault events of a run, for reports and metrics.</summary>
public sealed class ClusterCounters
{
    private long _joins;
    private long _leaves;
    private long _failures;
    private long _reassignedSamples;
    private long _retriedSteps;
    private long _lateGradients;
    private long _nonFiniteAnswers;

    /// <summary>Workers that joined.</summary>
    public long Joins => Interlocked.Read(ref _joins);

    /// <summary>Workers that left gracefully.</summary>
    public long Leaves => Interlocked.Read(ref _leaves);

    /// <summary>Workers dropped (stream lost, lease expired, step timeout, bad message).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Samples whose gradient was recomputed by another worker after a failure.</summary>
    public long ReassignedSamples => Interlocked.Read(ref _reassignedSamples);

    /// <summary>Steps that needed a second round because a member failed.</summary>
    public long RetriedSteps => Interlocked.Read(ref _retriedSteps);

    /// <summary>Gradients that arrived for an old weight version and were dropped.</summary>
    public long LateGradients => Interlocked.Read(ref _lateGradients);

    /// <summary>Answers with NaN or infinity from workers whose peers answered the same step with finite numbers.</summary>
    public long NonFiniteAnswers => Interlocked.Read(ref _nonFiniteAnswers);

    /// <summary>Writes the counters as the "faults" object of reports and the dashboard's status.</summary>
    public void Write(System.Text.Json.Utf8JsonWriter w)
    {
        w.WriteStartObject("faults");
        w.WriteNumber("joins", Joins);
        w.WriteNumber("leaves", Leaves);
        w.WriteNumber("failures", Failures);
        w.WriteNumber("reassignedSamples", ReassignedSamples);
        w.WriteNumber("retriedSteps", RetriedSteps);
        w.WriteNumber("lateGradients", LateGradients);
        w.WriteNumber("nonFiniteAnswers", NonFiniteAnswers);
        w.WriteEndObject();
    }

    /// <summary>Raised after any counter changes: (name, amount).</summary>
    public event Action<string, long>? Changed;

    internal void Join() => Add(ref _joins, "joins", 1);

    internal void Leave() => Add(ref _leaves, "leaves", 1);

    internal void Failure() => Add(ref _failures, "failures", 1);

    internal void Reassigned(long samples) => Add(ref _reassignedSamples, "reassignments", samples);

    internal void RetriedStep() => Add(ref _retriedSteps, "retried_steps", 1);

    internal void Late() => Add(ref _lateGradients, "late_gradients", 1);

    internal void NonFinite() => Add(ref _nonFiniteAnswers, "non_finite_answers", 1);

    private void Add(ref long field, string name, long amount)
    {
        Interlocked.Add(ref field, amount);
        Changed?.Invoke(name, amount);
    }
}
