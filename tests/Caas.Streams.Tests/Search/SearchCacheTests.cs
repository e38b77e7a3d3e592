using Caas.Streams.ReadModel;
using Caas.Streams.Search;
using Caas.Tests.Shared;
using StackExchange.Redis;

namespace Caas.Streams.Tests.Search;

/// <summary>
/// The search result cache in Redis (a real redis-server, started by the test script): shared by the nodes of a
/// cluster, stale as soon as the index's generation moves, and only a shortcut when Redis is away.
/// </summary>
public sealed class SearchCacheTests : IAsyncLifetime
{
    private ConnectionMultiplexer _redis = null!;
    private ReadModelStore _store = null!;
    private SearchIndex _index = null!;
    private readonly string _prefix = "test-" + Guid.NewGuid().ToString("N");

    public async Task InitializeAsync()
    {
        _redis = await ConnectionMultiplexer.ConnectAsync(TestServices.Redis);
        _store = new ReadModelStore(TestDatabases.Storage("sqlite"));
        await _store.EnsureSchemaAsync();
        _index = new SearchIndex(_store);
        await _index.EnsureSchemaAsync();
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private static MessageHits Hits(string id) => new(
        [new MessageHit(id, "c-1", 7, "alice", new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero),
            [new Highlight("text", "the 🎉 narwhal", [[7, 14]])])],
        true, 42);

    [Fact]
    public async Task One_nodes_results_answer_the_same_query_on_another_node_until_the_generation_moves()
    {
        // A bound no loaded test machine reaches: a slow first call must not read as Redis being away.
        var nodeA = new SearchCache(_index, _redis, _prefix, TimeSpan.FromSeconds(60));
        var nodeB = new SearchCache(_index, _redis, _prefix, TimeSpan.FromSeconds(60));
        Assert.Equal("redis", nodeA.Kind);

        var (first, firstHit) = await nodeA.GetOrAddAsync("t|bob|q=narwhal", () => Task.FromResult(Hits("m-1")), default);
        Assert.False(firstHit);
        var computedOnB = 0;
        var (second, secondHit) = await nodeB.GetOrAddAsync("t|bob|q=narwhal", () => { computedOnB++; return Task.FromResult(Hits("m-other")); }, default);
        Assert.True(secondHit);
        Assert.Equal(0, computedOnB);
        // Everything comes back as it went in: ids, seq, time, highlights with their UTF-16 ranges, paging.
        var hit = Assert.Single(second.Items);
        Assert.Equal(("m-1", "c-1", 7L, "alice", first.Items[0].CreatedAt), (hit.MessageId, hit.ConversationId, hit.Seq, hit.SenderId, hit.CreatedAt));
        var highlight = Assert.Single(hit.Highlights);
        Assert.Equal(("text", "the 🎉 narwhal"), (highlight.Field, highlight.Fragment));
        Assert.Equal([7, 14], Assert.Single(highlight.Ranges));
        Assert.Equal((true, 42L), (second.More, second.TotalEstimate));

        // Another user's identical query is another entry.
        var (_, otherUserHit) = await nodeB.GetOrAddAsync("t|carol|q=narwhal", () => Task.FromResult(Hits("m-2")), default);
        Assert.False(otherUserHit);

        // An erasure (or any write the projections make) moves the generation: the entry is stale on every node.
        await using (var c = await _index.OpenAsync())
            await SearchCache.BumpEpochAsync(c, default);
        var (fresh, staleHit) = await nodeB.GetOrAddAsync("t|bob|q=narwhal", () => Task.FromResult(Hits("m-3")), default);
        Assert.False(staleHit);
        Assert.Equal("m-3", fresh.Items[0].MessageId);
        var (again, againHit) = await nodeA.GetOrAddAsync("t|bob|q=narwhal", () => Task.FromResult(Hits("m-4")), default);
        Assert.True(againHit);
        Assert.Equal("m-3", again.Items[0].MessageId);

        // Entries expire with the cache's TTL.
        var keys = _redis.GetServers()[0].Keys(pattern: _prefix + ":search-cache:*").ToList();
        Assert.Equal(2, keys.Count);
        foreach (var key in keys)
        {
            var ttl = await _redis.GetDatabase().KeyTimeToLiveAsync(key);
            Assert.NotNull(ttl);
            Assert.InRange(ttl!.Value, TimeSpan.FromSeconds(1), SearchCache.Ttl);
        }
    }

    [Fact]
    public async Task Redis_away_is_a_miss_and_the_search_still_answers()
    {
        // A port nothing listens on (taken and released), connected without failing at start, as the node does.
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var options = ConfigurationOptions.Parse($"127.0.0.1:{port}");
        options.AbortOnConnectFail = false;
        options.ConnectTimeout = 200;
        await using var away = await ConnectionMultiplexer.ConnectAsync(options);
        var cache = new SearchCache(_index, away, _prefix);

        for (var i = 0; i < 2; i++)
        {
            var computed = 0;
            var (value, hit) = await cache.GetOrAddAsync("t|bob|q=anything", () => { computed++; return Task.FromResult(Hits("m-" + i)); }, default);
            Assert.False(hit);
            Assert.Equal(1, computed);
            Assert.Equal("m-" + i, value.Items[0].MessageId);
        }
    }
}
