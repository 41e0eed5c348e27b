using System.Diagnostics;
using Cluster.Compute.Backends;
using Cluster.Coordinator.Grains;
using Cluster.Coordinator.Hosting;
using Cluster.Coordinator.Runs;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.IntegrationTests;

/// <summary>
/// A coordinator in this process listening on 127.0.0.1 and worker silos as real processes (the cluster executable's
/// worker command), like Orleans' in-process test cluster; workers can be killed and added while a run goes on.
/// </summary>
public sealed class ClusterFixture : IAsyncDisposable
{
    private readonly ManagedBackend _eval;
    private readonly Dictionary<string, Process> _workers = [];
    private readonly string _token = "integration-token";

    private ClusterFixture(CoordinatorGrain grain, CoordinatorEndpoint endpoint, ManagedBackend eval)
    {
        _eval = eval;
        Grain = grain;
        Endpoint = endpoint;
    }

    internal CoordinatorGrain Grain { get; }

    public CoordinatorEndpoint Endpoint { get; }

    public IReadOnlyCollection<string> WorkerIds => _workers.Keys;

    internal static async Task<ClusterFixture> StartAsync(PreparedRun run, ClusterOptions options, bool sharedMemory = true)
    {
        var eval = new ManagedBackend(1);
        var grain = new CoordinatorGrain(run, options, eval, NullLogger.Instance);
        var endpoint = await CoordinatorEndpoint.StartAsync(grain, new EndpointOptions { Listen = new Uri("http://127.0.0.1:0"), Token = "integration-token", SharedMemory = sharedMemory }, NullLoggerFactory.Instance, run.Model.ParameterCount);
        return new ClusterFixture(grain, endpoint, eval);
    }

    /// <summary>Starts a worker process with the given id.</summary>
    public void StartWorker(string id, params string[] extra) => StartWorkerWithToken(id, _token, extra);

    /// <summary>Starts a worker process presenting <paramref name="token"/>.</summary>
    public void StartWorkerWithToken(string id, string token, params string[] extra)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "cluster.dll"));
        foreach (var a in new[] { "worker", "--coordinator", Endpoint.GrpcAddress.ToString(), "--worker-id", id, "--threads", "1", "--log-level", "warning", "--heartbeat-seconds", "0.5" }.Concat(extra))
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["CLUSTER_TOKEN"] = token;
        var p = Process.Start(psi)!;
        _ = ChildOutput.Pump(p, $"worker-{id}", _ => { });
        _workers[id] = p;
    }

    /// <summary>Kills a worker process without warning (kill -9).</summary>
    public void KillWorker(string id)
    {
        _workers[id].Kill(entireProcessTree: true);
        _workers[id].WaitForExit();
    }

    /// <summary>Sends SIGTERM: the worker finishes its step and says goodbye.</summary>
    public void TerminateWorker(string id)
    {
        Cluster.Contracts.Configuration.ChildProcesses.Terminate(_workers[id]);
    }

    /// <summary>Exit code of a worker that ended (waits up to 30 s).</summary>
    public int WaitForExit(string id)
    {
        Assert.True(_workers[id].WaitForExit(30_000), $"worker {id} did not exit");
        return _workers[id].ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        await Endpoint.DisposeAsync();
        foreach (var p in _workers.Values)
        {
            if (!p.WaitForExit(10_000))
            {
                p.Kill(entireProcessTree: true);
            }

            p.Dispose();
        }

        _eval.Dispose();
    }
}
