using System.CommandLine;
using Caas.Node.Bench;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Node;

/// <summary>The command line: run, dev-token, bench, bench-rest.</summary>
public static class Commands
{
    public static Command Run()
    {
        var urls = new Option<string?>("--urls") { Description = "Where to listen (default http://127.0.0.1:5080, or ASPNETCORE_URLS)." };
        var data = new Option<string?>("--data") { Description = "Data directory for the embedded SQLite store (default ./data, or CAAS_DATA_DIR)." };
        var command = new Command("run", "Start a node: with no configuration, a complete single node on SQLite under ./data.") { urls, data };
        command.SetAction(async (parse, ct) =>
        {
            var options = NodeOptions.FromEnvironment();
            options = options with
            {
                Urls = parse.GetValue(urls) ?? options.Urls,
                DataDir = parse.GetValue(data) ?? options.DataDir,
            };
            await using var app = await NodeHost.BuildAsync(options);
            await app.StartAsync(ct);
            var where = options.Postgres is null ? $"SQLite under {Path.GetFullPath(options.DataDir)}" : "PostgreSQL";
            Console.WriteLine($"CAAS is listening on {string.Join(", ", app.Urls)} ({where}).");
            Console.WriteLine("Get a token:  dotnet run --project src/Caas.Node -c Release -- dev-token --tenant acme --user alice");
            Console.WriteLine($"API reference: {app.Urls.First()}/docs    health: {app.Urls.First()}/health");
            await app.WaitForShutdownAsync(ct);
            // A node the cluster downed (split-brain resolver) or that could not join stops itself: a non-zero exit
            // tells its supervisor to start it again; a requested stop (SIGTERM) exits 0.
            var reason = Akka.Actor.CoordinatedShutdown.Get(app.Services.GetRequiredService<Akka.Actor.ActorSystem>()).ShutdownReason;
            return reason is Akka.Actor.CoordinatedShutdown.ClusterDowningReason or Akka.Actor.CoordinatedShutdown.ClusterJoinUnsuccessfulReason ? 3 : 0;
        });
        return command;
    }

    public static Command DevToken()
    {
        var tenant = new Option<string>("--tenant") { Description = "Tenant id.", Required = true };
        var user = new Option<string>("--user") { Description = "User id (the sub claim).", Required = true };
        var roles = new Option<string[]>("--role") { Description = "A role claim (repeatable): admin, ingest, operator.", AllowMultipleArgumentsPerToken = true };
        var hours = new Option<double>("--hours") { Description = "Lifetime in hours.", DefaultValueFactory = _ => 24 };
        var data = new Option<string?>("--data") { Description = "Data directory holding the generated dev secret (default ./data)." };
        var command = new Command("dev-token", "Print a JWT signed with the configured secret (CAAS_JWT_SECRET, or the dev secret in ./data).")
            { tenant, user, roles, hours, data };
        command.SetAction(parse =>
        {
            var options = NodeOptions.FromEnvironment();
            options = options with { DataDir = parse.GetValue(data) ?? options.DataDir };
            if (options.JwtPublicKey is not null && options.JwtSecret is null)
            {
                Console.Error.WriteLine("This node verifies RS256/ES256 tokens with a public key; sign tokens with your identity provider.");
                return 2;
            }
            var t = parse.GetValue(tenant)!;
            var u = parse.GetValue(user)!;
            if (!Caas.Actors.Common.Ids.IsValid(t) || !Caas.Actors.Common.Ids.IsValid(u))
            {
                Console.Error.WriteLine("Tenant and user ids are 1-128 of A-Z a-z 0-9 _ . @ -");
                return 2;
            }
            Console.WriteLine(options.Jwt().Issue(t, u, parse.GetValue(roles), TimeSpan.FromHours(parse.GetValue(hours))));
            return 0;
        });
        return command;
    }

    public static Command Bench() => JournalBench.Command();

    public static Command BenchRest() => RestBench.Command();
}
