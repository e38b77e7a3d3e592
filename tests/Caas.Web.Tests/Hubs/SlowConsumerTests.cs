using System.Net.WebSockets;
using System.Text;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Caas.Web.Tests.Hubs;

/// <summary>A node whose hub queues at most 8 outbound messages per connection and accepts large frames.</summary>
public sealed class TightOutboxHubNode() : HubNode(new Dictionary<string, string?>
{
    ["OutboundBufferMessages"] = "8",
    ["MaxMessageBytes"] = "1048576",
});

public sealed class SlowConsumerTests(TightOutboxHubNode node) : IClassFixture<TightOutboxHubNode>
{
    [Fact(Timeout = 120_000)]
    public async Task A_client_that_stops_reading_is_closed_and_the_others_go_on()
    {
        var options = node.App.Services.GetRequiredService<IOptions<HubOptions<Caas.Web.Hubs.ChatHub>>>().Value;
        Assert.Equal(1_048_576, options.MaximumReceiveMessageSize);
        using (var admin = node.Rest("t-slow", "root", "admin"))
            Assert.Equal(200, (await admin.ApiPut("/v1/admin/tenant/settings", new { message_rate_per_minute = 100_000, max_message_chars = 100_000 })).Status);
        using var rest = node.Rest("t-slow", "alice");
        var room = await rest.CreateGroupAsync("sloth");
        await using var alice = await node.ConnectAsync("t-slow", "alice");
        await alice.JoinAsync(room);

        // The sloth joins over a raw socket and then never reads again.
        using var sloth = new ClientWebSocket();
        await sloth.ConnectAsync(new UriBuilder(node.BaseAddress) { Scheme = "ws", Path = "/hubs/chat", Query = "access_token=" + node.Jwt.Issue("t-slow", "sloth") }.Uri,
            CancellationToken.None);
        await sloth.SendAsync(Encoding.UTF8.GetBytes("{\"protocol\":\"json\",\"version\":1}\u001e"), WebSocketMessageType.Text, true, CancellationToken.None);
        await sloth.SendAsync(Encoding.UTF8.GetBytes($"{{\"type\":1,\"invocationId\":\"1\",\"target\":\"JoinRoom\",\"arguments\":[{{\"conversation_id\":\"{room}\"}}]}}\u001e"),
            WebSocketMessageType.Text, true, CancellationToken.None);
        await alice.NextAsync("memberJoined", e => e.Str("user_id") == "sloth");

        // ~20 KB a message: the socket buffers on loopback fill after some megabytes, then the sloth's queue.
        var text = new string('z', 20_000);
        const int count = 600;
        // One at a time: alice reads as she goes, so her own queue never holds more than a couple of events.
        for (var i = 0; i < count; i++) await alice.SendAsync(room, text, $"slow-{i}");
        Assert.Equal(count, (await alice.MessagesAsync(room, count, TimeSpan.FromSeconds(60))).Count);

        // Reading now drains what the kernel held, then finds the connection closed by the server.
        var buffer = new byte[256 * 1024];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
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
        Assert.Equal(count + 1, (await alice.SendAsync(room, "still here")).Seq());
    }
}
