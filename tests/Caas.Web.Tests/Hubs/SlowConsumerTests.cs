using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Caas.Web.Hubs;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Caas.Web.Tests.Hubs;

/// <summary>
/// A node whose hub queues at most 8 outbound messages per connection (4 of them ephemeral) and accepts large frames.
/// The calls the tests flood with get limits high enough that only the outbox and the typing window are under test.
/// </summary>
public sealed class TightOutboxHubNode() : HubNode(new Dictionary<string, string?>
{
    ["OutboundBufferMessages"] = "8",
    ["OutboundEphemeralMessages"] = "4",
    ["MaxMessageBytes"] = "1048576",
    ["Limits:SendMessage:PermitsPerSecond"] = "10000",
    ["Limits:SendMessage:Burst"] = "10000",
    ["Limits:Typing:PermitsPerSecond"] = "10000",
    ["Limits:Typing:Burst"] = "10000",
    ["Limits:MarkDelivered:PermitsPerSecond"] = "10000",
    ["Limits:MarkDelivered:Burst"] = "10000",
});

/// <summary>
/// Slow consumers, made deterministic: the reader that stalls is a raw socket with a small receive buffer that never
/// reads, every other client sends in lockstep with what it receives (so its own queue holds a couple of events at
/// most, however slow the machine), and loops run until a condition on the node holds, with a bound.
/// </summary>
public sealed class SlowConsumerTests(TightOutboxHubNode node) : IClassFixture<TightOutboxHubNode>
{
    private const int MaxRounds = 3_000;
    private static readonly string Big = new('z', 20_000);

    [Fact(Timeout = 240_000)]
    public async Task A_client_that_stops_reading_is_closed_and_the_others_go_on()
    {
        var options = node.App.Services.GetRequiredService<IOptions<HubOptions<ChatHub>>>().Value;
        Assert.Equal(1_048_576, options.MaximumReceiveMessageSize);
        var closedBefore = HubMetrics.Closed.WithLabels("slow_consumer").Value;
        await using var stalled = await StalledAsync(node, "t-slow");
        var (room, alice, sloth, slothConnection) = stalled;

        var sent = 0;
        while (!slothConnection.Closing)
        {
            Assert.True(sent < MaxRounds, $"the sloth was not closed after {sent} messages");
            await LockstepAsync(alice, room, Big, ++sent);
        }

        await AssertClosedAsync(sloth);
        Assert.False(alice.Closed.IsCompleted, "the sender was closed too");
        Assert.Equal(sent + 1, (await alice.SendAsync(room, "still here")).Seq());
        // Counted as the server's decision once the hub has let the connection go.
        Assert.Equal("slow_consumer", slothConnection.CloseReason);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (HubMetrics.Closed.WithLabels("slow_consumer").Value <= closedBefore)
        {
            Assert.True(DateTime.UtcNow < deadline, "caas_hub_connections_closed_total{reason=slow_consumer} counted within 60 s");
            await Task.Delay(100);
        }
    }

    [Fact(Timeout = 240_000)]
    public async Task A_slow_reader_loses_ephemeral_events_first_and_is_closed_only_for_durable_ones()
    {
        await using var stalled = await StalledAsync(node, "t-ephemeral");
        var (room, alice, sloth, slothConnection) = stalled;

        // Durable messages until the sloth's socket is full and its queue has begun to fill: its writer is stuck.
        var sent = await FillQueueAsync(alice, room, slothConnection, 3);

        // A flood of receipts (ephemeral) many times the queue's size: dropped, never a reason to close.
        for (var i = 0; i < 200 && slothConnection.EphemeralDropped < 50; i++)
            await alice.Ok("MarkDelivered", new { conversation_id = room, seq = sent });
        Assert.False(slothConnection.Closing, "the sloth was closed for ephemeral events");
        Assert.True(slothConnection.EphemeralDropped >= 50, $"only {slothConnection.EphemeralDropped} ephemeral events were dropped");
        Assert.InRange(slothConnection.Queued, 3, 8);

        // Durable messages again: queued ephemeral ones make room first, so the sloth is closed only once durable ones
        // fill the whole queue: after at least (places not held by durable events) + 1 more.
        var durableQueued = slothConnection.Queued - slothConnection.QueuedEphemeral;
        Assert.True(slothConnection.QueuedEphemeral > 0, "no ephemeral event was queued");
        var durableBefore = sent;
        while (!slothConnection.Closing)
        {
            Assert.True(sent - durableBefore < 20, "the sloth was never closed for durable messages");
            await LockstepAsync(alice, room, "durable " + (sent + 1), ++sent);
        }
        Assert.True(sent - durableBefore >= 8 - durableQueued + 1,
            $"closed after {sent - durableBefore} durable messages with {durableQueued} durable of 8 queued: ephemeral events held places");
        await AssertClosedAsync(sloth);
        Assert.False(alice.Closed.IsCompleted, "the sender was closed too");
        await alice.SendAsync(room, "still here");
    }

