using System.CommandLine;
using Cluster.Coordinator.Runs;

namespace Cluster.Coordinator.Cli;

/// <summary><c>cluster train</c>: the main job.</summary>
public static class TrainCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var command = new Command("train", "Train a model. With no options: MNIST 784-128-64-10 (ReLU, softmax), cross-entropy, SGD lr 0.1, batch 64, 5 epochs, seed 0, fetching the data if missing.");
        var options = new TrainingOptionSet();
        options.AddTo(command);
        CliApp.SetHandler(command, (result, output, cancellationToken) =>
            SingleNodeRunner.RunAsync(options.Bind(result), output, cancellationToken));
        return command;
    }
}
