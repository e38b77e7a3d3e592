using System.CommandLine;
using Caas.Node;

var root = new RootCommand("CAAS — chat as a service on Akka.NET");
root.Subcommands.Add(Commands.Run());
root.Subcommands.Add(Commands.DevToken());
root.Subcommands.Add(Commands.Bench());
root.Subcommands.Add(Caas.Node.Audit.AuditCommands.Audit());
root.Subcommands.Add(Caas.Node.Audit.ReplayCommand.Create());
root.Subcommands.Add(Caas.Node.Audit.AdminClientCommands.Rebuild());
root.Subcommands.Add(Caas.Node.Audit.AdminClientCommands.Erase());
root.Subcommands.Add(Caas.Node.Audit.MigrateCommand.Create());
root.Subcommands.Add(EnrichmentCli.Train());
root.Subcommands.Add(EnrichmentCli.Eval());
root.Subcommands.Add(Caas.Node.Bench.SocketBench.Command());
root.Subcommands.Add(Caas.Node.Bench.PipelineBench.Command());
root.Subcommands.Add(Commands.BenchRest());
return await root.Parse(args).InvokeAsync();
