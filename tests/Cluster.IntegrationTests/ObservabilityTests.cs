using Cluster.Tests.Shared;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Cluster.Compute.Backends;
using Cluster.Compute.Training;
using Cluster.Contracts.Metrics;
using Cluster.Contracts.V1;
using Cluster.Coordinator.Grains;
using Cluster.Coordinator.Observability;
using Cluster.WorkerSilo;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Playwright;
using Cluster.Coordinator.Runs;

namespace Cluster.IntegrationTests;

/// <summary>Metrics, Prometheus, the dashboard and the deploy assets, checked against the real tools.</summary>
public sealed partial class ObservabilityTests
{
    /// <summary>Slows training down so scrapers and browsers see it in progress.</summary>
    private sealed class Pace(TimeSpan perStep) : ITrainingObserver
    {
        public void OnStep(in StepReport report) => Thread.Sleep(perStep);
    }

    private sealed class LiveRun : IAsyncDisposable
    {
        private readonly ManagedBackend _eval = new(1);
        private readonly List<WorkerGrain> _workers = [];
        private readonly PrometheusExporter _exporter;
        private readonly TrainingMetrics _metrics;
        private readonly CancellationTokenSource _stop = new();

        private LiveRun(CoordinatorGrain grain, PrometheusExporter exporter, TrainingMetrics metrics, MetricsHost http)
        {
            Grain = grain;
            _exporter = exporter;
            _metrics = metrics;
            Http = http;
        }

        public CoordinatorGrain Grain { get; }

        public MetricsHost Http { get; }

        public Task Training { get; private set; } = Task.CompletedTask;

        public static async Task<LiveRun> StartAsync(int workers, int epochs, TimeSpan pace, Func<Uri, Task>? beforeTraining = null)
        {
            var run = TestRuns.Run(epochs: epochs, batch: 24, trainCount: 480);
            var eval = new ManagedBackend(1);
            var grain = new CoordinatorGrain(run, new ClusterOptions { MinWorkers = workers }, eval, NullLogger.Instance);
            var scope = new object();
            var exporter = new PrometheusExporter(scope);
            var metrics = new TrainingMetrics(scope, grain, () => (0, 0));
            var http = await MetricsHost.StartAsync(IPAddress.Loopback, 0, exporter, () => true, app => DashboardRoutes.Map(app, grain));
            var live = new LiveRun(grain, exporter, metrics, http);
            for (var i = 0; i < workers; i++)
            {
                var w = new WorkerGrain($"worker-{i}");
                live._workers.Add(w);
                await grain.JoinAsync(new Hello { WorkerId = w.WorkerId, ProtocolVersion = 1, Address = "in-process" }, w, CancellationToken.None);
            }

            grain.Trainer.Observe(new Pace(pace));
            if (beforeTraining is not null)
            {
                await beforeTraining(http.Address);
            }

            live.Training = grain.RunAsync(live._stop.Token);
            return live;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            try
            {
                await Training;
            }
            catch (OperationCanceledException)
            {
                // The test had seen what it needed.
            }

            await Http.DisposeAsync();
            _metrics.Dispose();
            _exporter.Dispose();
            _workers.ForEach(w => w.Dispose());
            _eval.Dispose();
        }
    }

