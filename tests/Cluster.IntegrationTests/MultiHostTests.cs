using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Cluster.Compute.Data;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Xunit.Abstractions;
using Cluster.Coordinator.Runs;

namespace Cluster.IntegrationTests;

/// <summary>
/// Separate network hosts on one machine: network namespaces joined by veth links to a bridge, the coordinator in
/// one, worker silos in others, each with its own address. A worker's link is cut mid-run and a fourth joins.
/// </summary>
public sealed class MultiHostTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _id = Guid.NewGuid().ToString("N")[..6];
    private readonly List<string> _namespaces = [];
    private readonly List<Process> _processes = [];
    private readonly string _dir = Directory.CreateTempSubdirectory("multihost").FullName;
    private readonly int _subnet = Random.Shared.Next(10, 250);
    private string? _rootLink;

    private string Ip(int host) => $"10.77.{_subnet}.{host}";

    private static void Sh(string args)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"ip {args}: {error}");
    }

    private string Host(string role, int address, string bridgeNamespace)
    {
        var ns = $"cl{role}{_id}";
        Sh($"netns add {ns}");
        _namespaces.Add(ns);
        var outside = $"v{role}{_id}";
        Sh($"link add {outside} type veth peer name eth0 netns {ns}");
        Sh($"link set {outside} netns {bridgeNamespace}");
        Sh($"-n {bridgeNamespace} link set {outside} master br0 up");
        Sh($"-n {ns} addr add {Ip(address)}/24 dev eth0");
        Sh($"-n {ns} link set eth0 up");
        Sh($"-n {ns} link set lo up");
        return ns;
    }

    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _output = new();

    private Process Start(string ns, params string[] args)
    {
        var psi = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "netns", "exec", ns, "dotnet", Path.Combine(AppContext.BaseDirectory, "cluster.dll") }.Concat(args))
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["CLUSTER_TOKEN"] = "multi-host-token";
        var p = Process.Start(psi)!;
        _ = ChildOutput.Pump(p, ns, line => _output.Enqueue($"[{ns}] {line}"));
        _processes.Add(p);
        return p;
    }

    private async Task<StatusReply?> StatusAsync()
    {
        try
        {
            await using var client = new GrpcClient(new Uri($"http://{Ip(1)}:5000"));
            return await client.UnaryAsync(GrpcProtocol.GetStatusPath, new StatusRequest(), StatusReply.Parser, TimeSpan.FromSeconds(2));
        }
        catch (GrpcStatusException)
        {
            return null;
        }
    }

    [RootFact]
    public async Task Workers_OnSeparateHosts_SurviveALinkCutAndAJoin_WithExactAccounting()
    {
        var dataDir = Path.Combine(Repo.Root, "data", "mnist");
        await MnistFetcher.EnsureAsync(dataDir);
        var bridge = $"clsw{_id}";
        Sh($"netns add {bridge}");
        _namespaces.Add(bridge);
        Sh($"-n {bridge} link add br0 type bridge");
        Sh($"-n {bridge} link set br0 up");
        // A link from this (root) namespace too, so the test can watch the coordinator.
        _rootLink = $"vroot{_id}";
        Sh($"link add {_rootLink} type veth peer name vr{_id} netns {bridge}");
        Sh($"-n {bridge} link set vr{_id} master br0 up");
        Sh($"addr add {Ip(254)}/24 dev {_rootLink}");
        Sh($"link set {_rootLink} up");
        var coordinatorNs = Host("co", 1, bridge);
        var workerNs = Enumerable.Range(1, 4).Select(i => Host($"w{i}", 10 + i, bridge)).ToArray();

        var report = Path.Combine(_dir, "report.json");
        var coordinator = Start(coordinatorNs, "coordinator", "--dataset", "mnist", "--data-dir", dataDir, "--listen", $"http://{Ip(1)}:5000",
            "--min-workers", "3", "--batch-size", "200", "--epochs", "3", "--lease-seconds", "3", "--step-timeout-seconds", "30",
            "--report", report, "--quiet", "--log-level", "warning");
        string[] Worker(int i) => ["worker", "--coordinator", $"http://{Ip(1)}:5000", "--worker-id", $"host{i}", "--heartbeat-seconds", "0.5", "--log-level", "warning", "--connect-timeout-seconds", "30"];
        for (var i = 1; i <= 3; i++)
        {
            Start(workerNs[i - 1], Worker(i));
        }

        var clock = Stopwatch.StartNew();
        StatusReply? status = null;
        while ((status = await StatusAsync())?.Step is not >= 150)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(3) && !coordinator.HasExited, $"the run never reached step 150 (status: {status})");
            await Task.Delay(50);
        }

        var stepAtCut = status!.Step;
        Sh($"-n {workerNs[0]} link set eth0 down");
        var cut = Stopwatch.StartNew();
        Start(workerNs[3], Worker(4));
        double? recovered = null;
        while (!coordinator.HasExited)
        {
            status = await StatusAsync();
            if (recovered is null && status is not null && !status.Members.Any(m => m.WorkerId == "host1" && m.State == "active") && status.Step > stepAtCut + 2)
            {
                recovered = cut.Elapsed.TotalSeconds;
            }

            await Task.Delay(50);
        }

        Assert.True(coordinator.WaitForExit(180_000), "the coordinator did not finish");
        Assert.Equal(0, coordinator.ExitCode);
        using var json = JsonDocument.Parse(File.ReadAllText(report));
        var root = json.RootElement;
        var accounting = root.GetProperty("sampleAccounting").EnumerateArray().ToList();
        Assert.Equal(3, accounting.Count);
        Assert.All(accounting, a => Assert.Equal((60000, 60000, 0, 0), (a.GetProperty("samples").GetInt32(), a.GetProperty("used").GetInt32(), a.GetProperty("duplicates").GetInt32(), a.GetProperty("missing").GetInt32())));
        var faults = root.GetProperty("faults");
        Assert.Equal(1, faults.GetProperty("failures").GetInt64());
        Assert.Equal(4, faults.GetProperty("joins").GetInt64());
        var steps = root.GetProperty("stepBreakdown").GetProperty("steps").GetInt64();
        var figures = $"{{\"steps\":{steps},\"stepAtCut\":{stepAtCut},\"recoverySeconds\":{(recovered ?? -1).ToString("0.00", CultureInfo.InvariantCulture)},\"failures\":{faults.GetProperty("failures").GetInt64()},\"reassignedSamples\":{faults.GetProperty("reassignedSamples").GetInt64()},\"testAccuracy\":{root.GetProperty("testAccuracy").GetDouble().ToString("0.0000", CultureInfo.InvariantCulture)}}}";
        File.WriteAllText(Path.Combine(Repo.Artifacts, "multihost.json"), figures);
        log.WriteLine(figures);
        foreach (var line in _output.Where(l => l.Contains("warn", StringComparison.Ordinal) || l.Contains("fail", StringComparison.Ordinal)).Take(40))
        {
            log.WriteLine(line);
        }

        Assert.True(recovered is > 0 and < 30, $"recovery took {recovered} s");
    }

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            try
            {
                if (!p.HasExited)
                {
                    p.Kill(entireProcessTree: true);
                    p.WaitForExit(10_000);
                }
            }
            catch (InvalidOperationException)
            {
            }

            p.Dispose();
        }

        // Namespaces go even when the test failed; deleting one removes its end of every veth pair.
        foreach (var ns in _namespaces)
        {
            Run("ip", $"netns del {ns}");
        }

        if (_rootLink is not null)
        {
            Run("ip", $"link del {_rootLink}");
        }

        Directory.Delete(_dir, true);
    }

    private static void Run(string file, string args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        p.WaitForExit();
    }
}
