using Cluster.Coordinator.Hosting;

namespace Cluster.Coordinator.Tests;

public sealed class MemoryPoolTests
{
    [Fact]
    public void Rent_GivesWholeBlocks_AndReusesReturnedOnes()
    {
        using var pool = new LargeBlockMemoryPoolFactory().Create();
        Assert.Equal(LargeBlockMemoryPool.BlockSize, pool.MaxBufferSize);
        var first = pool.Rent(100);
        Assert.Equal(LargeBlockMemoryPool.BlockSize, first.Memory.Length);
        first.Memory.Span[0] = 42;
        var memory = first.Memory;
        first.Dispose();
        using var again = pool.Rent();
        Assert.True(again.Memory.Span.Overlaps(memory.Span), "a returned block is handed out again");
        Assert.Equal(42, again.Memory.Span[0]);
        using var other = pool.Rent();
        Assert.False(other.Memory.Span.Overlaps(again.Memory.Span), "two blocks rented at once never share memory");
    }

    [Fact]
    public void Rent_MoreThanABlock_IsRefused()
    {
        using var pool = new LargeBlockMemoryPool();
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(LargeBlockMemoryPool.BlockSize + 1));
    }

    [Fact]
    public void Return_KeepsAtMostTheLimit()
    {
        using var pool = new LargeBlockMemoryPool();
        var blocks = Enumerable.Range(0, LargeBlockMemoryPool.MaxPooled + 10).Select(_ => pool.Rent()).ToList();
        foreach (var b in blocks)
        {
            b.Dispose();
        }

        var reused = Enumerable.Range(0, LargeBlockMemoryPool.MaxPooled + 10).Select(_ => pool.Rent()).ToList();
        var kept = reused.Count(r => blocks.Any(b => b.Memory.Span.Overlaps(r.Memory.Span)));
        Assert.Equal(LargeBlockMemoryPool.MaxPooled, kept);
    }

    [Fact]
    public void Rent_AfterDispose_Throws()
    {
        var pool = new LargeBlockMemoryPool();
        pool.Dispose();
        Assert.Throws<ObjectDisposedException>(() => pool.Rent());
    }
}
