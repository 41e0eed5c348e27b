using Cluster.Coordinator.Cli;

return await CliApp.RunAsync(args);
