using Microsoft.Extensions.Logging;

namespace Cluster.Contracts.Configuration;

/// <summary>The console logger of every process: single-line text, or one JSON object per line.</summary>
public static class Logs
{
    /// <summary>Creates the logger factory.</summary>
    public static ILoggerFactory Create(LogLevel minimum, string format) => LoggerFactory.Create(b =>
    {
        b.SetMinimumLevel(minimum);
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
}
