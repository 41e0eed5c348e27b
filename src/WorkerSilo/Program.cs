using System.CommandLine;
using Cluster.WorkerSilo;

var command = WorkerCli.Create("WorkerSilo");
var root = new RootCommand(command.Description ?? "");
foreach (var option in command.Options)
{
    root.Options.Add(option);
}

root.Action = command.Action;
return await root.Parse(args).InvokeAsync();
