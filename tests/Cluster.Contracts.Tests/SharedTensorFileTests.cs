using System.Runtime.Versioning;
using Cluster.Contracts.Grpc;

namespace Cluster.Contracts.Tests;

/// <summary>The shared-memory file between a coordinator and a worker process on one machine (Linux's /dev/shm).</summary>
[SupportedOSPlatform("linux")]
public sealed class SharedTensorFileTests
{
    private const int Count = 1000; // not a multiple of 16: the gradient starts on the next 64-byte line

    private static float[] Values(float start) => [.. Enumerable.Range(0, Count).Select(i => start + i)];

    [Fact]
    public void CreateAndOpen_ShareWeightsAndGradient_AndSurviveTheUnlink()
    {
        using var coordinator = SharedTensorFile.Create(Count);
        Assert.StartsWith(Path.Combine(SharedTensorFile.Folder, SharedTensorFile.Prefix), coordinator.FilePath);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(coordinator.FilePath));
        Assert.Equal(SharedTensorFile.SizeFor(Count), new FileInfo(coordinator.FilePath).Length);
        using var worker = SharedTensorFile.Open(coordinator.FilePath, coordinator.Nonce, Count);

        // The worker maps it, so the name can go: both mappings keep working.
        coordinator.Unlink();
        Assert.False(File.Exists(coordinator.FilePath));

        coordinator.WriteWeights(5, Values(1));
        worker.CheckWeights(5);
        Assert.Equal(Values(1), worker.Weights.ToArray());

        // In place: begun (no step), computed into, marked.
        worker.BeginGradient();
        Assert.Throws<GrpcStatusException>(() => coordinator.ReadGradient(5, new float[Count]));
        Values(-3).CopyTo(worker.Gradient);
        worker.MarkGradient(5);
        var received = new float[Count];
        coordinator.ReadGradient(5, received);
        Assert.Equal(Values(-3), received);

