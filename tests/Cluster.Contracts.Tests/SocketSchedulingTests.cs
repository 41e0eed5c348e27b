using Cluster.Contracts.Grpc;

namespace Cluster.Contracts.Tests;

public sealed class SocketSchedulingTests
{
    [Fact]
    public void PreferInlineCompletions_TurnsThemOn_UnlessTheEnvironmentSaysEitherWay()
    {
        var name = SocketScheduling.InlineCompletionsVariable;
        Assert.Equal("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", name);
        var original = Environment.GetEnvironmentVariable(name);
        try
        {
            Environment.SetEnvironmentVariable(name, null);
            Assert.False(SocketScheduling.InlineCompletions);
            SocketScheduling.PreferInlineCompletions();
            Assert.Equal("1", Environment.GetEnvironmentVariable(name));
            Assert.True(SocketScheduling.InlineCompletions);

            // A user's explicit 0 keeps the thread-pool hand-off.
            Environment.SetEnvironmentVariable(name, "0");
            SocketScheduling.PreferInlineCompletions();
            Assert.Equal("0", Environment.GetEnvironmentVariable(name));
            Assert.False(SocketScheduling.InlineCompletions);
        }
        finally
        {
            Environment.SetEnvironmentVariable(name, original);
        }
    }
}
