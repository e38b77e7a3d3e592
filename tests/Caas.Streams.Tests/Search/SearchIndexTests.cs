using System.Collections.Immutable;
using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Streams.ReadModel;
using Caas.Streams.Search;
using Caas.Tests.Shared;

namespace Caas.Streams.Tests.Search;

/// <summary>The index's batch writer on both engines: holes filled from the journal, replays applied once, deletes and edits.</summary>
public sealed class SearchIndexTests
{
    private const string Tenant = "t-index";

    [Theory]
    [InlineData("postgres")]
    [InlineData("sqlite")]
    public async Task A_hole_below_a_batch_is_filled_from_the_journal_and_a_replay_applies_nothing_twice(string kind)
    {
        await using var store = new ReadModelStore(TestDatabases.Storage(kind));
        await store.EnsureSchemaAsync();
        var index = new SearchIndex(store);
        await index.EnsureSchemaAsync();
        var search = new SearchQueries(index);
        var pid = ConversationActor.PersistenceIdOf(Ids.EntityId(Tenant, "c-1"));
        var meta = new EventMeta(Tenant, "alice", DateTimeOffset.UtcNow);
        EventEnvelope At(long offset, long seq, IConversationEvent e) => new(Offset.Sequence(offset), pid, seq, e, 0, []);
        var created = At(1, 1, new ConversationCreated(meta, "c-1", ConversationTypes.Group, null, [new InitialMember("alice", Role.Owner)]));
        await new ReadModelWriter(store).WriteAsync([created]);

        await index.WriteAsync([created, At(2, 2, new MessagePosted(meta, 1, "m-1", new MessageContent("text", "alpha one")))], SearchIndex.ProjectionName, SearchIndex.Live);
        // The event at seq 3 committed late: the tag stream passed it; the next batch starts at seq 4.
        var late = At(4, 3, new MessagePosted(meta, 2, "m-2", new MessageContent("text", "alpha two")));
        var reads = new List<(long, long)>();
        ReadModelWriter.JournalReader journal = (p, from, to, _) =>
        {
            Assert.Equal(pid, p);
            reads.Add((from, to));
            return Task.FromResult<IReadOnlyList<EventEnvelope>>([late]);
        };
        var next = At(3, 4, new MessagePosted(meta, 3, "m-3", new MessageContent("text", "alpha three")));
        await index.WriteAsync([next], SearchIndex.ProjectionName, SearchIndex.Live, default, journal);
        Assert.Equal([(3L, 3L)], reads);
        Assert.Equal(["m-1", "m-2", "m-3"], await FindAsync(search, "alpha"));

        // A replayed batch (after a crash) is applied once: no second read, no change.
        await index.WriteAsync([next], SearchIndex.ProjectionName, SearchIndex.Live, default, journal);
        Assert.Single(reads);
        Assert.Equal(["m-1", "m-2", "m-3"], await FindAsync(search, "alpha"));

        // Posted, edited and deleted in one batch, and an edit and a delete of earlier messages.
        await index.WriteAsync(
        [
            At(5, 5, new MessagePosted(meta, 4, "m-4", new MessageContent("text", "alpha four"))),
            At(6, 6, new MessageEdited(meta, 4, "m-4", new MessageContent("text", "omega four"))),
            At(7, 7, new MessageEdited(meta, 1, "m-1", new MessageContent("text", "omega one"))),
            At(8, 8, new MessageDeleted(meta, 2, "m-2")),
            At(9, 9, new MessagePosted(meta, 5, "m-5", new MessageContent("text", "alpha five"))),
            At(10, 10, new MessageDeleted(meta, 5, "m-5")),
        ], SearchIndex.ProjectionName, SearchIndex.Live, default, journal);
        Assert.Equal(["m-3"], await FindAsync(search, "alpha"));
        Assert.Equal(["m-1", "m-4"], await FindAsync(search, "omega"));
        Assert.Equal(10, await index.LoadOffsetAsync(SearchIndex.ProjectionName));
        Assert.Equal(3, await index.EraseUserAsync(Tenant, "alice"));
        Assert.Empty(await FindAsync(search, "alpha"));
        Assert.Empty(await FindAsync(search, "omega"));
    }

    private static async Task<List<string>> FindAsync(SearchQueries search, string text) =>
        [.. (await search.MessagesAsync(new MessageSearch(Tenant, "alice", SearchQuery.Parse(text), null, null, null, null, null, null, null, null,
            false, 0, 50))).Items.Select(i => i.MessageId).Order()];
}
