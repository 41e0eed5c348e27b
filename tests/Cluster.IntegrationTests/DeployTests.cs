using Cluster.Tests.Shared;
using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Cluster.Coordinator.Cli;
using Cluster.WorkerSilo;
using YamlDotNet.RepresentationModel;
using Cluster.Coordinator.Runs;

namespace Cluster.IntegrationTests;

/// <summary>The container and Kubernetes files, kept in step with the binaries.</summary>
public sealed class DeployTests
{
    private static readonly string K8s = Path.Combine(Repo.Root, "deploy", "k8s");

    public static TheoryData<string> Overlays() => new() { "dev", "large" };

    private static (int Code, string Stdout, string Stderr) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(120_000), $"{file} did not finish");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private static List<YamlMappingNode> Render(string overlay)
    {
        var (code, yaml, error) = Run("kubectl", "kustomize", Path.Combine(K8s, "overlays", overlay));
        Assert.True(code == 0, error);
        File.WriteAllText(Path.Combine(Repo.Artifacts, $"k8s-{overlay}.yaml"), yaml);
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return [.. stream.Documents.Select(d => (YamlMappingNode)d.RootNode)];
    }

    private static string? Scalar(YamlNode node, params string[] path)
    {
        var current = node;
        foreach (var key in path)
        {
            if (current is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out var next))
            {
                return null;
            }

            current = next;
        }

        return (current as YamlScalarNode)?.Value;
    }

    private static IEnumerable<YamlNode> Seq(YamlNode node, params string[] path)
    {
        var current = node;
        foreach (var key in path)
        {
            if (current is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out var next))
            {
                return [];
            }

            current = next;
        }

        return current is YamlSequenceNode seq ? seq.Children : [];
    }

    private static YamlNode? Node(YamlNode node, params string[] path)
    {
        var current = node;
        foreach (var key in path)
        {
            if (current is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out var next))
            {
                return null;
            }

            current = next;
        }

        return current;
    }

    /// <summary>Flags and environment variables a binary understands, read from its command definition.</summary>
    private static (HashSet<string> Flags, HashSet<string> Env) Understood(Command command)
    {
        var flags = new HashSet<string>(command.Options.SelectMany(o => o.Aliases.Append(o.Name)), StringComparer.Ordinal);
        var env = new HashSet<string>(StringComparer.Ordinal);
        foreach (var option in command.Options)
        {
            var description = option.Description ?? "";
            var at = description.IndexOf("[env: ", StringComparison.Ordinal);
            if (at >= 0)
            {
                env.Add(description[(at + 6)..description.IndexOf(']', at)]);
            }
        }

        return (flags, env);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Overlay_RendersLintsAndMatchesTheBinaries(string overlay)
    {
        var docs = Render(overlay);
        var (code, _, lint) = Run("yamllint", "-c", Path.Combine(Repo.Root, ".yamllint"), Path.Combine(Repo.Artifacts, $"k8s-{overlay}.yaml"));
        Assert.True(code == 0, lint);
        var coordinatorCommand = CliApp.Build().Subcommands.Single(c => c.Name == "coordinator");
        var coordinator = Understood(coordinatorCommand);
        var worker = Understood(WorkerCli.Create());
        worker.Env.Add("POD_NAME"); // default worker id, documented on --worker-id
        var configMaps = docs.Where(d => Scalar(d, "kind") == "ConfigMap").ToDictionary(d => Scalar(d, "metadata", "name")!, d => (YamlMappingNode)Node(d, "data")!);
        var secrets = docs.Where(d => Scalar(d, "kind") == "Secret").Select(d => Scalar(d, "metadata", "name")!).ToHashSet();
        var services = docs.Where(d => Scalar(d, "kind") == "Service").ToList();
        var deployments = docs.Where(d => Scalar(d, "kind") == "Deployment").ToList();
        Assert.Equal(2, deployments.Count);
        var containerPorts = new Dictionary<string, HashSet<string>>();
        foreach (var deployment in deployments)
        {
            var name = Scalar(deployment, "metadata", "name")!;
            var pod = Node(deployment, "spec", "template")!;
            var component = Scalar(pod, "metadata", "labels", "app.kubernetes.io/component")!;
            var container = Seq(pod, "spec", "containers").Single();
            var image = Scalar(container, "image")!;
            var understood = image.StartsWith("cluster-coordinator", StringComparison.Ordinal) ? coordinator : image.StartsWith("cluster-worker", StringComparison.Ordinal) ? worker : throw new InvalidOperationException($"unknown image {image}");
            var env = new Dictionary<string, string?>();
            foreach (var e in Seq(container, "env"))
            {
                env[Scalar(e, "name")!] = Scalar(e, "value");
            }

            foreach (var from in Seq(container, "envFrom"))
            {
                var map = configMaps[Scalar(from, "configMapRef", "name")!];
                foreach (var (k, v) in map.Children)
                {
                    env[((YamlScalarNode)k).Value!] = ((YamlScalarNode)v).Value;
                }
            }

            foreach (var variable in env.Keys)
            {
                Assert.True(understood.Env.Contains(variable), $"{name}: environment variable {variable} is not an option of the binary");
            }

            foreach (var arg in Seq(container, "args").Select(a => ((YamlScalarNode)a).Value!).Where(a => a.StartsWith("--", StringComparison.Ordinal)))
            {
                Assert.True(understood.Flags.Contains(arg), $"{name}: flag {arg} is not an option of the binary");
            }

            var ports = Seq(container, "ports").ToDictionary(p => Scalar(p, "name")!, p => int.Parse(Scalar(p, "containerPort")!, System.Globalization.CultureInfo.InvariantCulture));
            containerPorts[component] = [.. ports.Keys];
            Assert.Equal(int.Parse(env["CLUSTER_HTTP_PORT"]!, System.Globalization.CultureInfo.InvariantCulture), ports["http"]);
            if (env.TryGetValue("CLUSTER_LISTEN", out var listen))
            {
                Assert.Equal(new Uri(listen!).Port, ports["grpc"]);
            }

            foreach (var probe in new[] { "readinessProbe", "livenessProbe" })
            {
                var path = Scalar(container, probe, "httpGet", "path");
                Assert.Contains(path, new[] { "/healthz", "/readyz" });
                Assert.True(ports.ContainsKey(Scalar(container, probe, "httpGet", "port")!), $"{name}: {probe} port");
            }

            Assert.Equal("true", Scalar(pod, "metadata", "annotations", "prometheus.io/scrape"));
            Assert.Equal(ports["http"].ToString(System.Globalization.CultureInfo.InvariantCulture), Scalar(pod, "metadata", "annotations", "prometheus.io/port"));
            Assert.Equal("/metrics", Scalar(pod, "metadata", "annotations", "prometheus.io/path"));
            foreach (var volume in Seq(pod, "spec", "volumes").Where(v => Node(v, "secret") is not null))
            {
                Assert.Contains(Scalar(volume, "secret", "secretName")!, secrets);
            }

            if (component == "coordinator")
            {
                Assert.Equal("Recreate", Scalar(deployment, "spec", "strategy", "type"));
                Assert.Equal("1", Scalar(deployment, "spec", "replicas"));
                Assert.Contains("--resume", Seq(container, "args").Select(a => ((YamlScalarNode)a).Value));
            }
            else
            {
                // Longer than the 30 s a worker takes at most to finish its step and say goodbye.
                Assert.True(int.Parse(Scalar(pod, "spec", "terminationGracePeriodSeconds")!, System.Globalization.CultureInfo.InvariantCulture) > 30);
                Assert.Contains(env.Keys, k => k == "POD_NAME");
                Assert.Contains(env.Keys, k => k == "POD_IP");
                Assert.Equal(overlay == "large" ? "32" : "2", Scalar(deployment, "spec", "replicas"));
            }
        }

        foreach (var service in services)
        {
            var component = Scalar(service, "spec", "selector", "app.kubernetes.io/component")!;
            foreach (var port in Seq(service, "spec", "ports"))
            {
                Assert.Contains(Scalar(port, "targetPort")!, containerPorts[component]);
            }
        }

        var monitor = docs.Single(d => Scalar(d, "kind") == "ServiceMonitor");
        var servicePortNames = services.SelectMany(s => Seq(s, "spec", "ports").Select(p => Scalar(p, "name"))).ToHashSet();
        Assert.All(Seq(monitor, "spec", "endpoints"), e => Assert.Contains(Scalar(e, "port"), servicePortNames));
        Assert.Single(docs, d => Scalar(d, "kind") == "PodDisruptionBudget");
        Assert.Single(docs, d => Scalar(d, "kind") == "PersistentVolumeClaim");
        Assert.Single(docs, d => Scalar(d, "kind") == "Namespace");
    }

    [Fact]
    public async Task ImageEntrypoints_StartAndAnswerHealthz()
    {
        var dir = Directory.CreateTempSubdirectory("entrypoints").FullName;
        var processes = new List<Process>();
        try
        {
            var csv = Path.Combine(dir, "toy.csv");
            var data = TestRuns.Data(200, 1);
            var sb = new StringBuilder(string.Join(',', Enumerable.Range(0, 16).Select(i => $"f{i}")) + ",label\n");
            for (var i = 0; i < data.Count; i++)
            {
                sb.Append(string.Join(',', data.Row(i).ToArray().Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))).Append(',').Append(data.Labels![i]).Append('\n');
            }

            File.WriteAllText(csv, sb.ToString());
            var said = new System.Collections.Concurrent.ConcurrentQueue<string>();
            string Said() => string.Join('\n', said.TakeLast(40));
            using var http = new HttpClient();
            var coordinatorHttp = 0;
            // A port found free can be taken by another process before the coordinator binds it: then it exits, and the
            // pair starts again on other ports.
            for (var attempt = 1; ; attempt++)
            {
                int grpc = FreePort(), workerHttp = FreePort();
                coordinatorHttp = FreePort();
                var environment = new Dictionary<string, string>
                {
                    ["CLUSTER_LISTEN"] = $"http://127.0.0.1:{grpc}",
                    ["CLUSTER_HTTP_PORT"] = coordinatorHttp.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["CLUSTER_DATASET"] = csv,
                    ["CLUSTER_LABEL"] = "label",
                    ["CLUSTER_EPOCHS"] = "1000000", // runs until the test kills it: a finished run would close the probes
                    ["CLUSTER_TOKEN"] = "entrypoint-token",
                };
                var coordinator = StartEntrypoint("Dockerfile.coordinator", environment, line => said.Enqueue("coordinator: " + line));
                processes.Add(coordinator);
                processes.Add(StartEntrypoint("Dockerfile.worker", new Dictionary<string, string>
                {
                    ["CLUSTER_COORDINATOR"] = $"http://127.0.0.1:{grpc}",
                    ["CLUSTER_HTTP_PORT"] = workerHttp.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["CLUSTER_TOKEN"] = "entrypoint-token",
                    ["POD_NAME"] = "worker-pod-1",
                }, line => said.Enqueue("worker: " + line)));
                await TestRuns.WaitForAsync(() => coordinator.HasExited || Ok(http, $"http://127.0.0.1:{coordinatorHttp}/readyz"), "coordinator /readyz", Said);
                if (!coordinator.HasExited)
                {
                    await TestRuns.WaitForAsync(() => Ok(http, $"http://127.0.0.1:{coordinatorHttp}/healthz"), "coordinator /healthz", Said);
                    await TestRuns.WaitForAsync(() => Ok(http, $"http://127.0.0.1:{workerHttp}/healthz"), "worker /healthz", Said);
                    await TestRuns.WaitForAsync(() => Ok(http, $"http://127.0.0.1:{workerHttp}/readyz"), "worker /readyz", Said);
                    break;
                }

                Assert.True(attempt < 3, $"the coordinator exited {attempt} times before it was ready; the processes said:\n{Said()}");
                foreach (var p in processes)
                {
                    p.Kill(entireProcessTree: true);
                    p.WaitForExit();
                    p.Dispose();
                }

                processes.Clear();
            }

            using var status = JsonDocument.Parse(await http.GetStringAsync($"http://127.0.0.1:{coordinatorHttp}/api/status"));
            Assert.Contains(status.RootElement.GetProperty("members").EnumerateArray(), m => m.GetProperty("workerId").GetString() == "worker-pod-1");
        }
        finally
        {
            foreach (var p in processes)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit();
                p.Dispose();
            }

            Directory.Delete(dir, true);
        }
    }

    private static bool Ok(HttpClient http, string url)
    {
        try
        {
            return http.GetAsync(url).Result.IsSuccessStatusCode;
        }
        catch (AggregateException)
        {
            return false;
        }
    }

    /// <summary>Starts the command a Dockerfile's ENTRYPOINT names, with /app mapped to the built binaries.</summary>
    private static Process StartEntrypoint(string dockerfile, Dictionary<string, string> environment, Action<string> said)
    {
        var text = File.ReadAllText(Path.Combine(Repo.Root, "deploy", "docker", dockerfile));
        var line = text.Split('\n').Last(l => l.StartsWith("ENTRYPOINT ", StringComparison.Ordinal));
        var entrypoint = JsonSerializer.Deserialize<string[]>(line["ENTRYPOINT ".Length..])!;
        Assert.Equal("dotnet", entrypoint[0]);
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in entrypoint.Skip(1))
        {
            psi.ArgumentList.Add(arg.StartsWith("/app/", StringComparison.Ordinal) ? Path.Combine(AppContext.BaseDirectory, arg["/app/".Length..]) : arg);
        }

        foreach (var (k, v) in environment)
        {
            psi.Environment[k] = v;
        }

        var p = Process.Start(psi)!;
        _ = ChildOutput.Pump(p, "deploy", said);
        return p;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
