using System.CommandLine;
using Cluster.Coordinator.Cli;
using Cluster.Coordinator.Runs;
using Microsoft.Extensions.Logging;

namespace Cluster.Coordinator.Tests;

/// <summary>Which log lines a coordinator prints: --log-level when given, else information, or warning with --quiet.</summary>
public sealed class LogLevelTests
{
    [Theory]
    [InlineData(null, false, LogLevel.Information)]
    [InlineData(null, true, LogLevel.Warning)]
    [InlineData("debug", false, LogLevel.Debug)]
    [InlineData("debug", true, LogLevel.Debug)]
    [InlineData("Error", true, LogLevel.Error)]
    public void Coordinator_LogLevelAsked_ElseInformation_OrWarningWhenQuiet(string? asked, bool quiet, LogLevel expected)
    {
        var options = new ClusterOptionSet();
        var command = new Command("coordinator");
        options.AddTo(command);
        var settings = options.Bind(command.Parse(asked is null ? [] : ["--log-level", asked]));
        Assert.Equal(ClusterMode.Remote, settings.Mode);
        Assert.Equal(expected, settings.LogLevelFor(quiet));
    }

    [Theory]
    [InlineData(ClusterMode.Embedded)]
    [InlineData(ClusterMode.Processes)]
    public void Train_LogsWarningsUnlessAsked(ClusterMode mode)
    {
        Assert.Equal(LogLevel.Warning, new ClusterSettings { Mode = mode }.LogLevelFor(quiet: false));
        Assert.Equal(LogLevel.Trace, new ClusterSettings { Mode = mode, LogLevel = LogLevel.Trace }.LogLevelFor(quiet: true));
    }

    [Fact]
    public void UnknownLogLevel_IsAClearError()
    {
        var options = new ClusterOptionSet();
        var command = new Command("coordinator");
        options.AddTo(command);
        var error = Assert.Throws<ArgumentException>(() => options.Bind(command.Parse(["--log-level", "loud"])));
        Assert.Contains("--log-level", error.Message);
    }
}
