namespace Cluster.Coordinator.Runs;

/// <summary>The three ways to run the same training logic.</summary>
public enum ClusterMode
{
    /// <summary>All grains in this process, no sockets.</summary>
    Embedded,

    /// <summary>The coordinator listens on 127.0.0.1 and starts worker processes that join over gRPC.</summary>
    Processes,

    /// <summary>The coordinator listens and waits for workers started elsewhere.</summary>
    Remote,
}
