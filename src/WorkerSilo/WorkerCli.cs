using System.CommandLine;
using Cluster.Compute.Backends;
using Cluster.Compute.Data;
using Cluster.Contracts.Configuration;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.Grains;
using Cluster.Contracts.Metrics;
using Microsoft.Extensions.Logging;

namespace Cluster.WorkerSilo;

/// <summary>The worker command line, shared by the WorkerSilo executable and <c>cluster worker</c>.</summary>
public static class WorkerCli
{
    /// <summary>Creates the command (named <paramref name="name"/>).</summary>
    public static Command Create(string name = "worker")
    {
        var command = new Command(name, "Join a coordinator as a worker silo and compute gradients until the run ends. SIGTERM finishes the current step and leaves gracefully. Exit codes: 0 the run ended (or the worker left), 1 bad options or a run stopped unfinished, 2 no coordinator reached within --connect-timeout-seconds, 3 refused by the coordinator (token, worker id, protocol version, or repeated NaN gradients).");
        var coordinator = EnvOption.Create<string?>("--coordinator", "Coordinator address, e.g. http://coordinator:5000 (https:// for TLS).", "CLUSTER_COORDINATOR", null);
        var workerId = EnvOption.Create<string?>("--worker-id", "Unique worker id (default: POD_NAME, else host name and process id).", "CLUSTER_WORKER_ID", null);
        var threads = EnvOption.Create("--threads", "Compute threads (the managed backend computes a product on at most the processor count).", "CLUSTER_THREADS", 1);
        var backend = EnvOption.Create("--backend", "Compute backend: auto, managed or openblas.", "CLUSTER_BACKEND", "auto");
        var dataDir = EnvOption.Create<string?>("--data-dir", "Load MNIST from this folder instead of receiving the shard from the coordinator; its training files are checked (SHA-256) before the worker dials.", "CLUSTER_DATA_DIR", null);
        var token = EnvOption.Create<string?>("--token", "Cluster token (prefer --token-file or a mounted Secret).", "CLUSTER_TOKEN", null);
        var tokenFile = EnvOption.Create<string?>("--token-file", "File holding the cluster token.", "CLUSTER_TOKEN_FILE", null);
        var ca = EnvOption.Create<string?>("--ca-file", "Certificate to trust for a TLS coordinator (e.g. its self-signed certificate).", "CLUSTER_CA_FILE", null);
        var heartbeat = EnvOption.Create("--heartbeat-seconds", "Seconds between heartbeats.", "CLUSTER_HEARTBEAT_SECONDS", 2.0);
        var connectTimeout = EnvOption.Create("--connect-timeout-seconds", "Give up after this many seconds without a connection the coordinator speaks on (counted from the end of the last one, or from the start).", "CLUSTER_CONNECT_TIMEOUT_SECONDS", 120.0);
        var maxMessage = EnvOption.Create("--max-message-mb", "Largest message accepted, in MiB, 1 to 2047; it must hold the model's weights (a worker whose limit cannot exits at its admission).", "CLUSTER_MAX_MESSAGE_MB", 64);
        var httpPort = EnvOption.Create("--http-port", "Port of /metrics, /healthz and /readyz (0: off).", "CLUSTER_HTTP_PORT", 0);
        var podIp = EnvOption.Create<string?>("--address", "Address reported to the coordinator (default: POD_IP).", "POD_IP", null);
        var logLevel = EnvOption.Create("--log-level", "Least severe log level shown: trace, debug, information, warning, error.", "CLUSTER_LOG_LEVEL", "information");
        var logFormat = EnvOption.Create("--log-format", "Log lines as text or json (structured).", "CLUSTER_LOG_FORMAT", "text");
        var sharedMemory = EnvOption.Create("--shared-memory", SharedMemoryHelp, "CLUSTER_SHARED_MEMORY", "auto");
        foreach (var o in new Option[] { coordinator, workerId, threads, backend, dataDir, token, tokenFile, ca, heartbeat, connectTimeout, maxMessage, httpPort, podIp, logLevel, logFormat, sharedMemory })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (r, cancellationToken) =>
        {
            var error = r.InvocationConfiguration.Error;
            WorkerOptions options;
            try
            {
                var address = r.GetValue(coordinator) ?? throw new ArgumentException("--coordinator is required (or set CLUSTER_COORDINATOR).");
                if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                {
                    throw new ArgumentException($"--coordinator must be an http:// or https:// address, not '{address}'.");
                }

                options = new WorkerOptions
                {
                    Coordinator = uri,
                    WorkerId = WorkerIdOf(r.GetValue(workerId)),
                    Threads = r.GetValue(threads) >= 1 ? r.GetValue(threads) : throw new ArgumentException("--threads must be at least 1."),
                    Backend = BackendFactory.Names.Contains(r.GetValue(backend)!.ToLowerInvariant()) ? r.GetValue(backend)! : throw new ArgumentException($"--backend must be one of {string.Join(", ", BackendFactory.Names)}, not '{r.GetValue(backend)}'."),
                    DataDir = r.GetValue(dataDir),
                    Token = TokenSource.Read(r.GetValue(token), r.GetValue(tokenFile)),
                    TrustedCertificate = r.GetValue(ca),
                    HeartbeatInterval = TimeSpan.FromSeconds(Positive(r.GetValue(heartbeat), "--heartbeat-seconds")),
                    ConnectTimeout = TimeSpan.FromSeconds(Positive(r.GetValue(connectTimeout), "--connect-timeout-seconds")),
                    MaxMessageBytes = GrpcProtocol.MaxMessageBytesOf(r.GetValue(maxMessage)),
                    Address = r.GetValue(podIp),
                    HttpPort = r.GetValue(httpPort),
                    LogLevel = ParseLogLevel(r.GetValue(logLevel)!),
                    LogFormat = r.GetValue(logFormat) is "text" or "json" ? r.GetValue(logFormat)! : throw new ArgumentException("--log-format must be text or json."),
                    SharedMemory = ParseSharedMemory(r.GetValue(sharedMemory)),
                };
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or IOException or UnauthorizedAccessException)
            {
                await error.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
                return 1;
            }

            try
            {
                // The training files of --data-dir are checked before dialling (SHA-256, as 'data fetch' does), so a worker
                // never trains on a partial or different copy, and a wrong folder is said at once instead of at admission.
                if (options.DataDir is { } dir)
                {
                    MnistFetcher.Verify(dir, trainOnly: true);
                }

                return await RunAsync(options, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is InvalidOperationException or InvalidDataException or IOException)
            {
                // A backend that cannot start here (openblas without its library), a missing or corrupt --data-dir.
                await error.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
                return 1;
            }
        });
        return command;
    }

