using System.Text;
using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Actors.Privacy;
using Caas.Streams.Audit;
using Caas.Streams.Privacy;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;
using Microsoft.Data.Sqlite;

namespace Caas.Streams.Tests;

/// <summary>
/// Events written in the clear (before content was sealed) are migrated once: sealed under their authors' keys, the
/// chain re-computed after them and verified, snapshots dropped; the entity recovers and goes on; then the author's
/// erasure reaches them too.
/// </summary>
public sealed class ContentSealMigrationTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static ActorSystem System(StorageOptions storage, string name, IContentVault? vault)
    {
        var setup = BootstrapSetup.Create().WithConfig(CaasConfig.Compose(storage, "akka.actor.provider = local\nakka.loglevel = WARNING"));
        return vault is null ? ActorSystem.Create(name, setup) : ActorSystem.Create(name, setup.And(new ContentVaultSetup(vault)));
    }

    private static async Task<List<string>> JournalAsync(StorageOptions storage)
    {
        await using var c = new SqliteConnection(storage.JournalConnectionString);
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT message FROM journal ORDER BY ordering";
        var list = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) list.Add(Encoding.UTF8.GetString((byte[])r.GetValue(0)));
        return list;
    }

    private static async Task<List<string?>> TextsAsync(ActorSystem system, string pid) =>
        [.. (await PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier)
                .CurrentEventsByPersistenceId(pid, 0, long.MaxValue)
                .RunWith(Sink.Seq<EventEnvelope>(), system.Materializer()))
            .Select(e => e.Event switch
            {
                MessagePosted p => p.Content.Type == "text" ? p.Content.Text : p.Content.Type,
                MessageEdited m => m.Content.Type == "text" ? m.Content.Text : m.Content.Type,
                _ => null,
            })
            .Where(t => t is not null)];

    [Fact]
    public async Task Clear_text_events_are_sealed_rechained_and_verified_and_can_then_be_erased()
    {
        var storage = StorageOptions.Sqlite(TestDatabases.NewSqliteDirectory());
        var entity = Ids.EntityId("t-seal", "c-1");
        var pid = ConversationActor.PersistenceIdOf(entity);
        var settings = EntitySettings.Default with { SnapshotEvery = 3 };

        using (var old = System(storage, "clear", vault: null))
        {
            var actor = old.ActorOf(ConversationActor.PropsFor(entity, settings));
            await actor.Ask<object>(new CreateConversation("t-seal", "c-1", "alice", ConversationTypes.Group, "old", [new InitialMember("bob", Role.Member)]), Timeout);
            await actor.Ask<object>(new PostMessage("t-seal", "c-1", "alice", "m-a", new MessageContent("text", "alice in the clear"), TimeSpan.FromHours(1)), Timeout);
            await actor.Ask<object>(new PostMessage("t-seal", "c-1", "bob", "m-b", new MessageContent("text", "bob in the clear"), TimeSpan.FromHours(1)), Timeout);
            await actor.Ask<object>(new EditMessage("t-seal", "c-1", "alice", 1, new MessageContent("text", "alice edited in the clear")), Timeout);
            await actor.Ask<object>(new AddReaction("t-seal", "c-1", "bob", 1, "ok"), Timeout);
            await old.Terminate();
        }
        Assert.Contains(await JournalAsync(storage), j => j.Contains("alice in the clear"));

        await using var store = new Caas.Streams.Operational.OperationalStore(storage);
        await store.MigrateAsync();
        var vault = new ContentVault(store, MasterKey.Generate());
        using var now = System(storage, "sealed", vault);
        var report = await ContentSealMigration.RunAsync(storage, now, vault);
        Assert.True(report.Before.Intact);
        Assert.True(report.After.Intact, string.Join(", ", report.After.Broken));
        Assert.Equal((1L, 5L, 3L, 1L), (report.Entities, report.Events, report.Sealed, report.Rechained)); // the reaction after the edit is re-chained
        Assert.Equal(1, report.SnapshotsDropped);
        Assert.DoesNotContain(await JournalAsync(storage), j => j.Contains("in the clear"));
        Assert.Equal(3, (await JournalAsync(storage)).Count(j => j.Contains("\"sealed\"")));

        var again = await ContentSealMigration.RunAsync(storage, now, vault);
        Assert.Equal((0L, 0L, 0L), (again.Sealed, again.Rechained, again.SnapshotsDropped));

        // Read back whole; the entity recovers from the migrated journal and chains on.
        Assert.Equal(["alice in the clear", "bob in the clear", "alice edited in the clear"], await TextsAsync(now, pid));
        var actorNow = now.ActorOf(ConversationActor.PropsFor(entity, settings));
        var ack = Assert.IsType<MessageAck>(await actorNow.Ask<object>(
            new PostMessage("t-seal", "c-1", "bob", "m-c", new MessageContent("text", "bob after"), TimeSpan.FromHours(1)), Timeout));
        Assert.Equal(3, ack.Seq);
        Assert.True((await new JournalVerifier(storage).VerifyAsync()).Intact);

        // Now the migrated content can be erased like any other.
        await vault.DestroyAsync("t-seal", "alice", "root");
        Assert.Equal(["erased", "bob in the clear", "erased", "bob after"], await TextsAsync(now, pid));
        Assert.True((await new JournalVerifier(storage).VerifyAsync()).Intact);
        await now.Terminate();
    }
}
