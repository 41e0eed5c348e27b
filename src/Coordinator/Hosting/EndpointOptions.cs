using System.Security.Cryptography.X509Certificates;

namespace Cluster.Coordinator.Hosting;

/// <summary>Where and how the coordinator listens.</summary>
public sealed record EndpointOptions
{
    /// <summary>gRPC listen address, e.g. http://0.0.0.0:5000 (port 0: any free port). [CLUSTER_LISTEN]</summary>
    public Uri Listen { get; init; } = new("http://127.0.0.1:5000");

    /// <summary>TLS certificate with its key (PEM files); null for cleartext HTTP/2. [CLUSTER_TLS_CERT, CLUSTER_TLS_KEY]</summary>
    public X509Certificate2? Certificate { get; init; }

    /// <summary>Cluster token required on Join; null accepts anyone (development only). [CLUSTER_TOKEN, CLUSTER_TOKEN_FILE]</summary>
    public string? Token { get; init; }

    /// <summary>Largest message accepted. [CLUSTER_MAX_MESSAGE_MB]</summary>
    public int MaxMessageBytes { get; init; } = Contracts.Grpc.GrpcProtocol.DefaultMaxMessageBytes;

    /// <summary>
    /// Offer a shared-memory file for the tensors to each worker that asks and connects over loopback (see
    /// <see cref="Contracts.Grpc.SharedTensorFile"/>). [CLUSTER_SHARED_MEMORY]
    /// </summary>
    public bool SharedMemory { get; init; } = true;
}
