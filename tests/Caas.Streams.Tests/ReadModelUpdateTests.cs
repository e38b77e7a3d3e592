using System.Collections.Immutable;
using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;

namespace Caas.Streams.Tests;

/// <summary>
/// A batch that changes several messages already in the read model (edits, a delete, reactions, an enrichment result)
/// changes exactly those rows, each as its events say, and no other, on both stores.
/// </summary>
public sealed class ReadModelUpdateTests
{
    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task A_batch_of_changes_to_stored_messages_lands_row_by_row(string kind)
    {
        var storage = TestDatabases.Storage(kind);
        await using var store = new ReadModelStore(storage);
        await store.EnsureSchemaAsync();
        var writer = new ReadModelWriter(store, new ProjectionProgress(store));
        const string tenant = "t-upd";
        var pid = ConversationActor.PersistenceIdOf(Ids.EntityId(tenant, "c-1"));
        var posted = DateTimeOffset.UtcNow.AddMinutes(-5);
        EventMeta By(string user, int minute) => new(tenant, user, posted.AddMinutes(minute));
        var offset = 0L;
        EventEnvelope At(IConversationEvent e) { offset++; return new EventEnvelope(Offset.Sequence(offset), pid, offset, e, 0, []); }

        await writer.WriteAsync([
            At(new ConversationCreated(By("alice", 0), "c-1", ConversationTypes.Group, null, [])),
            .. Enumerable.Range(1, 5).Select(i => At(new MessagePosted(By("alice", 0), i, $"m-{i}", new MessageContent("text", $"text {i}")))),
        ]);
        await writer.WriteAsync([
            At(new MessageEdited(By("alice", 1), 1, "m-1", new MessageContent("text", "text 1, edited"))),
            At(new ReactionAdded(By("bob", 1), 3, "m-3", "thumbs_up")),
            At(new MessageDeleted(By("alice", 2), 2, "m-2")),
            At(new MessageEdited(By("alice", 3), 1, "m-1", new MessageContent("text", "text 1, edited twice"))),
            At(new ReactionAdded(By("carol", 3), 3, "m-3", "thumbs_up")),
            At(new ReactionAdded(By("carol", 3), 3, "m-3", "heart")),
            At(new MessageEnriched(By("system", 4), 4, "m-4", new MessageEnrichment(ImmutableArray<EnricherOutput>.Empty, ["intent"]))),
        ]);

        var rows = await new ReadModelQueries(store).MessagesAsync(tenant, "c-1", 10, null, 0);
        Assert.Equal(new long[] { 1, 2, 3, 4, 5 }, rows.Select(r => r.Seq));
        var (m1, m2, m3, m4, m5) = (rows[0], rows[1], rows[2], rows[3], rows[4]);

        Assert.Equal("text 1, edited twice", m1.Text);
        Assert.Equal(posted.AddMinutes(3).ToUnixTimeMilliseconds(), m1.EditedAt?.ToUnixTimeMilliseconds());
        Assert.Equal(["text 1", "text 1, edited"], m1.Versions.Select(v => v.Text));
        Assert.False(m1.Deleted);

        Assert.True(m2.Deleted);
        Assert.Null(m2.Text);

        Assert.Equal(["bob", "carol"], m3.Reactions["thumbs_up"]);
        Assert.Equal(["carol"], m3.Reactions["heart"]);
        Assert.Equal("text 3", m3.Text);
        Assert.Null(m3.EditedAt);

        Assert.NotNull(m4.Enrichment);
        Assert.Contains("\"intent\"", m4.Enrichment!.Value.GetRawText());
        Assert.Equal("text 4", m4.Text);

        // Untouched: as it was posted.
        Assert.Equal("text 5", m5.Text);
        Assert.Null(m5.EditedAt);
        Assert.False(m5.Deleted);
        Assert.Empty(m5.Reactions);
        Assert.Empty(m5.Versions);
    }
}
