using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Streams.Kafka;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;
using Npgsql;
using Xunit;

namespace Caas.Streams.Tests;

/// <summary>
/// A <see cref="TagProjection"/> with late-commit repair (the media, recordings and search-language projections) gets
/// every event of an entity, in order, when a journal transaction commits after later rows were read and the plugin's
/// gap wait ran out: from the journal in front of the entity's next event, or from the sweep when it was the last.
/// </summary>
public sealed class TagProjectionRepairTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static async Task Eventually(Func<Task<bool>> done, string what)
    {
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(60);
        while (!await done())
        {
            if (DateTimeOffset.UtcNow > deadline) Assert.Fail($"Timed out waiting for {what}");
            await Task.Delay(50);
        }
    }

    [Theory]
    [InlineData("swept")]
    [InlineData("with-the-next-event")]
    public async Task An_event_the_tag_stream_passed_by_is_applied_in_order(string repair)
    {
        var storage = TestDatabases.Storage("postgres");
        using var system = ActorSystem.Create("tag-gaps", CaasConfig.Compose(storage, """
            akka.actor.provider = local
            akka.loglevel = WARNING
            akka.persistence.query.journal.sql.journal-sequence-retrieval { query-delay = 50ms, max-tries = 4 }
            caas.projections.batch-window = 20ms
            """ + (repair == "swept" ? "\ncaas.projections.late-commit-sweep = 200ms" : "\ncaas.projections.late-commit-sweep = 0s")));
        await using var store = new ReadModelStore(storage);
        await store.EnsureSchemaAsync();
        const string tenant = "t-taggap";
        var slow = system.ActorOf(ConversationActor.PropsFor(Ids.EntityId(tenant, "c-slow"), EntitySettings.Default));
        var fast = system.ActorOf(ConversationActor.PropsFor(Ids.EntityId(tenant, "c-fast"), EntitySettings.Default));
        var slowPid = ConversationActor.PersistenceIdOf(Ids.EntityId(tenant, "c-slow"));
        var fastPid = ConversationActor.PersistenceIdOf(Ids.EntityId(tenant, "c-fast"));
        Task<object> Post(IActorRef entity, string conversation, string id) =>
            entity.Ask<object>(new PostMessage(tenant, conversation, "alice", id, new MessageContent("text", id), TimeSpan.FromHours(1)), Timeout);
        Assert.IsType<ConversationReply>(await slow.Ask<object>(new CreateConversation(tenant, "c-slow", "alice", ConversationTypes.Group, null, []), Timeout));
        Assert.IsType<ConversationReply>(await fast.Ask<object>(new CreateConversation(tenant, "c-fast", "alice", ConversationTypes.Group, null, []), Timeout));
        Assert.IsType<MessageAck>(await Post(slow, "c-slow", "s-1"));

        // The projection's writer: what it was given, per entity in order, and its offset (as the real writers store it).
        const string name = "tag-repair-test";
        var applied = new ConcurrentQueue<(string Pid, long Seq)>();
        var offsets = new ProjectionOffsetStore(store);
        system.ActorOf(TagProjection.PropsFor(name, ConversationActor.KindTag, ProjectionSettings.From(system.Settings.Config),
            () => offsets.LoadAsync(name), async list =>
            {
                foreach (var e in list) applied.Enqueue((e.PersistenceId, e.SequenceNr));
                await offsets.SaveAsync(name, ((Sequence)list[^1].Offset).Value);
            }, new TagRepair(store, "conversation|", ct => JournalDb.OpenAsync(storage, ct))));
        long[] Seqs(string pid) => [.. applied.Where(a => a.Pid == pid).Select(a => a.Seq).Distinct()];
        await Eventually(() => Task.FromResult(Seqs(slowPid).Length == 2), "the first rows to be applied");

        // A journal writer whose transaction has its ordering value but does not commit yet (an advisory lock in a trigger).
        await using var admin = new NpgsqlConnection(storage.JournalConnectionString);
        await admin.OpenAsync();
        await using (var cmd = new NpgsqlCommand("""
            CREATE FUNCTION caas_test_hold() RETURNS trigger AS $$
            BEGIN
              IF NEW.persistence_id LIKE '%c-slow' THEN PERFORM pg_advisory_xact_lock_shared(4244); END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER caas_test_hold AFTER INSERT ON journal FOR EACH ROW EXECUTE FUNCTION caas_test_hold();
            SELECT pg_advisory_lock(4244);
            """, admin))
            await cmd.ExecuteNonQueryAsync();
        var held = Post(slow, "c-slow", "s-2");
        await using var probe = new NpgsqlConnection(storage.JournalConnectionString);
        await probe.OpenAsync();
        await Eventually(async () =>
        {
            await using var cmd = new NpgsqlCommand("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted", probe);
            return (long)(await cmd.ExecuteScalarAsync())! == 1;
        }, "the slow writer to hold its ordering value");

        // A later row commits and is applied: the tag stream has read past the held ordering value.
        var later = Post(fast, "c-fast", "f-1");
        await Eventually(() => Task.FromResult(Seqs(fastPid).Length == 2), "the later row to be applied");
        Assert.False(held.IsCompleted);
        Assert.Equal([1L, 2L], Seqs(slowPid));

        await using (var cmd = new NpgsqlCommand("SELECT pg_advisory_unlock(4244); DROP TRIGGER caas_test_hold ON journal;", admin))
            await cmd.ExecuteNonQueryAsync();
        Assert.Equal(2, Assert.IsType<MessageAck>(await held).Seq);
        Assert.IsType<MessageAck>(await later);

        var expected = 3;
        if (repair != "swept")
        {
            Assert.IsType<MessageAck>(await Post(slow, "c-slow", "s-3"));
            expected = 4;
        }
        await Eventually(() => Task.FromResult(Seqs(slowPid).Length >= expected), "the late row to be applied");
        Assert.Equal(Enumerable.Range(1, expected).Select(n => (long)n), Seqs(slowPid));
        // In order: no event of the entity was applied before one with a lower seq.
        var order = applied.Where(a => a.Pid == slowPid).Select(a => a.Seq).Distinct().ToList();
        Assert.Equal(order.OrderBy(s => s), order);
        await system.Terminate();
    }
}
