using System.Threading.Channels;
using Caas.Web.Hubs;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests.Hubs;

/// <summary>The MessagePack hub protocol beside JSON: one payload shape, read by the official client's own MessagePack reader.</summary>
public sealed class HubProtocolTests(HubNode node) : IClassFixture<HubNode>
{
    [Fact(Timeout = 120_000)]
    public async Task A_MessagePack_client_and_a_JSON_client_share_a_room_and_see_the_same_shapes()
    {
        const string tenant = "t-msgpack";
        string room;
        using (var rest = node.Rest(tenant, "alice")) room = await rest.CreateGroupAsync("bob");
        await using var alice = await node.ConnectAsync(tenant, "alice");
        await alice.JoinAsync(room);

        // The official client with its default MessagePack options: an independent reader of what the node writes.
        await using var bob = new HubConnectionBuilder()
            .WithUrl(new Uri(node.BaseAddress, "/hubs/chat"), o =>
            {
                o.Transports = HttpTransportType.WebSockets;
                o.AccessTokenProvider = () => Task.FromResult<string?>(node.Jwt.Issue(tenant, "bob"));
            })
            .AddMessagePackProtocol()
            .Build();
        var messages = Channel.CreateUnbounded<Dictionary<object, object?>>();
        bob.On<Dictionary<object, object?>>("newMessage", m => messages.Writer.TryWrite(m));
        await bob.StartAsync().WaitAsync(TimeSpan.FromSeconds(20));

        var joined = Map(await bob.InvokeAsync<object>("JoinRoom", new { conversation_id = room }));
        Assert.Equal(true, joined["success"]);
        Assert.Equal("member", joined["role"]);

        var sent = await alice.SendAsync(room, "hello msgpack", "mp-1");
        var json = await alice.NextAsync("newMessage:" + room, e => e.Str("message_id") == "mp-1");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var packed = await messages.Reader.ReadAsync(cts.Token);
        Assert.Equal(json.Str("message_id"), packed["message_id"]);
        Assert.Equal(sent.Seq(), Convert.ToInt64(packed["seq"]));
        Assert.Equal(json.GetProperty("event_seq").GetInt64(), Convert.ToInt64(packed["event_seq"]));
        Assert.Equal("hello msgpack", Map(packed["content"])["text"]);
        Assert.Equal(json.Str("created_at"), packed["created_at"]);

        // Arguments sent in MessagePack are bound as JSON ones are (snake_case fields, nested content).
        var reply = Map(await bob.InvokeAsync<object>("SendMessage", new { conversation_id = room, content = new { type = "text", text = "from msgpack" } }));
        Assert.Equal(true, reply["success"]);
        var fromBob = await alice.NextAsync("newMessage:" + room, e => e.Str("sender_id") == "bob");
        Assert.Equal("from msgpack", fromBob.GetProperty("content").Str("text"));
        Assert.Equal(Convert.ToInt64(reply["seq"]), fromBob.Seq());

        // Bad input answers the same error object.
        var bad = Map(await bob.InvokeAsync<object>("JoinRoom", new { conversation_id = "no such room!" }));
        Assert.Equal(false, bad["success"]);
        Assert.Equal("not_found", Map(bad["error"])["code"]);
    }

    private static Dictionary<object, object?> Map(object? value) => Assert.IsType<Dictionary<object, object?>>(value);
}

/// <summary>A node whose rooms gather joins, leaves and presence for 20 s before pushing them.</summary>
public sealed class SlowActivityTickHubNode() : HubNode(new Dictionary<string, string?> { ["RoomActivityTick"] = "00:00:20" });

