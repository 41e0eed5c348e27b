using Cluster.Coordinator.Grains;
using Cluster.Coordinator.Hosting;

namespace Cluster.Coordinator.Runs;

/// <summary>How a cluster run is laid out, beyond the training settings.</summary>
public sealed record ClusterSettings
{
    /// <summary>Embedded, worker processes, or remote workers.</summary>
    public ClusterMode Mode { get; init; }

    /// <summary>Workers to start (embedded and processes modes).</summary>
    public int Workers { get; init; } = 1;

    /// <summary>Membership and timing options.</summary>
    public ClusterOptions Cluster { get; init; } = new();

    /// <summary>Listening options (processes and remote modes).</summary>
    public EndpointOptions Endpoint { get; init; } = new();

    /// <summary>Port of /metrics, /healthz, /readyz and /dashboard (HTTP/1.1); null: none, 0: any free port.</summary>
    public int? HttpPort { get; init; }

    /// <summary>Address the HTTP port binds to.</summary>
    public string HttpBind { get; init; } = "127.0.0.1";

    /// <summary>Open the dashboard in a browser once training starts.</summary>
    public bool OpenDashboard { get; init; }

    /// <summary>Minimum log level of the console logger, as asked (--log-level); null: <see cref="LogLevelFor"/>'s default.</summary>
    public Microsoft.Extensions.Logging.LogLevel? LogLevel { get; init; }

    /// <summary>
    /// The log level in effect: the one asked for; else information for <c>cluster coordinator</c>, and warning with
    /// --quiet or for <c>train</c> (whose progress lines already say what the log would).
    /// </summary>
    public Microsoft.Extensions.Logging.LogLevel LogLevelFor(bool quiet) =>
        LogLevel ?? (Mode == ClusterMode.Remote && !quiet ? Microsoft.Extensions.Logging.LogLevel.Information : Microsoft.Extensions.Logging.LogLevel.Warning);
}
