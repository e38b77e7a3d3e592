using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;

namespace Caas.Streams.Tests;

/// <summary>
/// A journal written with tags only in the tag table (the plugin's TagTable mode) is migrated once to the tag column
/// the node now reads and writes (Csv mode): its events are found by tag again, its entities recover and go on.
/// </summary>
public sealed class JournalTagsMigrationTests
{
    private static ActorSystem System(StorageOptions storage, string name, string extra = "") =>
        ActorSystem.Create(name, CaasConfig.Compose(storage, "akka.actor.provider = local\nakka.loglevel = WARNING\n" + extra));

    private static async Task<long> CountAsync(ActorSystem system, Source<EventEnvelope, Akka.NotUsed> source) =>
        await source.RunWith(Sink.Aggregate<EventEnvelope, long>(0L, (n, _) => n + 1), system.Materializer());

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task A_tag_table_journal_is_migrated_to_the_tag_column_and_reads_and_recovers_as_before(string kind)
    {
        var storage = TestDatabases.Storage(kind);
        var entity = Ids.EntityId("t-migrate", "c-1");
        var settings = EntitySettings.Default;
        var timeout = TimeSpan.FromSeconds(20);

        using (var old = System(storage, "before", """
                   caas.journal.writer = plugin
                   akka.persistence.journal.sql.tag-write-mode = TagTable
                   akka.persistence.query.journal.sql.tag-read-mode = TagTable
                   """))
        {
            var actor = old.ActorOf(ConversationActor.PropsFor(entity, settings));
            Assert.IsType<ConversationReply>(await actor.Ask<object>(
                new CreateConversation("t-migrate", "c-1", "alice", ConversationTypes.Group, "before", []), timeout));
            for (var i = 0; i < 3; i++)
                Assert.IsType<MessageAck>(await actor.Ask<object>(
                    new PostMessage("t-migrate", "c-1", "alice", $"m-{i}", new MessageContent("text", $"old {i}"), TimeSpan.FromHours(1)), timeout));
            await old.Terminate();
        }

        Assert.Equal(4, await JournalTagsMigration.RunAsync(storage));
        Assert.Equal(0, await JournalTagsMigration.RunAsync(storage)); // once only

        using var now = System(storage, "after");
        var journal = PersistenceQuery.Get(now).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);
        Assert.Equal(4, await CountAsync(now, journal.CurrentEventsByTag(ConversationActor.KindTag, Offset.NoOffset())));
        Assert.Equal(4, await CountAsync(now, journal.CurrentEventsByTag(Ids.TenantTag("t-migrate"), Offset.NoOffset())));
        Assert.Equal(0, await CountAsync(now, journal.CurrentEventsByTag(Ids.TenantTag("t-other"), Offset.NoOffset())));

        // The entity recovers from the migrated rows and writes on, tagged in the new column.
        var recovered = now.ActorOf(ConversationActor.PropsFor(entity, settings));
        var ack = Assert.IsType<MessageAck>(await recovered.Ask<object>(
            new PostMessage("t-migrate", "c-1", "alice", "m-new", new MessageContent("text", "new"), TimeSpan.FromHours(1)), timeout));
        Assert.Equal(4, ack.Seq);
        Assert.Equal(5, await CountAsync(now, journal.CurrentEventsByTag(ConversationActor.KindTag, Offset.NoOffset())));
        await now.Terminate();
    }
}
