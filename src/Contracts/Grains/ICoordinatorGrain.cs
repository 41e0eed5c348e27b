using Cluster.Contracts.V1;

namespace Cluster.Contracts.Grains;

/// <summary>
/// The coordinator grain: membership, shard plan, step loop, exact gradient averaging, optimizer and history.
/// Workers call it; it calls them back through their <see cref="IWorkerGrain"/> reference.
/// </summary>
public interface ICoordinatorGrain
{
    /// <summary>A worker asks to join; the coordinator answers through <paramref name="worker"/>.AdmitAsync.</summary>
    Task JoinAsync(Hello hello, IWorkerGrain worker, CancellationToken cancellationToken);

    /// <summary>A worker leaves (gracefully, or its stream died).</summary>
    Task LeaveAsync(string workerId, string reason, bool graceful);

    /// <summary>A worker is alive.</summary>
    Task HeartbeatAsync(string workerId);

    /// <summary>The run's state.</summary>
    Task<StatusReply> GetStatusAsync();
}
