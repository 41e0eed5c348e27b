using Cluster.Contracts.Grains;
using Cluster.Contracts.V1;

namespace Cluster.Coordinator.Grains;

/// <summary>Where a worker stands in the membership.</summary>
public enum MemberState
{
    /// <summary>Joined, not yet admitted (admission happens at a step boundary).</summary>
    Pending,

    /// <summary>Told to wait: the cluster is at its maximum.</summary>
    Waiting,

    /// <summary>Admitted and holding a shard.</summary>
    Active,

    /// <summary>Said goodbye.</summary>
    Left,

    /// <summary>Stream dropped, lease expired, or misbehaved.</summary>
    Failed,
}

/// <summary>The coordinator's record of one worker.</summary>
internal sealed class Member(string id, IWorkerGrain worker, Hello hello, long joinedTicks)
{
    public string Id { get; } = id;

    public IWorkerGrain Worker { get; } = worker;

    public Hello Hello { get; } = hello;

    public MemberState State { get; set; } = MemberState.Pending;

    public int Rank { get; set; } = -1;

    public IndexRange[] Ranges { get; set; } = [];

    public long Generation { get; set; } = -1;

    public int[] Indices { get; set; } = [];

    public int IndexCount { get; set; }

    public long LastSeenTicks { get; set; } = joinedTicks;

    public long Samples { get; set; }

    public double LastSamplesPerSecond { get; set; }

    public string? FailureReason { get; set; }

    public CancellationTokenSource? StepCall { get; set; }

    public bool IsLive => State is MemberState.Pending or MemberState.Waiting or MemberState.Active;
}
