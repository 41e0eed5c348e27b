namespace Cluster.Contracts.Grains;

/// <summary>What a worker id may be: what the coordinator accepts in a hello, and the worker checks before it dials.</summary>
public static class WorkerIds
{
    /// <summary>Longest id, in characters: a DNS name's limit, so a Kubernetes pod name always fits.</summary>
    public const int MaxLength = 253;

    /// <summary>Why <paramref name="id"/> cannot be a worker id, or null when it can.</summary>
    public static string? Problem(string? id) => string.IsNullOrWhiteSpace(id) || id.Length > MaxLength
        ? $"A worker id must have 1 to {MaxLength} characters, not all blank; this one has {id?.Length ?? 0}."
        : null;
}
