namespace Cluster.Contracts.Grpc;

/// <summary>A call ended with a non-OK gRPC status.</summary>
public sealed class GrpcStatusException : Exception
{
    /// <summary>Creates the exception.</summary>
    public GrpcStatusException(GrpcStatusCode status, string message, Exception? inner = null)
        : base(message, inner)
    {
        Status = status;
    }

    /// <summary>The status code.</summary>
    public GrpcStatusCode Status { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{Status}: {Message}";
}