    private static (int Code, string Output) Run(string file, string args, string? stdin = null)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null };
        using var p = Process.Start(psi)!;
        if (stdin is not null)
        {
            p.StandardInput.Write(stdin);
            p.StandardInput.Close();
        }

        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(60_000), $"{file} did not finish");
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    [Fact]
    public async Task Scrape_PassesPromtool_AndHasTheDocumentedSeries()
    {
        await using var live = await LiveRun.StartAsync(2, 4, TimeSpan.FromMilliseconds(2));
        await TestRuns.WaitForAsync(() => live.Grain.Trainer.State.GlobalStep > 10, "10 steps", () => live.Grain.Trainer.State.GlobalStep.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var http = new HttpClient();
        var text = await http.GetStringAsync(new Uri(live.Http.Address, "metrics"));
        File.WriteAllText(Path.Combine(Repo.Artifacts, "coordinator-metrics.txt"), text);
        var (code, output) = Run("promtool", "check metrics", text);
        Assert.True(code == 0, output);
        foreach (var name in new[] { "cluster_training_loss", "cluster_samples_total", "cluster_step_duration_seconds_bucket", "cluster_workers_active", "cluster_training_step", "cluster_membership_joins_total", "cluster_step_phase_duration_seconds_bucket{phase=\"compute\",le=\"0.0001\"}", "dotnet_gc_collections_total", "dotnet_process_cpu_time_seconds_total" })
        {
            Assert.Contains(name, text);
        }

        Assert.Contains("cluster_worker_throughput{worker=\"worker-0\"}", text);
        Assert.Equal("ok\n", await http.GetStringAsync(new Uri(live.Http.Address, "healthz")));
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(live.Http.Address, "readyz"))).StatusCode);
    }

    [Fact]
    public async Task WorkerProcess_ServesMetricsHealthAndReadiness()
    {
        var run = TestRuns.Run(epochs: 30);
        await using var cluster = await ClusterFixture.StartAsync(run, new ClusterOptions { MinWorkers = 1 });
        var port = FreePort();
        cluster.StartWorker("metrics-worker", "--http-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        cluster.Grain.Trainer.Observe(new Pace(TimeSpan.FromMilliseconds(5)));
        var training = cluster.Grain.RunAsync(CancellationToken.None);
        using var http = new HttpClient();
        var url = new Uri($"http://127.0.0.1:{port}/");
        await TestRuns.WaitForAsync(() => cluster.Grain.Trainer.State.GlobalStep > 20, "20 steps", () => cluster.Grain.Trainer.State.GlobalStep.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(url, "readyz"))).StatusCode);
        var text = await http.GetStringAsync(new Uri(url, "metrics"));
        File.WriteAllText(Path.Combine(Repo.Artifacts, "worker-metrics.txt"), text);
        var (code, output) = Run("promtool", "check metrics", text);
        Assert.True(code == 0, output);
        Assert.Contains("cluster_gradient_compute_duration_seconds_bucket{worker=\"metrics-worker\",le=\"+Inf\"}", text);
        Assert.Contains("cluster_transport_received_bytes_total{worker=\"metrics-worker\"}", text);
        await training;
    }

    [Fact]
    public async Task RealPrometheus_ScrapesALiveRun_AndSeesTheLossFall()
    {
        var promPort = FreePort();
        var dir = Directory.CreateTempSubdirectory("prometheus").FullName;
        Process? prometheus = null;
        var started = DateTimeOffset.UtcNow;
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{promPort}") };
        try
        {
            await using var live = await LiveRun.StartAsync(2, 40, TimeSpan.FromMilliseconds(8), async target =>
            {
                var config = Path.Combine(dir, "prometheus.yml");
                File.WriteAllText(config, $"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: cluster\n    scrape_interval: 500ms\n    scrape_timeout: 400ms\n    static_configs:\n      - targets: [\"127.0.0.1:{target.Port}\"]\n");
                var psi = new ProcessStartInfo("prometheus", $"--config.file={config} --storage.tsdb.path={dir}/data --web.listen-address=127.0.0.1:{promPort}") { RedirectStandardError = true, RedirectStandardOutput = true };
                prometheus = Process.Start(psi)!;
                _ = ChildOutput.Pump(prometheus, "prometheus", _ => { });
                // Training starts once Prometheus has scraped the target at least once.
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while (DateTime.UtcNow < deadline)
                {
                    try
                    {
                        var up = await http.GetStringAsync("/api/v1/query?query=up");
                        if (up.Contains("\"1\"]", StringComparison.Ordinal))
                        {
                            break;
                        }
                    }
                    catch (HttpRequestException)
                    {
                    }

                    await Task.Delay(200);
                }

                started = DateTimeOffset.UtcNow;
            });
            await live.Training;
            await Task.Delay(1500);
            var query = $"/api/v1/query_range?query=cluster_training_loss&start={started.ToUnixTimeSeconds() - 1}&end={DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1}&step=0.5";
            using var json = JsonDocument.Parse(await http.GetStringAsync(query));
            var result = json.RootElement.GetProperty("data").GetProperty("result");
            Assert.Equal(1, result.GetArrayLength());
            var values = result[0].GetProperty("values").EnumerateArray().Select(v => double.Parse(v[1].GetString()!, System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.True(values.Count >= 8, $"only {values.Count} samples");
            // Step losses are noisy; compare the first and last quarters of the run.
            var quarter = values.Count / 4;
            var early = values.Take(quarter).Average();
            var late = values.TakeLast(quarter).Average();
            Assert.True(late < early, $"loss went from {early} to {late} (means of the first and last quarters)");
            File.WriteAllText(Path.Combine(Repo.Artifacts, "prometheus-loss.json"), json.RootElement.ToString());
        }
        finally
        {
            if (prometheus is not null)
            {
                prometheus.Kill(entireProcessTree: true);
                prometheus.WaitForExit();
                prometheus.Dispose();
            }

            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Dashboard_InHeadlessChromium_ShowsCurvesAndMembers()
    {
        await using var live = await LiveRun.StartAsync(3, 200, TimeSpan.FromMilliseconds(5));
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = "/usr/bin/chromium",
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        await page.GotoAsync(new Uri(live.Http.Address, "dashboard").ToString());
        await page.WaitForFunctionAsync("() => Number(document.getElementById('loss-chart').dataset.points) > 5 && Number(document.getElementById('epoch-chart').dataset.points) > 0", null, new PageWaitForFunctionOptions { Timeout = 60_000 });
        var rows = await page.Locator("#members tr").CountAsync();
        Assert.Equal(3, rows);
        Assert.Equal("worker-0", await page.Locator("#members tr").First.GetAttributeAsync("data-worker"));
        Assert.Equal("training", await page.Locator("#state").TextContentAsync());
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Repo.Artifacts, "dashboard.png"), FullPage = true });
        Assert.True(new FileInfo(Path.Combine(Repo.Artifacts, "dashboard.png")).Length > 10_000);
    }

    [Fact]
    public void DeployAssets_PassPromtool_AndGrafanaQueriesExportedNames()
    {
        var prom = Path.Combine(Repo.Root, "deploy", "prometheus");
        var (code, output) = Run("promtool", $"check config {Path.Combine(prom, "prometheus.yml")}");
        Assert.True(code == 0, output);
        (code, output) = Run("promtool", $"check rules {Path.Combine(prom, "alerts.yml")}");
        Assert.True(code == 0, output);
        var exported = ExportedNames();
        var grafana = File.ReadAllText(Path.Combine(Repo.Root, "deploy", "grafana", "cluster-training.json"));
        using var dashboard = JsonDocument.Parse(grafana);
        var expressions = dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray()).Select(t => t.GetProperty("expr").GetString()!).ToList();
        expressions.AddRange(Regex.Matches(File.ReadAllText(Path.Combine(prom, "alerts.yml")), "expr: (.*)").Select(m => m.Groups[1].Value));
        Assert.True(expressions.Count > 15);
        foreach (var name in expressions.SelectMany(e => MetricName().Matches(e).Select(m => m.Value)).Distinct())
        {
            Assert.True(exported.Contains(name), $"{name} is queried but not exported (exported: {string.Join(", ", exported.Order())})");
        }
    }

    /// <summary>Every series name a coordinator and a worker export.</summary>
    internal static HashSet<string> ExportedNames()
    {
        var scope = new object();
        using var exporter = new PrometheusExporter(scope);
        using var eval = new ManagedBackend(1);
        var run = TestRuns.Run(epochs: 1);
        var grain = new CoordinatorGrain(run, new ClusterOptions(), eval, NullLogger.Instance);
        using var training = new TrainingMetrics(scope, grain, () => (1, 1));
        using var worker = new WorkerMetrics(scope, "w", () => (1, 1));
        using var member = new WorkerGrain("member");
        grain.JoinAsync(new Hello { WorkerId = "member", ProtocolVersion = 1 }, member, CancellationToken.None).GetAwaiter().GetResult();
        grain.RunAsync(CancellationToken.None).GetAwaiter().GetResult();
        worker.Computed(1, 0.001);
        return [.. exporter.Scrape().Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => l.Split('{', ' ')[0]).SelectMany(n => new[] { n, Regex.Replace(n, "_(bucket|sum|count)$", "") })];
    }

    [GeneratedRegex(@"\b(cluster|dotnet)_[a-z0-9_]+\b")]
    private static partial Regex MetricName();

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
