namespace Cluster.Compute.Backends;

/// <summary>Creates backends by their command-line names.</summary>
public static class BackendFactory
{
    /// <summary>The names --backend accepts.</summary>
    public static readonly IReadOnlyList<string> Names = ["auto", "managed", "openblas"];

    /// <summary>
    /// Creates <paramref name="name"/> with <paramref name="threads"/> threads. "auto" is the managed backend, which
    /// needs nothing from the system; "openblas" fails with a clear message when the library is missing.
    /// <paramref name="spin"/>: whether the managed backend's threads spin between products (by default, when they fit
    /// the processors; pass false when other threads share them, as several in-process workers do).
    /// </summary>
    public static ComputeBackend Create(string name, int threads, bool? spin = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        switch (name.ToLowerInvariant())
        {
            case "auto":
            case "managed":
                return new ManagedBackend(threads, spin);
            case "openblas":
                return OpenBlasBackend.TryCreate(threads, out var reason) ?? throw new InvalidOperationException(reason);
            default:
                throw new ArgumentException($"Unknown backend '{name}'; use one of: {string.Join(", ", Names)}.", nameof(name));
        }
    }
}
