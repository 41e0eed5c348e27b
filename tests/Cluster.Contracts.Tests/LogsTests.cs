using Cluster.Contracts.Configuration;
using Microsoft.Extensions.Logging;

namespace Cluster.Contracts.Tests;

public sealed class LogsTests
{
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
