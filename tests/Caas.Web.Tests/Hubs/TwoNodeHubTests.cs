using Akka.Actor;
using Akka.Cluster;
using Caas.Node;
using Caas.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Caas.Web.Tests.Hubs;

/// <summary>Two nodes whose rooms' live events go through DistributedPubSub (the default).</summary>
public sealed class TwoNodeHubTests(ITestOutputHelper output) : TwoNodeHubScenario(output, "hub2", sharded: false);

/// <summary>The same over sharded room topics (<c>caas.rooms.topics = sharded</c>).</summary>
public sealed class TwoNodeShardedTopicHubTests(ITestOutputHelper output) : TwoNodeHubScenario(output, "hub2s", sharded: true);

/// <summary>
/// Two nodes of one cluster (two NodeHost apps in this process, real remoting on 127.0.0.1, one PostgreSQL):
/// clients on different nodes talk in one conversation in order, and stopping a node turns its users offline.
/// With sharded room topics, each room's topic holds one subscription per node with a member in the room, and after
/// a node leaves (its shards, topics included, handed over) the remaining node's feeds are subscribed to the topics'
/// new incarnations and still get every message.
/// </summary>
public abstract class TwoNodeHubScenario(ITestOutputHelper output, string database, bool sharded) : IAsyncLifetime
{
    private const string Tenant = "t-two";
    private TwoNodeCluster? _cluster;
    private List<WebApplication> _nodes => _cluster!.Nodes;
    private readonly Caas.Web.Auth.JwtSettings _jwt = new(HubNode.Secret, null, null, null);

    public async Task InitializeAsync() =>
        _cluster = await TwoNodeCluster.StartAsync(database, output, $"caas.rooms.topics = {(sharded ? "sharded" : "pubsub")}");

    /// <summary>Waits (bounded) until the room's sharded topic, asked through node 0, sends to <paramref name="feeds"/> feeds.</summary>
    private async Task TopicFeedsAsync(string room, int feeds)
    {
        var system = _nodes[0].Services.GetRequiredService<ActorSystem>();
        Assert.True(Caas.Actors.Rooms.RoomTopicRouter.Get(system).Sharded);
        var region = Akka.Cluster.Sharding.ClusterSharding.Get(system).ShardRegion(Caas.Actors.Conversations.ConversationSharding.TypeName);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var seen = -1;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                seen = (await region.Ask<Caas.Actors.Rooms.RoomTopicView>(new Caas.Actors.Rooms.GetRoomTopic(Tenant, room), TimeSpan.FromSeconds(5)))
                    .Subscribers;
                if (seen == feeds) return;
            }
            catch (AskTimeoutException)
            {
                // The shard is moving: ask again.
            }
            await Task.Delay(200);
        }
        Assert.Fail($"room {room}: its topic sends to {seen} feeds, expected {feeds}");
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    private Uri Address(int node) => new(_nodes[node].Urls.First());

    private Task<HubClient> ConnectAsync(int node, string user) => HubClient.ConnectAsync(Address(node), _jwt.Issue(Tenant, user));

    [Fact(Timeout = 150_000)]
    public async Task Clients_on_different_nodes_talk_in_order_and_a_stopped_node_turns_its_users_offline()
    {
        using (var admin = new HttpClient { BaseAddress = Address(0) })
        {
            admin.DefaultRequestHeaders.Authorization = new("Bearer", _jwt.Issue(Tenant, "root", ["admin"]));
            Assert.Equal(200, (await admin.ApiPut("/v1/admin/tenant/settings", new { message_rate_per_minute = 100_000 })).Status);
        }
        using var rest = new HttpClient { BaseAddress = Address(0) };
        rest.DefaultRequestHeaders.Authorization = new("Bearer", _jwt.Issue(Tenant, "alice"));
        // Several rooms, so that some conversations live on each node.
        var rooms = new List<string>();
        for (var i = 0; i < 4; i++) rooms.Add(await rest.CreateGroupAsync("bob"));

        await using var alice = await ConnectAsync(0, "alice");
        var bob = await ConnectAsync(1, "bob");
        foreach (var room in rooms)
        {
            await alice.JoinAsync(room);
            await bob.JoinAsync(room);
        }

        // Both write to every room at once; each side sees every room's messages in sequence order with no gap.
        const int each = 15;
        var writes = new List<Task>();
        foreach (var room in rooms)
        {
            writes.Add(Task.Run(async () => { for (var i = 0; i < each; i++) await alice.SendAsync(room, $"a{i}"); }));
            writes.Add(Task.Run(async () => { for (var i = 0; i < each; i++) await bob.SendAsync(room, $"b{i}"); }));
        }
        await Task.WhenAll(writes);
        foreach (var room in rooms)
        {
            foreach (var (who, client) in new[] { ("alice", alice), ("bob", bob) })
            {
                var got = await client.MessagesAsync(room, 2 * each, TimeSpan.FromSeconds(30));
                Assert.True(Enumerable.Range(1, 2 * each).Select(i => (long)i).SequenceEqual(got.Select(m => m.Seq())),
                    $"{who} in {room}: {string.Join(",", got.Select(m => m.Seq()))}");
                Assert.Equal(each, got.Count(m => m.Str("sender_id") == "alice"));
                Assert.Equal(each, got.Count(m => m.Str("sender_id") == "bob"));
            }
        }
        // Typing crosses nodes too.
        await bob.Ok("Typing", new { conversation_id = rooms[0] });
        Assert.Equal("bob", (await alice.NextAsync("typing")).Str("user_id"));
        // Sharded: one subscription per node with the room open, whichever node hosts the topic.
        if (sharded) foreach (var room in rooms) await TopicFeedsAsync(room, 2);

        // Bob's node stops: alice, on the other node, sees bob go offline.
        Assert.Equal("online", (await alice.Ok("GetPresence", new { user_id = "bob" })).Str("status"));
        var stopped = _nodes[1];
        _nodes.RemoveAt(1);
        await stopped.StopAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await stopped.DisposeAsync();
        await bob.DisposeAsync();
        var offline = await alice.NextAsync("presenceChanged", e => e.Str("user_id") == "bob" && e.Str("status") == "offline",
            TimeSpan.FromSeconds(60));
        Assert.Equal("offline", offline.Str("status"));
        Assert.Equal("offline", (await alice.Ok("GetPresence", new { user_id = "bob" })).Str("status"));

        // Every room goes on for alice, including those whose conversation (and topic) lived on the stopped node.
        if (sharded) foreach (var room in rooms) await TopicFeedsAsync(room, 1);
        foreach (var room in rooms)
        {
            await alice.SendAsync(room, "after");
            var after = Assert.Single(await alice.MessagesAsync(room, 1, TimeSpan.FromSeconds(30)));
            Assert.Equal(2 * each + 1, after.Seq());
            Assert.Equal("after", after.GetProperty("content").Str("text"));
        }
    }
}
