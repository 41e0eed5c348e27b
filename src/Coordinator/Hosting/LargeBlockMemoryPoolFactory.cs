using System.Buffers;
using Microsoft.AspNetCore.Connections;

namespace Cluster.Coordinator.Hosting;

/// <summary>
/// Gives Kestrel's socket transport and HTTP/2 pipes 64 KiB blocks instead of its default 4 KiB ones. A step moves a
/// megabyte-scale tensor each way per worker; with 4 KiB blocks the transport reads it 4 KiB per system call and wakes
/// the HTTP/2 frame reader for every piece, a large share of the coordinator's CPU time per step.
/// </summary>
internal sealed class LargeBlockMemoryPoolFactory : IMemoryPoolFactory<byte>
{
    /// <inheritdoc/>
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new LargeBlockMemoryPool();
}
