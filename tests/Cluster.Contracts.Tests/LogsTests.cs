using Cluster.Contracts.Configuration;
using Microsoft.Extensions.Logging;

namespace Cluster.Contracts.Tests;

public sealed class LogsTests
{
    [Theory]
    [InlineData(LogLevel.Information, false, LogLevel.Information)]
    [InlineData(LogLevel.Debug, false, LogLevel.Debug)]
    [InlineData(LogLevel.Information, true, LogLevel.Warning)]
    [InlineData(LogLevel.Trace, true, LogLevel.Warning)]
    [InlineData(LogLevel.Error, true, LogLevel.Error)]
    public void Quiet_KeepsWarningsAndErrorsOnly(LogLevel requested, bool quiet, LogLevel expected) =>
        Assert.Equal(expected, Logs.Minimum(requested, quiet));

    [Fact]
    public void AspNetCoreRequestLines_ShowFromDebugOnly_TheClustersOwnFromTheLevelAsked()
    {
        using (var information = Logs.Create(LogLevel.Information, "text"))
        {
            Assert.True(information.CreateLogger("Cluster.Coordinator").IsEnabled(LogLevel.Information));
            Assert.False(information.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Information));
            Assert.True(information.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Warning));
            Assert.True(information.CreateLogger("Microsoft.Hosting.Lifetime").IsEnabled(LogLevel.Information));
        }

        using (var debug = Logs.Create(LogLevel.Debug, "json"))
        {
            Assert.True(debug.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Debug));
            Assert.False(debug.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Trace));
        }

        using var error = Logs.Create(LogLevel.Error, "text");
        Assert.False(error.CreateLogger("Microsoft.AspNetCore.Server.Kestrel").IsEnabled(LogLevel.Warning));
        Assert.False(error.CreateLogger("Cluster.Coordinator").IsEnabled(LogLevel.Warning));
    }
}
