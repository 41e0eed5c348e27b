using System.CommandLine;
using System.Security.Cryptography.X509Certificates;
using Cluster.Contracts.Configuration;
using Cluster.Contracts.Grpc;
using Cluster.Coordinator.Grains;
using Cluster.Coordinator.Hosting;
using Cluster.Coordinator.Runs;
using Cluster.WorkerSilo;

namespace Cluster.Coordinator.Cli;

/// <summary>The options of <c>cluster coordinator</c> beyond training: listening, membership, security.</summary>
public sealed class ClusterOptionSet
{
    private readonly Option<string> _listen = EnvOption.Create("--listen", "gRPC listen address (HTTP/2): http://HOST:PORT, or https:// with --tls-cert/--tls-key.", "CLUSTER_LISTEN", "http://0.0.0.0:5000");
    private readonly Option<int> _httpPort = EnvOption.Create("--http-port", "Port of /metrics, /healthz, /readyz and /dashboard over plain HTTP/1.1 (0: off).", "CLUSTER_HTTP_PORT", 0);
    private readonly Option<int> _minWorkers = EnvOption.Create("--min-workers", "Workers needed to train; below it the run pauses and waits.", "CLUSTER_MIN_WORKERS", 1);
    private readonly Option<int> _maxWorkers = EnvOption.Create("--max-workers", "Most workers; more are told to wait.", "CLUSTER_MAX_WORKERS", 1024);
    private readonly Option<double> _stepTimeout = EnvOption.Create("--step-timeout-seconds", "A worker that does not answer a step in time is dropped and its part recomputed by the others.", "CLUSTER_STEP_TIMEOUT_SECONDS", 60.0);
    private readonly Option<double> _lease = EnvOption.Create("--lease-seconds", "A worker silent (no heartbeat) this long is dropped.", "CLUSTER_LEASE_SECONDS", 15.0);
    private readonly Option<string?> _token = EnvOption.Create<string?>("--token", "Cluster token required from workers (prefer --token-file).", "CLUSTER_TOKEN", null);
    private readonly Option<string?> _tokenFile = EnvOption.Create<string?>("--token-file", "File holding the cluster token (e.g. a mounted Kubernetes Secret).", "CLUSTER_TOKEN_FILE", null);
    private readonly Option<string?> _tlsCert = EnvOption.Create<string?>("--tls-cert", "PEM certificate for TLS on the gRPC port.", "CLUSTER_TLS_CERT", null);
    private readonly Option<string?> _tlsKey = EnvOption.Create<string?>("--tls-key", "PEM private key of --tls-cert.", "CLUSTER_TLS_KEY", null);
    private readonly Option<int> _maxMessage = EnvOption.Create("--max-message-mb", "Largest gRPC message accepted, in MiB, 1 to 2047 (larger ones get RESOURCE_EXHAUSTED); it must hold the model's weights, and a smaller one is refused at start.", "CLUSTER_MAX_MESSAGE_MB", 64);
    private readonly Option<string?> _logLevel = EnvOption.Create<string?>("--log-level", "Least severe log level shown: trace, debug, information, warning, error (default: information; warning with --quiet).", "CLUSTER_LOG_LEVEL", null);

    /// <summary>Adds the options to a command.</summary>
    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { _listen, _httpPort, _minWorkers, _maxWorkers, _stepTimeout, _lease, _token, _tokenFile, _tlsCert, _tlsKey, _maxMessage, _logLevel })
        {
            command.Options.Add(o);
        }
    }

    /// <summary>Reads the options.</summary>
    public ClusterSettings Bind(ParseResult r)
    {
        var listenText = r.GetValue(_listen)!;
        if (!Uri.TryCreate(listenText, UriKind.Absolute, out var listen) || listen.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException($"--listen must look like http://0.0.0.0:5000, not '{listenText}'.");
        }

        X509Certificate2? certificate = null;
        if (r.GetValue(_tlsCert) is { } cert)
        {
            var key = r.GetValue(_tlsKey) ?? throw new ArgumentException("--tls-cert needs --tls-key (CLUSTER_TLS_KEY).");
            certificate = X509Certificate2.CreateFromPemFile(cert, key);
        }

        var min = r.GetValue(_minWorkers);
        var max = r.GetValue(_maxWorkers);
        if (min < 1 || max < min)
        {
            throw new ArgumentException($"Need 1 <= --min-workers ({min}) <= --max-workers ({max}).");
        }

        return new ClusterSettings
        {
            Mode = ClusterMode.Remote,
            Cluster = new ClusterOptions
            {
                MinWorkers = min,
                MaxWorkers = max,
                StepTimeout = TimeSpan.FromSeconds(Positive(r.GetValue(_stepTimeout), "--step-timeout-seconds")),
                Lease = TimeSpan.FromSeconds(Positive(r.GetValue(_lease), "--lease-seconds")),
            },
            Endpoint = new EndpointOptions
            {
                Listen = listen,
                Certificate = certificate,
                Token = TokenSource.Read(r.GetValue(_token), r.GetValue(_tokenFile)),
                MaxMessageBytes = GrpcProtocol.MaxMessageBytesOf(r.GetValue(_maxMessage)),
            },
            LogLevel = r.GetValue(_logLevel) is { } level ? WorkerCli.ParseLogLevel(level) : null,
            HttpPort = r.GetValue(_httpPort) switch
            {
                0 => null,
                > 0 and < 65536 and var port => port,
                var bad => throw new ArgumentException($"--http-port must be 1..65535 or 0 (off), not {bad}."),
            },
            HttpBind = listen.Host,
        };
    }

    private static double Positive(double value, string name) =>
        value > 0 && double.IsFinite(value) ? value : throw new ArgumentException($"{name} must be a positive number.");
}
