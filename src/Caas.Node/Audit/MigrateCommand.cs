using System.CommandLine;
using Akka.Actor;
using Caas.Actors.Hosting;
using Caas.Actors.Privacy;
using Caas.Streams.Privacy;
using Caas.Streams.ReadModel;

namespace Caas.Node.Audit;

/// <summary>
/// <c>caas migrate seal-content</c>: the one-time, verified migration that seals message content written before
/// erasure existed, so it can be erased too (see <see cref="ContentSealMigration"/>). Run it with the nodes stopped.
/// </summary>
public static class MigrateCommand
{
    public static Command Create()
    {
        var data = new Option<string?>("--data") { Description = "Data directory of the embedded SQLite store (default ./data, or CAAS_DATA_DIR); CAAS_POSTGRES selects PostgreSQL." };
        var seal = new Command("seal-content",
            "Seal (encrypt) message content stored in the clear by earlier versions, re-chain the hashes after it, and verify the chain before and after. Stop the nodes first.")
            { data };
        seal.SetAction(async (parse, ct) =>
        {
            var options = NodeOptions.FromEnvironment();
            options = options with { DataDir = parse.GetValue(data) ?? options.DataDir };
            var storage = options.Storage();
            await JournalTagsMigration.RunAsync(storage, ct);
            await using var store = new Caas.Streams.Operational.OperationalStore(storage);
            await store.MigrateAsync(ct);
            var vault = new ContentVault(store, options.ContentMasterKey());
            await vault.CheckMasterKeyAsync(ct);
            using var system = ActorSystem.Create("caas-migrate", BootstrapSetup.Create()
                .WithConfig(CaasConfig.Compose(storage, "akka.actor.provider = local\nakka.loglevel = WARNING\nakka.stdout-loglevel = WARNING"))
                .And(new ContentVaultSetup(vault)));
            try
            {
                var report = await ContentSealMigration.RunAsync(storage, system, vault,
                    n => Console.Error.WriteLine($"... {n} events"), ct);
                Console.WriteLine($"entities={report.Entities} events={report.Events} sealed={report.Sealed} rechained={report.Rechained} " +
                                  $"snapshots_dropped={report.SnapshotsDropped} verified_before={report.Before.Intact} verified_after={report.After.Intact}");
                return report.After.Intact ? 0 : 1;
            }
            catch (InvalidOperationException e)
            {
                Console.Error.WriteLine(e.Message);
                return 1;
            }
            finally
            {
                await system.Terminate();
            }
        });
        return new Command("migrate", "One-time data migrations.") { seal };
    }
}
