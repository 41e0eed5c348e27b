using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace Cluster.WorkerSilo.Tests;

public sealed partial class SiloHostTests
{
    [Fact]
    public async Task RunAsync_NoCoordinator_RetriesWithinItsTimeout_ThenGivesUpWithTheLastReason()
    {
        // Nothing listens on port 9 of the loopback address: every try is refused at once.
        var log = new ListLogger();
        using var worker = new WorkerGrain("alone");
        var host = new SiloHost(new WorkerOptions { Coordinator = new Uri("http://127.0.0.1:9"), WorkerId = "alone", ConnectTimeout = TimeSpan.FromSeconds(1) }, worker, log);
        Assert.Equal(2, await host.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1)));

        // The waits it announces end by its timeout (before, the backoff doubled past it: 0.2 + 0.4 + 0.8 s for a
        // timeout of 1 s), and its last line says why the last try failed.
        var waits = log.Lines.Select(l => RetryingIn().Match(l)).Where(m => m.Success).Select(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
        Assert.NotEmpty(waits);
        Assert.True(waits.Sum() <= 1.0 + 0.05 * waits.Count, $"announced waits of {string.Join(" + ", waits)} s pass the 1 s timeout");
        Assert.Matches(@"^The coordinator at http://127\.0\.0\.1:9/ could not be reached for 1 s \(Cannot reach http://127\.0\.0\.1:9/.*\); giving up$", log.Lines[^1]);
    }

    [GeneratedRegex(@"retrying in ([0-9.]+) s$")]
    private static partial Regex RetryingIn();

    private sealed class ListLogger : ILogger
    {
        private readonly List<string> _lines = [];

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (_lines)
                {
                    return [.. _lines];
                }
            }
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_lines)
            {
                _lines.Add(formatter(state, exception));
            }
        }
    }
}