/// <summary>Joins, leaves and presence are pushed once per room per tick, not once per join to every member.</summary>
public sealed class RoomActivityTests(SlowActivityTickHubNode node) : IClassFixture<SlowActivityTickHubNode>
{
    [Fact(Timeout = 300_000)]
    public async Task Members_joining_together_reach_each_member_as_a_few_batched_events()
    {
        const string tenant = "t-activity";
        var members = Enumerable.Range(1, 12).Select(i => $"m{i}").ToArray();
        string room;
        using (var rest = node.Rest(tenant, "alice")) room = await rest.CreateGroupAsync(members);
        await using var alice = await node.ConnectAsync(tenant, "alice");
        await alice.JoinAsync(room);
        var clients = await Task.WhenAll(members.Select(m => node.ConnectAsync(tenant, m)));
        try
        {
            await Task.WhenAll(clients.Select(c => c.JoinAsync(room)));

            // Every join reaches alice; with a 20 s tick, twelve joins arrive in far fewer than twelve events
            // (each event lists everyone who joined in its tick). It would take joins spread over minutes to fail.
            var seen = new HashSet<string>();
            var events = 0;
            while (!members.All(seen.Contains))
            {
                var batch = await alice.NextAsync("roomActivity", within: TimeSpan.FromMinutes(2));
                events++;
                Assert.Equal(room, batch.Str("conversation_id"));
                foreach (var u in batch.GetProperty("joined").EnumerateArray()) seen.Add(u.GetString()!);
            }
            Assert.True(events < members.Length, $"{events} activity events for {members.Length} joins");
            var online = new HashSet<string>();
            while (!members.All(online.Contains))
                online.Add((await alice.NextAsync("presenceChanged", e => e.Str("status") == "online", TimeSpan.FromMinutes(2))).Str("user_id")!);
        }
        finally
        {
            foreach (var c in clients) await c.DisposeAsync();
        }
    }

    [Fact]
    public void Within_a_tick_the_last_change_of_each_user_wins()
    {
        var activity = new RoomActivity();
        Assert.True(activity.IsEmpty);
        activity.Joined("a");
        activity.Joined("b");
        activity.Left("a");
        activity.Presence("b", HubEvents.Online("b"));
        var payload = System.Text.Json.JsonSerializer.SerializeToElement(activity.Take("c1"));
        Assert.Equal("c1", payload.Str("conversation_id"));
        Assert.Equal(["b"], payload.GetProperty("joined").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["a"], payload.GetProperty("left").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("online", Assert.Single(payload.GetProperty("presence").EnumerateArray()).Str("status"));
        Assert.True(activity.IsEmpty);
    }
}

/// <summary>A node whose outboxes are bounded in bytes well below their message limits.</summary>
public sealed class ByteBoundOutboxHubNode() : HubNode(new Dictionary<string, string?>
{
    ["OutboundBufferMessages"] = "1000",
    ["OutboundEphemeralMessages"] = "1000",
    ["OutboundBufferBytes"] = "100000",
    ["OutboundEphemeralBytes"] = "4000",
    ["MaxMessageBytes"] = "1048576",
});

/// <summary>A connection's outbox is bounded in bytes: ephemeral events are dropped first, durable ones close it.</summary>
public sealed class OutboxBytesTests(ByteBoundOutboxHubNode node) : IClassFixture<ByteBoundOutboxHubNode>
{
    private const int MaxRounds = 3_000;
    private static readonly string Big = new('z', 20_000);

    [Fact(Timeout = 240_000)]
    public async Task A_slow_reader_holds_at_most_its_byte_budget_and_is_closed_only_for_durable_events()
    {
        await using var stalled = await SlowConsumerTests.StalledAsync(node, "t-bytes");
        var (room, alice, sloth, slothConnection) = stalled;

        var sent = 0;
        while (slothConnection.Queued < 2)
        {
            Assert.True(sent < MaxRounds, $"the sloth's queue did not fill after {sent} messages");
            await SlowConsumerTests.LockstepAsync(alice, room, Big, ++sent);
        }

        // Receipts (about a hundred bytes each) until many are dropped: 4,000 bytes hold a few dozen, not 1,000.
        for (var i = 0; i < 400 && slothConnection.EphemeralDropped < 50; i++)
            await alice.Ok("MarkDelivered", new { conversation_id = room, seq = sent });
        Assert.False(slothConnection.Closing, "the sloth was closed for ephemeral events");
        Assert.True(slothConnection.EphemeralDropped >= 50, $"only {slothConnection.EphemeralDropped} ephemeral events were dropped");
        Assert.InRange(slothConnection.QueuedEphemeral, 1, 40);

        // Large durable messages: the queue never holds more than its bytes, and the sloth is closed for them.
        while (!slothConnection.Closing)
        {
            Assert.True(sent < MaxRounds, $"the sloth was not closed after {sent} messages");
            Assert.InRange(slothConnection.QueuedBytes, 0, 100_000);
            await SlowConsumerTests.LockstepAsync(alice, room, Big, ++sent);
        }
        Assert.InRange(slothConnection.Queued, 1, 6);
        await SlowConsumerTests.AssertClosedAsync(sloth);
        Assert.False(alice.Closed.IsCompleted, "the sender was closed too");
    }
}