    [Fact(Timeout = 240_000)]
    public async Task A_reader_that_fell_behind_gets_its_backlog_once_and_in_order_when_it_reads_again()
    {
        await using var stalled = await StalledAsync(node, "t-backlog");
        var (room, alice, sloth, slothConnection) = stalled;

        // Big messages until the sloth's socket is full and its queue holds several: its writer is stuck, and what is
        // queued behind it goes out in batches (several events to one write and one frame) once the socket drains.
        var sent = await FillQueueAsync(alice, room, slothConnection, 4);

        // The sloth reads again: every message, once, in order, each record whole, then one more sent after.
        var seqs = new List<long>();
        var buffer = new byte[256 * 1024];
        var message = new MemoryStream();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var finalSent = false;
        while (seqs.Count == 0 || seqs[^1] < sent + 1)
        {
            var r = await sloth.ReceiveAsync(buffer, cts.Token);
            Assert.NotEqual(WebSocketMessageType.Close, r.MessageType);
            message.Write(buffer, 0, r.Count);
            if (!r.EndOfMessage) continue;
            var text = Encoding.UTF8.GetString(message.ToArray());
            message.SetLength(0);
            Assert.EndsWith("\u001e", text);
            foreach (var record in text.Split('\u001e', StringSplitOptions.RemoveEmptyEntries))
            {
                using var json = System.Text.Json.JsonDocument.Parse(record);
                if (!json.RootElement.TryGetProperty("target", out var target) || target.GetString() != "newMessage") continue;
                seqs.Add(json.RootElement.GetProperty("arguments")[0].GetProperty("seq").GetInt64());
            }
            if (!finalSent && seqs.Count > 0 && seqs[^1] == sent)
            {
                finalSent = true;
                await alice.SendAsync(room, "after the backlog");
            }
        }
        Assert.Equal(Enumerable.Range(1, sent + 1).Select(i => (long)i), seqs);
        Assert.False(slothConnection.Closing);
    }

    [Fact(Timeout = 240_000)]
    public async Task A_member_spamming_typing_cannot_get_another_member_closed()
    {
        const string tenant = "t-typing";
        using (var rest = node.Rest(tenant, "alice"))
        {
            var room = await rest.CreateGroupAsync("bob", "carol");
            await using var alice = await node.ConnectAsync(tenant, "alice");
            await using var alice2 = await node.ConnectAsync(tenant, "alice");
            await using var carol = await node.ConnectAsync(tenant, "carol");
            foreach (var c in new[] { alice, alice2, carol }) await c.JoinAsync(room);

            // Two connections of one user, each typing as fast as calls go; carol reads normally.
            var clock = Stopwatch.StartNew();
            var relayed = 0;
            for (var i = 0; i < 300; i++)
            {
                var answer = await (i % 2 == 0 ? alice : alice2).Ok("Typing", new { conversation_id = room });
                if (answer.GetProperty("relayed").GetBoolean()) relayed++;
            }
            var window = clock.Elapsed;
            // The message is published after every typing signal, so once carol has it she has every typing event too.
            await alice.SendAsync(room, "done typing");
            await carol.NextAsync("newMessage:" + room);

            var typing = carol.All.Where(e => e.Name == "typing" && e.Payload.Str("user_id") == "alice")
                .Select(e => DateTimeOffset.Parse(e.Payload.Str("at"), System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.NotEmpty(typing);
            Assert.True(typing.Count <= (int)(window.TotalSeconds / 2) + 1, $"{typing.Count} typing events in {window.TotalSeconds:0.0} s");
            for (var i = 1; i < typing.Count; i++)
                Assert.True(typing[i] - typing[i - 1] >= TimeSpan.FromSeconds(2), $"typing events {typing[i - 1]:O} and {typing[i]:O} are closer than 2 s");
            Assert.True(relayed < 300, "no typing call was coalesced");
            Assert.False(carol.Closed.IsCompleted, "carol was closed");
            await carol.Ok("GetPresence", new { user_id = "alice" });
        }
    }

    /// <summary>A room of alice and the sloth: alice on the hub, the sloth joined over a raw socket it never reads (<see cref="SlothAsync"/>).</summary>
    internal sealed record Stalled(string Room, HubClient Alice, ClientWebSocket Sloth, ChatConnection Connection) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            Sloth.Dispose();
            await Alice.DisposeAsync();
        }
    }

