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
}
