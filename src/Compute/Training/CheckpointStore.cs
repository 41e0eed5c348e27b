using System.Globalization;

namespace Cluster.Compute.Training;

/// <summary>
/// A folder of checkpoints named by step. Writes are atomic (temporary file, flush to disk, rename) and only the last
/// few are kept; loading takes the newest that verifies, reporting any corrupt ones it skipped.
/// </summary>
public sealed class CheckpointStore
{
    private const string Prefix = "checkpoint-";
    private const string Suffix = ".bin";

    /// <summary>Creates a store in <paramref name="directory"/> keeping <paramref name="keep"/> files.</summary>
    public CheckpointStore(string directory, int keep = 3)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keep, 1);
        Directory = directory;
        Keep = keep;
    }

    /// <summary>The folder.</summary>
    public string Directory { get; }

    /// <summary>Files kept.</summary>
    public int Keep { get; }

    /// <summary>Writes a checkpoint and prunes old ones; returns its path.</summary>
    public string Save(Checkpoint checkpoint)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var path = Path.Combine(Directory, string.Create(CultureInfo.InvariantCulture, $"{Prefix}{checkpoint.Header.GlobalStep:D12}{Suffix}"));
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(checkpoint.ToBytes());
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
        foreach (var old in Files().Skip(Keep))
        {
            File.Delete(old);
        }

        return path;
    }

    /// <summary>Checkpoint files, newest first.</summary>
    public IReadOnlyList<string> Files() =>
        System.IO.Directory.Exists(Directory)
            ? [.. System.IO.Directory.GetFiles(Directory, Prefix + "*" + Suffix).OrderByDescending(f => Path.GetFileName(f), StringComparer.Ordinal)]
            : [];

    /// <summary>The newest checkpoint that verifies, or null; <paramref name="skipped"/> names the corrupt ones passed over.</summary>
    public Checkpoint? LoadLatest(out List<string> skipped)
    {
        skipped = [];
        foreach (var file in Files())
        {
            try
            {
                return Checkpoint.FromBytes(File.ReadAllBytes(file));
            }
            catch (Exception ex) when (ex is InvalidDataException or IOException or System.Text.Json.JsonException)
            {
                skipped.Add($"{file}: {ex.Message}");
            }
        }

        return null;
    }
}
