namespace Cluster.WorkerSilo;

/// <summary>Reads the cluster token from a value or a file (as a Kubernetes Secret mounts it).</summary>
public static class TokenSource
{
    /// <summary>The token, trimmed; null when neither is given.</summary>
    public static string? Read(string? value, string? file)
    {
        if (file is not null)
        {
            if (!File.Exists(file))
            {
                throw new ArgumentException($"Token file not found: {file}");
            }

            value = File.ReadAllText(file);
        }

        value = value?.Trim();
        if (value is { Length: 0 })
        {
            throw new ArgumentException("The cluster token is empty.");
        }

        return value;
    }
}
