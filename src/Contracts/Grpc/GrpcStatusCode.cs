namespace Cluster.Contracts.Grpc;

/// <summary>The standard gRPC status codes.</summary>
public enum GrpcStatusCode
{
    /// <summary>Success.</summary>
    Ok = 0,

    /// <summary>The caller cancelled.</summary>
    Cancelled = 1,

    /// <summary>Unknown error.</summary>
    Unknown = 2,

    /// <summary>A malformed or invalid request.</summary>
    InvalidArgument = 3,

    /// <summary>The deadline passed.</summary>
    DeadlineExceeded = 4,

    /// <summary>Not found.</summary>
    NotFound = 5,

    /// <summary>Already exists (e.g. a duplicate worker id).</summary>
    AlreadyExists = 6,

    /// <summary>Authenticated but not allowed.</summary>
    PermissionDenied = 7,

    /// <summary>A limit was exceeded (message size).</summary>
    ResourceExhausted = 8,

    /// <summary>The system is not in a state for this call.</summary>
    FailedPrecondition = 9,

    /// <summary>Aborted (e.g. a stale step).</summary>
    Aborted = 10,

    /// <summary>Out of range.</summary>
    OutOfRange = 11,

    /// <summary>Method or feature not implemented.</summary>
    Unimplemented = 12,

    /// <summary>Internal error, including broken framing.</summary>
    Internal = 13,

    /// <summary>Temporarily unavailable.</summary>
    Unavailable = 14,

    /// <summary>Unrecoverable data loss.</summary>
    DataLoss = 15,

    /// <summary>Missing or wrong credentials.</summary>
    Unauthenticated = 16,
}