    internal static async Task<Stalled> StalledAsync(HubNode node, string tenant)
    {
        var (room, alice) = await RoomAsync(node, tenant);
        var sloth = await SlothAsync(node, tenant, room, alice);
        return new Stalled(room, alice, sloth, Single(node, tenant, "sloth"));
    }

    internal static async Task<(string Room, HubClient Alice)> RoomAsync(HubNode node, string tenant)
    {
        using (var admin = node.Rest(tenant, "root", "admin"))
            Assert.Equal(200, (await admin.ApiPut("/v1/admin/tenant/settings", new { message_rate_per_minute = 100_000, max_message_chars = 100_000 })).Status);
        using var rest = node.Rest(tenant, "alice");
        var room = await rest.CreateGroupAsync("sloth");
        var alice = await node.ConnectAsync(tenant, "alice");
        await alice.JoinAsync(room);
        return (room, alice);
    }

    /// <summary>Big messages in lockstep until the stalled reader's queue holds <paramref name="queued"/>; answers how many were sent.</summary>
    private static async Task<int> FillQueueAsync(HubClient alice, string room, ChatConnection stalled, int queued)
    {
        var sent = 0;
        while (stalled.Queued < queued)
        {
            Assert.True(sent < MaxRounds, $"the stalled reader's queue did not fill after {sent} messages");
            await LockstepAsync(alice, room, Big, ++sent);
        }
        Assert.False(stalled.Closing);
        return sent;
    }

    /// <summary>Sends one message and waits for its own copy: the sender's queue never holds more than a few events.</summary>
    internal static async Task LockstepAsync(HubClient sender, string room, string text, int expectedSeq)
    {
        Assert.Equal(expectedSeq, (await sender.SendAsync(room, text)).Seq());
        await sender.NextAsync("newMessage:" + room, e => e.Seq() == expectedSeq, TimeSpan.FromSeconds(30));
    }

    internal static ChatConnection Single(HubNode node, string tenant, string user) =>
        Assert.Single(node.App.Services.GetRequiredService<ChatConnections>().OfUser(tenant, user));

    /// <summary>The sloth joins over a raw socket with a small receive buffer, and then never reads again.</summary>
    internal static async Task<ClientWebSocket> SlothAsync(HubNode node, string tenant, string room, HubClient alice)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, ct) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveBufferSize = 8 * 1024 };
                try
                {
                    await socket.ConnectAsync(context.DnsEndPoint, ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        var sloth = new ClientWebSocket();
        var uri = new UriBuilder(node.BaseAddress) { Scheme = "ws", Path = "/hubs/chat", Query = "access_token=" + node.Jwt.Issue(tenant, "sloth") }.Uri;
        await sloth.ConnectAsync(uri, new HttpMessageInvoker(handler), CancellationToken.None);
        await sloth.SendAsync(Encoding.UTF8.GetBytes("{\"protocol\":\"json\",\"version\":1}\u001e"), WebSocketMessageType.Text, true, CancellationToken.None);
        await sloth.SendAsync(Encoding.UTF8.GetBytes($"{{\"type\":1,\"invocationId\":\"1\",\"target\":\"JoinRoom\",\"arguments\":[{{\"conversation_id\":\"{room}\"}}]}}\u001e"),
            WebSocketMessageType.Text, true, CancellationToken.None);
        await alice.NextAsync("memberJoined", e => e.Str("user_id") == "sloth");
        return sloth;
    }

    /// <summary>Reading now drains what the kernel held, then finds the connection closed by the server.</summary>
    internal static async Task AssertClosedAsync(ClientWebSocket sloth)
    {
        var buffer = new byte[256 * 1024];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var closed = false;
        try
        {
            while (true)
            {
                var r = await sloth.ReceiveAsync(buffer, cts.Token);
                if (r.MessageType == WebSocketMessageType.Close) { closed = true; break; }
            }
        }
        catch (WebSocketException)
        {
            closed = true;
        }
        Assert.True(closed, "the server closed the connection that did not keep up");
    }
}
