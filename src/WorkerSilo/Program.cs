using System.CommandLine;
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
return await root.Parse(args).InvokeAsync();
