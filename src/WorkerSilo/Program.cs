using System.CommandLine;
using Cluster.Contracts.Configuration;
using Cluster.Contracts.Grpc;
using Cluster.WorkerSilo;

SocketScheduling.PreferInlineCompletions();

var command = WorkerCli.Create("WorkerSilo");
var root = new RootCommand(command.Description ?? "");
foreach (var option in command.Options)
{
    root.Options.Add(option);
}

root.Action = command.Action;
// Ctrl+C and SIGTERM: the worker finishes its step and says goodbye, however long that takes (a second signal ends it).
using var signals = new TerminationSignals();
var parse = root.Parse(args);
if (ParseErrors.Report(parse, Console.Error))
{
    return 1;
}

return signals.ExitCode(await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, signals.Token));
