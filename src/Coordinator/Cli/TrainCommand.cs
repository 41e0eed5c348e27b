using System.CommandLine;
using Cluster.Contracts.Configuration;
using Cluster.Coordinator.Runs;

namespace Cluster.Coordinator.Cli;

/// <summary><c>cluster train</c> (the main job) and <c>cluster coordinator</c>.</summary>
public static class TrainCommand
{
    /// <summary>Creates <c>train</c>.</summary>
    public static Command Create()
    {
        var command = new Command("train", "Train a model. With no options: MNIST 784-128-64-10 (ReLU, softmax), cross-entropy, SGD lr 0.1, batch 64, 5 epochs, seed 0, fetching the data if missing; the workers run inside this process unless --processes is given.");
        var options = new TrainingOptionSet();
        options.AddTo(command);
        var workers = EnvOption.Create("--workers", "Worker grains, each computing its shard's part of every global batch (default: one per processor, or the processors divided by --threads when that is given).", "CLUSTER_WORKERS", 0);
        var processes = EnvOption.Create("--processes", "Run the workers as separate processes joining over gRPC on 127.0.0.1 instead of inside this process.", "CLUSTER_PROCESSES", false);
        var httpPort = EnvOption.Create("--http-port", "Serve /metrics, /healthz, /readyz and the live /dashboard on this port of 127.0.0.1 (0: off).", "CLUSTER_HTTP_PORT", 0);
        var dashboard = EnvOption.Create("--dashboard", "Serve the live dashboard (on --http-port, or any free port) and open it in a browser.", "CLUSTER_DASHBOARD", false);
        command.Options.Add(workers);
        command.Options.Add(processes);
        command.Options.Add(httpPort);
        command.Options.Add(dashboard);
        CliApp.SetHandler(command, (result, output, cancellationToken) =>
        {
            var settings = options.Bind(result, inProcessWorkers: !result.GetValue(processes));
            // --threads (or CLUSTER_THREADS) 0 is the default: the workers share the processors.
            var (n, threads) = Layout(result.GetValue(workers), result.GetValue(options.Threads) > 0 ? settings.Threads : null, Environment.ProcessorCount);
            settings = settings with { Threads = threads };

            var port = result.GetValue(httpPort);
            var open = result.GetValue(dashboard);
            var cluster = new ClusterSettings
            {
                Mode = result.GetValue(processes) ? ClusterMode.Processes : ClusterMode.Embedded,
                Workers = n,
                HttpPort = port > 0 ? port : open ? 0 : null,
                OpenDashboard = open,
            };
            return ClusterRunner.RunAsync(settings, cluster, output, cancellationToken);
        });
        return command;
    }

    /// <summary>
    /// The in-process workers and the threads of each: <paramref name="workers"/> (0: by default) and
    /// <paramref name="threads"/> (null: not given) as given, or else sharing the <paramref name="processors"/>. With
    /// --threads alone, as many workers as have that many processors each (at least one): a 2-thread run on 2 cores is
    /// one worker, not two with 2 threads each competing for the cores (3 times as long per epoch).
    /// </summary>
    public static (int Workers, int Threads) Layout(int workers, int? threads, int processors)
    {
        if (workers < 0)
        {
            throw new ArgumentException("--workers must be positive.");
        }

        if (workers == 0)
        {
            workers = threads is { } t ? Math.Max(1, processors / t) : processors;
        }

        return (workers, threads ?? Math.Max(1, processors / workers));
    }

    /// <summary>Creates <c>coordinator</c>.</summary>
    public static Command Coordinator()
    {
        var command = new Command("coordinator", "Listen for worker silos (cluster worker / WorkerSilo) and train with them; takes the training options of 'train' (but --threads: each worker has its own), writes the same --report, and exits when the run ends.");
        var options = new TrainingOptionSet();
        options.AddTo(command);
        options.Threads.Description = "Not a coordinator's: each worker takes its own (cluster worker --threads N), and the coordinator evaluates on every processor; refused here, as is CLUSTER_THREADS.";
        var cluster = new ClusterOptionSet();
        cluster.AddTo(command);
        CliApp.SetHandler(command, (result, output, cancellationToken) =>
            ClusterRunner.RunAsync(options.Bind(result, remoteWorkers: true), cluster.Bind(result), output, cancellationToken));
        return command;
    }
}
