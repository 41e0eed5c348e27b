namespace Cluster.Coordinator.Grains;

/// <summary>Marks worker references whose liveness is proven by heartbeats (remote silos); in-process workers have no lease.</summary>
public interface IHeartbeatingWorker;
