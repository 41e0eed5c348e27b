using Microsoft.Extensions.Logging;

namespace Cluster.Contracts.Configuration;

/// <summary>The console logger of every process: single-line text, or one JSON object per line.</summary>
public static class Logs
{
    /// <summary>
    /// Creates the logger factory. ASP.NET Core's own lines (a request started, a request finished: one pair per worker
    /// stream) show from <see cref="LogLevel.Debug"/> only; above that, its warnings and errors still show.
    /// </summary>
    public static ILoggerFactory Create(LogLevel minimum, string format) => LoggerFactory.Create(b =>
    {
        b.SetMinimumLevel(minimum);
        b.AddFilter("Microsoft.AspNetCore", minimum <= LogLevel.Debug ? minimum : Max(minimum, LogLevel.Warning));
        // The host logs a failed start (a port in use) with its whole stack trace; the exception reaches the command,
        // which says it in one line ("error: Failed to bind to address ...: address already in use.").
        b.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", minimum <= LogLevel.Debug ? minimum : LogLevel.Critical);
        if (format == "json")
        {
            b.AddJsonConsole(o =>
            {
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                o.UseUtcTimestamp = true;
            });
        }
        else
        {
            b.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
            });
        }
    });

    private static LogLevel Max(LogLevel a, LogLevel b) => a > b ? a : b;
}