    /// <summary>Runs a worker silo until the run ends or the process is asked to stop.</summary>
    public static async Task<int> RunAsync(WorkerOptions options, CancellationToken cancellationToken)
    {
        using var loggerFactory = Logs.Create(options.LogLevel, options.LogFormat);
        var logger = loggerFactory.CreateLogger("WorkerSilo");
        using var grain = new WorkerGrain(options.WorkerId, options.Backend, options.Threads, options.DataDir);
        var scope = new object();
        using var exporter = new PrometheusExporter(scope);
        SiloHost? host = null;
        using var metrics = new WorkerMetrics(scope, options.WorkerId, () => host is null ? (0, 0) : (host.BytesSent, host.BytesReceived));
        host = new SiloHost(options, grain, logger, metrics);
        await using var http = options.HttpPort > 0
            ? await MetricsHost.StartAsync(System.Net.IPAddress.Any, options.HttpPort, exporter, () => host.Ready).ConfigureAwait(false)
            : null;
        // Cancelled by Ctrl+C or SIGTERM (TerminationSignals, in both executables): the step in hand ends and a goodbye goes.
        return await host.RunAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>What --shared-memory does, the same on both ends.</summary>
    public const string SharedMemoryHelp = "Tensors between a coordinator and a worker process on the same machine: auto (through a shared-memory file in /dev/shm that the coordinator offers to a worker connected over loopback, when the worker can open it; the Join stream then carries only the step's plan and the gradient's figures) or off (every tensor over the stream).";

    /// <summary>Reads a <c>--shared-memory</c> value: true for auto, false for off.</summary>
    public static bool ParseSharedMemory(string? value) => value switch
    {
        "auto" => true,
        "off" => false,
        _ => throw new ArgumentException($"--shared-memory must be auto or off, not '{value}'."),
    };

    /// <summary>Parses a log level name.</summary>
    public static LogLevel ParseLogLevel(string s) => Enum.TryParse<LogLevel>(s, ignoreCase: true, out var level) && Enum.IsDefined(level)
        ? level
        : throw new ArgumentException($"Unknown --log-level '{s}'; use trace, debug, information, warning or error.");

    /// <summary>The id given (checked here, not first at the coordinator), else the pod's name, else host name and process id.</summary>
    private static string WorkerIdOf(string? given)
    {
        var id = given ?? (Environment.GetEnvironmentVariable("POD_NAME") is { Length: > 0 } pod ? pod : $"{Environment.MachineName}-{Environment.ProcessId}");
        return WorkerIds.Problem(id) is { } problem ? throw new ArgumentException($"--worker-id: {problem}") : id;
    }

    private static double Positive(double value, string name) =>
        value > 0 && double.IsFinite(value) ? value : throw new ArgumentException($"{name} must be a positive number.");
}
