using Cluster.Contracts.Grpc;
using Cluster.Coordinator.Cli;

SocketScheduling.PreferInlineCompletions();
return await CliApp.RunAsync(args);
