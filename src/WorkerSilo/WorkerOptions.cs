namespace Cluster.WorkerSilo;

/// <summary>A worker silo's settings; each has an environment-variable twin.</summary>
public sealed record WorkerOptions
{
    /// <summary>Coordinator address (http:// or https://). [CLUSTER_COORDINATOR]</summary>
    public required Uri Coordinator { get; init; }

    /// <summary>Unique worker id. [CLUSTER_WORKER_ID, default POD_NAME, then host name and process id]</summary>
    public required string WorkerId { get; init; }

    /// <summary>Compute threads. [CLUSTER_THREADS]</summary>
    public int Threads { get; init; } = 1;

    /// <summary>Compute backend. [CLUSTER_BACKEND]</summary>
    public string Backend { get; init; } = "auto";

    /// <summary>Load MNIST from here instead of receiving the shard's bytes. [CLUSTER_DATA_DIR]</summary>
    public string? DataDir { get; init; }

    /// <summary>Cluster token. [CLUSTER_TOKEN or CLUSTER_TOKEN_FILE]</summary>
    public string? Token { get; init; }

    /// <summary>Certificate to trust for a TLS coordinator. [CLUSTER_CA_FILE]</summary>
    public string? TrustedCertificate { get; init; }

    /// <summary>How often to send a heartbeat. [CLUSTER_HEARTBEAT_SECONDS]</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Give up after this long without reaching the coordinator. [CLUSTER_CONNECT_TIMEOUT_SECONDS]</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Largest message accepted. [CLUSTER_MAX_MESSAGE_MB]</summary>
    public int MaxMessageBytes { get; init; } = Contracts.Grpc.GrpcProtocol.DefaultMaxMessageBytes;

    /// <summary>Address reported to the coordinator (pod IP). [POD_IP]</summary>
    public string? Address { get; init; }

    /// <summary>Least severe log level shown. [CLUSTER_LOG_LEVEL]</summary>
    public Microsoft.Extensions.Logging.LogLevel LogLevel { get; init; } = Microsoft.Extensions.Logging.LogLevel.Information;

    /// <summary>text or json logs. [CLUSTER_LOG_FORMAT]</summary>
    public string LogFormat { get; init; } = "text";

    /// <summary>
    /// Ask for a shared-memory file for the tensors, used when the coordinator runs on this machine and offers one.
    /// [CLUSTER_SHARED_MEMORY]
    /// </summary>
    public bool SharedMemory { get; init; } = true;

    /// <summary>Port of the HTTP endpoints (/metrics, /healthz, /readyz); 0 disables them. [CLUSTER_HTTP_PORT]</summary>
    public int HttpPort { get; init; }
}
