using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;
using Npgsql;

namespace Caas.Streams.Tests;

/// <summary>
/// The read-model and search projections never skip a journal row: not a row whose transaction commits after rows with higher
/// ordering values were already read (parallel journal writers on PostgreSQL), and not a second row with a message id
/// the read model already holds.
/// </summary>
public sealed class ProjectionProgressTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static async Task<T> Eventually<T>(Func<Task<T>> read, Func<T, bool> done, string what)
    {
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var value = await read();
            if (done(value)) return value;
            if (DateTimeOffset.UtcNow > deadline) Assert.Fail($"Timed out waiting for {what}; last: {value}");
            await Task.Delay(50);
        }
    }

    private static async Task<long[]> SeqsAsync(ReadModelQueries queries, string tenant, string conversation) =>
        [.. (await queries.MessagesAsync(tenant, conversation, 100, null, 0)).Select(m => m.Seq)];

    /// <summary>The seqs of a conversation's messages in the live search index.</summary>
    private static async Task<long[]> IndexedAsync(ReadModelStore store, string tenant, string conversation)
    {
        await using var c = await store.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT seq FROM search_messages WHERE tenant_id = '{tenant}' AND conversation_id = '{conversation}' ORDER BY seq";
        var seqs = new List<long>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) seqs.Add(r.GetInt64(0));
        return [.. seqs];
    }

    [Theory]
    [InlineData("swept")]
    [InlineData("with-the-next-event")]
    public async Task A_journal_row_that_commits_after_later_rows_were_projected_is_not_skipped(string repair)
    {
        using var scene = await GapScene.StartAsync("gaps", "t-gap", repair == "swept");
        var (system, storage, tenant) = (scene.System, scene.Storage, scene.Tenant);
        await using var store = new ReadModelStore(storage);
        await store.EnsureSchemaAsync();
        var progress = new ProjectionProgress(store);
        var writer = new ReadModelWriter(store, progress);
        var queries = new ReadModelQueries(store);

        system.ActorOf(ConversationProjection.PropsFor(writer, ProjectionSettings.From(system.Settings.Config), ct => JournalDb.OpenAsync(storage, ct)));
        // The search index, a projection of the same stream with its own marks, repairs itself the same way.
        var index = new Caas.Streams.Search.SearchIndex(store);
        await index.EnsureSchemaAsync();
        system.ActorOf(Caas.Streams.Search.SearchProjection.PropsFor(index, ProjectionSettings.From(system.Settings.Config), storage,
            ct => JournalDb.OpenAsync(storage, ct)));
        await Eventually(() => progress.MarkAsync(scene.SlowPid), m => m >= 2, "the first rows to be projected");
        await Eventually(() => IndexedAsync(store, tenant, "c-slow"), s => s.Length == 1, "the first message to be indexed");

        // A journal writer whose transaction has its ordering value but does not commit yet.
        await using var hold = await JournalHold.StartAsync(storage, "c-slow", 4242);
        var held = scene.PostSlow("s-2");
        await hold.WaitUntilHeldAsync();

        // A later row commits and is projected: the tag stream has read past the held ordering value. (Its acknowledgement
        // waits: the journal answers writes in the order they came.)
        var later = scene.PostFast("f-1");
        await Eventually(() => progress.MarkAsync(scene.FastPid), m => m >= 2, "the later row to be projected");
        await Eventually(() => IndexedAsync(store, tenant, "c-fast"), s => s.Length == 1, "the later row to be indexed");
        Assert.False(held.IsCompleted);
        Assert.Equal(new long[] { 1L }, await SeqsAsync(queries, tenant, "c-slow"));
        Assert.Equal(new long[] { 1L }, await IndexedAsync(store, tenant, "c-slow"));

        // The held transaction commits now, below the projection's offset.
        await hold.ReleaseAsync();
        Assert.Equal(2, Assert.IsType<MessageAck>(await held).Seq);
        Assert.IsType<MessageAck>(await later);

        // The row the tag stream passed by is in the read model, in order, with nothing missing: found by the sweep, or
        // (sweep off) read by persistence id when the entity's next event shows the hole.
        if (repair == "swept")
        {
            await Eventually(() => SeqsAsync(queries, tenant, "c-slow"), s => s.Length >= 2, "the sweep to find the late row");
            Assert.Equal(3, await progress.MarkAsync(scene.SlowPid));
            Assert.Equal(new long[] { 1L, 2L },
                await Eventually(() => IndexedAsync(store, tenant, "c-slow"), s => s.Length >= 2, "the search sweep to index the late row"));
        }
        Assert.IsType<MessageAck>(await scene.PostSlow("s-3"));
        await Eventually(() => SeqsAsync(queries, tenant, "c-slow"), s => s.Length >= 3, "the late row");
        Assert.Equal(new long[] { 1L, 2L, 3L }, await SeqsAsync(queries, tenant, "c-slow"));
        Assert.Equal(4, await progress.MarkAsync(scene.SlowPid));
        Assert.Equal(new long[] { 1L, 2L, 3L },
            await Eventually(() => IndexedAsync(store, tenant, "c-slow"), s => s.Length >= 3, "the late row in the search index"));
        Assert.Equal(new long[] { 1L }, await SeqsAsync(queries, tenant, "c-fast"));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task A_second_row_with_a_message_id_already_projected_is_stored_and_reported_never_dropped(string kind)
    {
        var storage = TestDatabases.Storage(kind);
        await using var store = new ReadModelStore(storage);
        await store.EnsureSchemaAsync();
        var writer = new ReadModelWriter(store);
        var queries = new ReadModelQueries(store);
        const string tenant = "t-dup";
        var pid = ConversationActor.PersistenceIdOf(Ids.EntityId(tenant, "c-1"));
        var now = DateTimeOffset.UtcNow;
        var meta = new EventMeta(tenant, "alice", now);
        EventEnvelope Envelope(long offset, long seqNr, IConversationEvent e) => new(Offset.Sequence(offset), pid, seqNr, e, now.ToUnixTimeMilliseconds(), []);
        MessagePosted Posted(long seq, string id) => new(meta, seq, id, new MessageContent("text", $"text {seq}"));

        var first = await writer.WriteAsync([
            Envelope(1, 1, new ConversationCreated(meta, "c-1", ConversationTypes.Group, null, [])),
            Envelope(2, 2, Posted(1, "m-a")),
            Envelope(3, 3, Posted(2, "m-b")),
        ]);
        Assert.Empty(first.Conflicts);
        // m-a again under seq 3 (in a later batch), and m-c twice within one batch.
        var second = await writer.WriteAsync([Envelope(4, 4, Posted(3, "m-a")), Envelope(5, 5, Posted(4, "m-c")), Envelope(6, 6, Posted(5, "m-c"))]);

        Assert.Equal(new long[] { 1L, 2L, 3L, 4L, 5L }, await SeqsAsync(queries, tenant, "c-1"));
        Assert.Equal(2, second.Conflicts.Count);
        Assert.Contains(second.Conflicts, c => c is { MessageId: "m-a", FirstSeq: 1, Seq: 3 });
        Assert.Contains(second.Conflicts, c => c is { MessageId: "m-c", FirstSeq: 4, Seq: 5 });
        // The id resolves to its first message.
        Assert.Equal(1, (await queries.MessageByIdAsync(tenant, "m-a"))!.Seq);

        // A batch replayed after a crash neither duplicates rows nor reports them again.
        var replay = await writer.WriteAsync([Envelope(4, 4, Posted(3, "m-a")), Envelope(5, 5, Posted(4, "m-c")), Envelope(6, 6, Posted(5, "m-c"))]);
        Assert.Empty(replay.Conflicts);
        Assert.Equal(new long[] { 1L, 2L, 3L, 4L, 5L }, await SeqsAsync(queries, tenant, "c-1"));
    }

    [Fact]
    public async Task A_waiting_reader_is_woken_by_the_commit_that_reaches_its_mark()
    {
        var storage = TestDatabases.Storage("postgres");
        await using var store = new ReadModelStore(storage);
        await store.EnsureSchemaAsync();
        // A poll far beyond the test's patience: only the commit notification can end the wait in time.
        var progress = new ProjectionProgress(store, new ProgressSettings(TimeSpan.FromHours(1)));
        var writer = new ReadModelWriter(store, progress);
        const string tenant = "t-wake";
        var pid = ConversationActor.PersistenceIdOf(Ids.EntityId(tenant, "c-1"));
        var meta = new EventMeta(tenant, "alice", DateTimeOffset.UtcNow);
        var waiting = progress.WaitAsync(pid, 2, TimeSpan.FromHours(1));
        Assert.False(waiting.IsCompleted);
        await writer.WriteAsync([new EventEnvelope(Offset.Sequence(1), pid, 1, new ConversationCreated(meta, "c-1", ConversationTypes.Group, null, []), 0, [])]);
        await writer.WriteAsync([new EventEnvelope(Offset.Sequence(2), pid, 2, new MessagePosted(meta, 1, "m-1", new MessageContent("text", "x")), 0, [])]);
        Assert.Equal(2, await waiting.WaitAsync(Timeout));
        Assert.Equal(0, await progress.WaitAsync(ConversationActor.PersistenceIdOf(Ids.EntityId(tenant, "c-none")), 1, TimeSpan.Zero));
    }
}
