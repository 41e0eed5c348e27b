using System.CommandLine;
using Cluster.Contracts.Configuration;
using Cluster.Compute.Training;

namespace Cluster.Coordinator.Cli;

/// <summary>The <c>cluster</c> command line.</summary>
public static class CliApp
{
    /// <summary>Builds the root command with every subcommand.</summary>
    public static RootCommand Build()
    {
        var root = new RootCommand("cluster: trains neural networks (MNIST by default) by synchronous data-parallel SGD, on one machine or many.");
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(TrainCommand.Coordinator());
        root.Subcommands.Add(WorkerSilo.WorkerCli.Create("worker"));
        root.Subcommands.Add(ModelCommands.Evaluate());
        root.Subcommands.Add(ModelCommands.Predict());
        root.Subcommands.Add(ModelCommands.Summary());
        root.Subcommands.Add(ExampleCommand.Create());
        root.Subcommands.Add(DataCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        return root;
    }

    /// <summary>Runs the command line and returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter? output = null, TextWriter? error = null, CancellationToken cancellationToken = default)
    {
        // Ctrl+C and SIGTERM cancel the command's token and wait for it to stop (a second one ends the process), instead of
        // System.CommandLine's two seconds.
        var config = new InvocationConfiguration { Output = output ?? Console.Out, Error = error ?? Console.Error, ProcessTerminationTimeout = null };
        using var signals = new TerminationSignals(cancellationToken);
        try
        {
            var parse = Build().Parse(args);
            if (ParseErrors.Report(parse, config.Error))
            {
                return 1;
            }

            return signals.ExitCode(await parse.InvokeAsync(config, signals.Token).ConfigureAwait(false));
        }
        catch (ArgumentException ex)
        {
            // Environment twins are read while parsing; a malformed one names its variable.
            await config.Error.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>Wraps a command's action so that expected failures print one clear line and exit with 1.</summary>
    public static void SetHandler(Command command, Func<ParseResult, TextWriter, CancellationToken, Task<int>> action)
    {
        command.SetAction(async (result, cancellationToken) =>
        {
            var output = result.InvocationConfiguration.Output;
            var error = result.InvocationConfiguration.Error;
            try
            {
                return await action(result, output, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                await error.WriteLineAsync("cancelled").ConfigureAwait(false);
                return 130;
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidDataException or FileNotFoundException
                or DirectoryNotFoundException or InvalidOperationException or TrainingDivergedException or UnauthorizedAccessException or IOException)
            {
                await error.WriteLineAsync($"error: {Describe(ex)}").ConfigureAwait(false);
                return 1;
            }
        });
    }

    /// <summary>
    /// An expected failure's message for a person: an argument exception's without the " (Parameter 'name')" and "Actual
    /// value was" that .NET appends for programmers.
    /// </summary>
    public static string Describe(Exception ex)
    {
        var message = ex.Message;
        if (ex is ArgumentException { ParamName: { } name } && message.IndexOf($" (Parameter '{name}')", StringComparison.Ordinal) is var cut and >= 0)
        {
            message = message[..cut];
        }

        return message;
    }
}
