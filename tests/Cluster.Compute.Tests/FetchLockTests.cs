using Cluster.Compute.Data;

namespace Cluster.Compute.Tests;

public sealed class FetchLockTests
{
    [Fact]
    public async Task FetchLock_MakesASecondFetcherWait_UntilTheFirstLetsGo()
    {
        var dir = Directory.CreateTempSubdirectory("fetch-lock-").FullName;
        try
        {
            var first = await MnistFetcher.LockAsync(dir, TimeSpan.FromMinutes(1), CancellationToken.None);
            var second = MnistFetcher.LockAsync(dir, TimeSpan.FromMinutes(1), CancellationToken.None);
            await Task.Delay(300);
            Assert.False(second.IsCompleted);
            await first.DisposeAsync();
            await using (await second.WaitAsync(TimeSpan.FromSeconds(30)))
            {
                // A waiter that gives up says which file holds it.
                var ex = await Assert.ThrowsAsync<IOException>(() => MnistFetcher.LockAsync(dir, TimeSpan.FromMilliseconds(200), CancellationToken.None));
                Assert.Contains(MnistFetcher.LockFileName, ex.Message, StringComparison.Ordinal);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
