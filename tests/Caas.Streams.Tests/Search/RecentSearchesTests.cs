using Caas.Streams.Operational;
using Caas.Streams.ReadModel;
using Caas.Streams.Search;
using Caas.Tests.Shared;

namespace Caas.Streams.Tests.Search;

/// <summary>A user's recent searches on both stores: newest first and cut at the newest 20, even within one millisecond.</summary>
public sealed class RecentSearchesTests
{
    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Searches_in_the_same_millisecond_keep_the_order_they_arrived_in(string kind)
    {
        var storage = TestDatabases.Storage(kind);
        await using (var readModel = new ReadModelStore(storage)) await readModel.EnsureSchemaAsync();
        await using var store = new OperationalStore(storage);
        await store.MigrateAsync();
        var recent = new RecentSearches(store);
        // One instant for all: the text's order ("term2" before "term3") must not decide which are kept.
        var at = new DateTimeOffset(2026, 12, 4, 8, 29, 26, 66, TimeSpan.Zero);
        for (var i = 0; i < 23; i++) await recent.RememberAsync("t", "alice", $"term{i}", at);
        // Searching an old text again makes it the newest, once.
        await recent.RememberAsync("t", "alice", "term5", at);

        var list = await recent.ListAsync("t", "alice");

        string[] expected = ["term5", .. Enumerable.Range(3, 20).Reverse().Where(i => i != 5).Select(i => $"term{i}")];
        Assert.Equal(expected, list.Select(e => e.Query));
        Assert.Empty(await recent.ListAsync("t", "bob"));
    }
}