        // By copy, for a step whose weights came over the stream.
        worker.WriteGradient(6, Values(7));
        coordinator.ReadGradient(6, received);
        Assert.Equal(Values(7), received);
    }

    [Fact]
    public void WeightsOfAnotherStep_OrBeingWritten_FailedPrecondition()
    {
        using var coordinator = SharedTensorFile.Create(Count);
        using var worker = SharedTensorFile.Open(coordinator.FilePath, coordinator.Nonce, Count);
        coordinator.Unlink();
        Assert.Equal(GrpcStatusCode.FailedPrecondition, Assert.Throws<GrpcStatusException>(() => worker.CheckWeights(0)).Status);
        coordinator.WriteWeights(3, Values(0));
        Assert.Equal(GrpcStatusCode.FailedPrecondition, Assert.Throws<GrpcStatusException>(() => worker.CheckWeights(4)).Status);
        worker.CheckWeights(3);
    }

    [Fact]
    public void GradientMarkedWithAnotherStep_InvalidArgument_AndNothingCopied()
    {
        using var coordinator = SharedTensorFile.Create(Count);
        using var worker = SharedTensorFile.Open(coordinator.FilePath, coordinator.Nonce, Count);
        coordinator.Unlink();
        worker.WriteGradient(8, Values(1));
        var destination = Values(100);
        var ex = Assert.Throws<GrpcStatusException>(() => coordinator.ReadGradient(9, destination));
        Assert.Equal(GrpcStatusCode.InvalidArgument, ex.Status);
        Assert.Equal(Values(100), destination);
        Assert.Equal(GrpcStatusCode.InvalidArgument, Assert.Throws<GrpcStatusException>(() => coordinator.ReadGradient(8, new float[Count - 1])).Status);
    }

    [Theory]
    [InlineData("wrong-nonce")]
    [InlineData("wrong-count")]
    [InlineData("outside-dev-shm")]
    [InlineData("other-prefix")]
    [InlineData("symlink")]
    [InlineData("no-header")]
    [InlineData("missing")]
    public void Open_RefusesAnythingButTheOfferedFile_AndWritesNothing(string why)
    {
        using var coordinator = SharedTensorFile.Create(Count);
        var nonce = coordinator.Nonce.ToArray();
        var path = coordinator.FilePath;
        var count = Count;
        var extra = new List<string>();
        try
        {
            switch (why)
            {
                case "wrong-nonce":
                    nonce[5] ^= 1;
                    break;
                case "wrong-count":
                    count = Count + 1;
                    break;
                case "outside-dev-shm":
                    path = Path.Combine(Path.GetTempPath(), Path.GetFileName(coordinator.FilePath));
                    File.Copy(coordinator.FilePath, path);
                    extra.Add(path);
                    break;
                case "other-prefix":
                    path = Path.Combine(SharedTensorFile.Folder, "other-" + Path.GetFileName(coordinator.FilePath));
                    File.Copy(coordinator.FilePath, path);
                    extra.Add(path);
                    break;
                case "symlink":
                    // A name the worker would accept, pointing at the real file.
                    path = Path.Combine(SharedTensorFile.Folder, SharedTensorFile.Prefix + new string('0', 24));
                    File.CreateSymbolicLink(path, coordinator.FilePath);
                    extra.Add(path);
                    break;
                case "no-header":
                    // A file of the right name and size, not written by a coordinator.
                    path = Path.Combine(SharedTensorFile.Folder, SharedTensorFile.Prefix + new string('f', 24));
                    File.WriteAllBytes(path, new byte[SharedTensorFile.SizeFor(Count)]);
                    extra.Add(path);
                    break;
                case "missing":
                    coordinator.Unlink();
                    break;
            }

            var before = File.Exists(path) ? File.ReadAllBytes(path) : null;
            Assert.Throws<IOException>(() => SharedTensorFile.Open(path, nonce, count));
            if (before is not null)
            {
                Assert.Equal(before, File.ReadAllBytes(path));
            }
        }
        finally
        {
            foreach (var file in extra)
            {
                File.Delete(file);
            }

            coordinator.Unlink();
        }
    }

    [Fact]
    public void AfterDispose_Unavailable_AndTheOtherSideKeepsWorking()
    {
        var coordinator = SharedTensorFile.Create(Count);
        using var worker = SharedTensorFile.Open(coordinator.FilePath, coordinator.Nonce, Count);
        coordinator.Unlink();
        coordinator.WriteWeights(1, Values(2));
        coordinator.Dispose();
        Assert.Equal(GrpcStatusCode.Unavailable, Assert.Throws<GrpcStatusException>(() => coordinator.WriteWeights(2, Values(3))).Status);
        worker.CheckWeights(1);
        Assert.Equal(Values(2), worker.Weights.ToArray());
    }

    [Fact]
    public void RemoveOrphans_RemovesOnlyFilesOfDeadCreatorsInThisPidNamespace()
    {
        using var dead = System.Diagnostics.Process.Start("true")!;
        dead.WaitForExit();
        var deadPid = dead.Id;
        Assert.False(Directory.Exists($"/proc/{deadPid}"));

        var live = Forged(_ => { });
        var orphan = Forged(h => Patch(h, 56, deadPid));
        var otherNamespace = Forged(h =>
        {
            Patch(h, 56, deadPid);
            Patch(h, 60, (int)(BitConverter.ToUInt32(h, 60) + 1));
        });
        var oldFormat = Forged(h =>
        {
            Patch(h, 56, deadPid);
            h[7] = (byte)'1';
        });
        var wrongSize = Forged(h => Patch(h, 56, deadPid), extraBytes: 64);
        var outside = Path.Combine(Path.GetTempPath(), $"orphan-target-{Guid.NewGuid():N}");
        File.Copy(orphan, outside);
        var link = Path.Combine(SharedTensorFile.Folder, SharedTensorFile.Prefix + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(12)));
        File.CreateSymbolicLink(link, outside);
        try
        {
            var removed = SharedTensorFile.RemoveOrphans();
            Assert.Contains(orphan, removed);
            Assert.False(File.Exists(orphan));
            foreach (var kept in new[] { live, otherNamespace, oldFormat, wrongSize, link, outside })
            {
                Assert.DoesNotContain(kept, removed);
                Assert.True(File.Exists(kept) || new FileInfo(kept).LinkTarget is not null, kept);
            }

            // The live file still opens.
            Assert.Equal(BitConverter.GetBytes(Environment.ProcessId), File.ReadAllBytes(live).AsSpan(56, 4).ToArray());
        }
        finally
        {
            foreach (var path in new[] { live, orphan, otherNamespace, oldFormat, wrongSize, link, outside })
            {
                File.Delete(path);
            }
        }
    }

    /// <summary>
    /// A file created by this process and closed with its name kept, its header then changed by <paramref name="patch"/>
    /// (the creator's pid at 56, its PID namespace at 60) and <paramref name="extraBytes"/> appended.
    /// </summary>
    private static string Forged(Action<byte[]> patch, int extraBytes = 0)
    {
        string path;
        using (var file = SharedTensorFile.Create(Count))
        {
            path = file.FilePath;
        }

        var bytes = File.ReadAllBytes(path);
        patch(bytes);
        File.WriteAllBytes(path, [.. bytes, .. new byte[extraBytes]]);
        return path;
    }

    private static void Patch(byte[] header, int at, int value) => BitConverter.GetBytes(value).CopyTo(header, at);
}
