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
        await Polling.TrueAsync(() => Task.FromResult(Seqs(slowPid).Length == 2), "the first rows to be applied");

        // A journal writer whose transaction has its ordering value but does not commit yet.
        await using var hold = await JournalHold.StartAsync(storage, "c-slow", 4244);
        var held = Post(slow, "c-slow", "s-2");
        await hold.WaitUntilHeldAsync();

        // A later row commits and is applied: the tag stream has read past the held ordering value.
        var later = Post(fast, "c-fast", "f-1");
        await Polling.TrueAsync(() => Task.FromResult(Seqs(fastPid).Length == 2), "the later row to be applied");
        Assert.False(held.IsCompleted);
        Assert.Equal([1L, 2L], Seqs(slowPid));

        await hold.ReleaseAsync();
        Assert.Equal(2, Assert.IsType<MessageAck>(await held).Seq);
        Assert.IsType<MessageAck>(await later);

        var expected = 3;
        if (repair != "swept")
        {
            Assert.IsType<MessageAck>(await Post(slow, "c-slow", "s-3"));
            expected = 4;
        }
        await Polling.TrueAsync(() => Task.FromResult(Seqs(slowPid).Length >= expected), "the late row to be applied");
        Assert.Equal(Enumerable.Range(1, expected).Select(n => (long)n), Seqs(slowPid));
        // In order: no event of the entity was applied before one with a lower seq.
        var order = applied.Where(a => a.Pid == slowPid).Select(a => a.Seq).Distinct().ToList();
        Assert.Equal(order.OrderBy(s => s), order);
        await system.Terminate();
    }
}
