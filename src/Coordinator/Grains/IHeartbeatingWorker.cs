namespace Cluster.Coordinator.Grains;

/// <summary>Marks worker references whose liveness is proven by heartbeats (remote silos); in-process workers have no lease.</summary>
public interface IHeartbeatingWorker
{
    /// <summary>
    /// Ends the worker's stream with a status that says it was dropped from the run (lease expired, no answer within the
    /// step timeout), so a worker still alive joins again instead of waiting on a stream no step will use.
    /// </summary>
    void Drop(string reason);
}
