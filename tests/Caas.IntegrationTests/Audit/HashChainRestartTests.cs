using Caas.Node;
using Caas.Streams.Audit;
using Caas.Tests.Shared;
using Microsoft.Data.Sqlite;

namespace Caas.IntegrationTests.Audit;

/// <summary>
/// The chain goes on across a restart: the entities recover their last hash from a snapshot (or their events), so
/// the first event after the restart links to the last one before it. On the embedded SQLite journal.
/// </summary>
public sealed class HashChainRestartTests
{
    private const string Tenant = "acme";

    [Fact(Timeout = 90_000)]
    public async Task Events_written_across_a_restart_form_one_unbroken_chain_per_entity()
    {
        var options = new NodeOptions
        {
            DataDir = TestDatabases.NewSqliteDirectory(),
            LogLevel = "Warning",
            // Snapshots every 3 events: the recovered conversation starts from a snapshot that must carry its last hash.
            ExtraHocon = "caas.entities.snapshot-every = 3\nakka.loglevel = WARNING",
        };
        string room;
        await using (var node = await TestNode.StartAsync("first", options))
        {
            var olive = node.As(Tenant, "olive");
            room = await olive.CreateGroupAsync("Chained", "bob");
            for (var i = 1; i <= 4; i++) await olive.PostMessageAsync(room, $"before {i}");
            await olive.Expect(200, HttpMethod.Put, "/v1/users/me", new { display_name = "Olive" });
            await node.As(Tenant, "root", "admin").Expect(200, HttpMethod.Put, "/v1/admin/tenant/settings", new { message_rate_per_minute = 90 });
        }
        await using (var node = await TestNode.StartAsync("second", options))
        {
            var olive = node.As(Tenant, "olive");
            for (var i = 1; i <= 3; i++) await olive.PostMessageAsync(room, $"after {i}");
            await olive.Expect(200, HttpMethod.Put, "/v1/users/me", new { display_name = "Olive O." });
            await node.As(Tenant, "root", "admin").Expect(200, HttpMethod.Put, "/v1/admin/tenant/settings", new { message_rate_per_minute = 80 });
        }

        var storage = options.Storage();
        await using (var c = new SqliteConnection(storage.JournalConnectionString))
        {
            await c.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT count(*) FROM snapshot WHERE persistence_id = $pid";
            cmd.Parameters.AddWithValue("$pid", $"conversation|{Tenant}|{room}");
            Assert.True((long)(await cmd.ExecuteScalarAsync())! >= 1, "the conversation was snapshotted");
        }

        // With the node's audit key (derived from the master key TestNode gives it) every link is keyed and holds,
        // and whatever checkpoints the nodes signed (snapshots included) match.
        var report = await new JournalVerifier(storage, (options with { MasterKey = TestDatabases.MasterKey }).AuditKey()).VerifyAsync(Tenant);
        Assert.Empty(report.Broken);
        Assert.Equal(0, report.Unchained);
        Assert.Equal(report.Events, report.Chained);
        Assert.Equal(report.Chained, report.Keyed);
        // the conversation's 8 events, the tenant's 2, and the sessions' profile and presence events
        Assert.True(report.Events >= 12, $"{report.Events} events");
        Assert.True(report.Entities >= 3, $"{report.Entities} entities");
        Assert.Equal(0, (await new JournalVerifier(storage).VerifyAsync("no-such-tenant")).Events);
    }
}
