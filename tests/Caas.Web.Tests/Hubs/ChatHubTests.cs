using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests.Hubs;

/// <summary>The chat hub on one node, through the official .NET SignalR client.</summary>
public sealed class ChatHubTests(HubNode node) : IClassFixture<HubNode>
{
    private async Task<string> GroupAsync(string tenant, string owner, params string[] members)
    {
        using var rest = node.Rest(tenant, owner);
        return await rest.CreateGroupAsync(members);
    }

    [Fact]
    public async Task A_message_sent_on_one_connection_arrives_on_another_in_order_with_no_gap()
    {
        var room = await GroupAsync("t-order", "alice", "bob");
        await using var alice = await node.ConnectAsync("t-order", "alice");
        await using var bob = await node.ConnectAsync("t-order", "bob");
        var joined = await alice.JoinAsync(room);
        Assert.Equal("owner", joined.Str("role"));
        Assert.Equal(["alice", "bob"], joined.GetProperty("members").EnumerateArray().Select(m => m.Str("user_id")).Order().ToArray());
        Assert.Equal("member", (await bob.JoinAsync(room)).Str("role"));

        // Several in flight at once from one client: the hub answers each when it is persisted.
        var sends = Enumerable.Range(1, 20).Select(i => alice.SendAsync(room, $"hello {i}", $"order-{i}")).ToList();
        var results = await Task.WhenAll(sends);
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), results.Select(r => r.Seq()).Order());

        var received = await bob.MessagesAsync(room, 20);
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), received.Select(m => m.Seq()));
        foreach (var m in received)
        {
            var sent = results.Single(r => r.Seq() == m.Seq());
            Assert.Equal(sent.Str("message_id"), m.Str("message_id"));
            Assert.Equal("alice", m.Str("sender_id"));
            Assert.Equal("text", m.GetProperty("content").Str("type"));
            Assert.StartsWith("hello ", m.GetProperty("content").Str("text"));
        }
        // The sender hears its own messages too, and a messagePersisted for each.
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), (await alice.MessagesAsync(room, 20)).Select(m => m.Seq()));
        var persisted = new List<long>();
        for (var i = 0; i < 20; i++) persisted.Add((await alice.NextAsync("messagePersisted")).Seq());
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), persisted.Order());

        // A repeated message_id answers the original and writes nothing.
        var again = await alice.SendAsync(room, "hello 1", "order-1");
        Assert.Equal(results.Single(r => r.Str("message_id") == "order-1").Seq(), again.Seq());
        Assert.True(again.GetProperty("repeat").GetBoolean());
    }

    [Fact]
    public async Task Rooms_of_non_members_and_of_other_tenants_are_not_found()
    {
        var room = await GroupAsync("t-iso", "alice");
        await using var carol = await node.ConnectAsync("t-iso", "carol");
        await using var mallory = await node.ConnectAsync("t-iso-other", "alice");
        await carol.Fails("JoinRoom", new { conversation_id = room }, "not_found");
        await mallory.Fails("JoinRoom", new { conversation_id = room }, "not_found");
        await mallory.Fails("JoinRoom", new { conversation_id = "no-such-room" }, "not_found");
        await mallory.Fails("SendMessage", new { conversation_id = room, content = new { type = "text", text = "hi" } }, "not_found");
        await mallory.Fails("GetHistory", new { conversation_id = room }, "not_found");
        await carol.Fails("Typing", new { conversation_id = room }, "not_found");
        using var rest = node.Rest("t-iso", "alice");
        Assert.Equal(0, (await rest.ApiGet($"/v1/conversations/{room}")).Body.GetProperty("last_seq").GetInt64());
    }

    [Fact]
    public async Task Hub_errors_are_result_objects_with_the_rest_codes()
    {
        var room = await GroupAsync("t-errors", "alice");
        await using var alice = await node.ConnectAsync("t-errors", "alice");
        await alice.Fails("SendMessage", new { conversation_id = room }, "validation_failed");
        await alice.Fails("SendMessage", new { conversation_id = "a b", content = "x" }, "validation_failed");
        await alice.Fails("SendMessage", new { conversation_id = room, content = new string('x', 4001) }, "payload_too_large");
        await alice.Fails("SendMessage", new { conversation_id = room, content = new { type = "image", text = "x" } }, "validation_failed");
        await alice.Fails("GetHistory", new { conversation_id = room, limit = 0 }, "validation_failed");
        await alice.Fails("MarkRead", new { conversation_id = room, seq = 5 }, "validation_failed");
        await alice.Fails("EditMessage", new { conversation_id = room, seq = 1, content = "x" }, "not_found");
        var plain = await alice.SendAsync(room, "plain");
        await alice.Ok("React", new { conversation_id = room, seq = plain.Seq(), reaction = "👍" });
    }

    [Fact]
    public async Task Typing_read_and_delivered_receipts_reach_the_other_members()
    {
        var room = await GroupAsync("t-receipts", "alice", "bob");
        await using var alice = await node.ConnectAsync("t-receipts", "alice");
        await using var bob = await node.ConnectAsync("t-receipts", "bob");
        await alice.JoinAsync(room);
        await bob.JoinAsync(room);

        await bob.Ok("Typing", new { conversation_id = room });
        var typing = await alice.NextAsync("typing");
        Assert.Equal("bob", typing.Str("user_id"));
        Assert.Equal(room, typing.Str("conversation_id"));

        var sent = await alice.SendAsync(room, "read me");
        var got = (await bob.MessagesAsync(room, 1))[0];
        await bob.Ok("MarkDelivered", new { conversation_id = room, seq = got.Seq() });
        var delivered = await alice.NextAsync("delivered");
        Assert.Equal(("bob", sent.Seq()), (delivered.Str("user_id"), delivered.Seq()));
        var read = await bob.Ok("MarkRead", new { conversation_id = room, seq = got.Seq() });
        Assert.Equal(sent.Seq(), read.Seq());
        var receipt = await alice.NextAsync("readReceipt");
        Assert.Equal(("bob", sent.Seq()), (receipt.Str("user_id"), receipt.Seq()));

        // The read marker is stored in the user's session: REST's read endpoint sees the same.
        Assert.DoesNotContain(bob.All, e => e.Name == "typing" && e.Payload.Str("user_id") == "bob");
        Assert.DoesNotContain(bob.All, e => e.Name == "readReceipt" && e.Payload.Str("user_id") != "bob");
    }

    [Fact]
    public async Task Presence_follows_connections_online_then_offline_after_the_last_one_closes()
    {
        var room = await GroupAsync("t-presence", "alice", "bob");
        await using var alice = await node.ConnectAsync("t-presence", "alice");
        await alice.JoinAsync(room);
        var bob = await node.ConnectAsync("t-presence", "bob");
        // Bob's first call is served after his connection is recorded (OnConnectedAsync), so he is online by then.
        await bob.JoinAsync(room);
        Assert.Equal("online", (await alice.Ok("GetPresence", new { user_id = "bob" })).Str("status"));
        Assert.Equal("bob", (await alice.NextAsync("memberJoined", e => e.Str("user_id") == "bob")).Str("user_id"));
        var online = await alice.NextAsync("presenceChanged", e => e.Str("user_id") == "bob");
        Assert.Equal("online", online.Str("status"));

        await bob.DisposeAsync();
        await alice.NextAsync("memberLeft", e => e.Str("user_id") == "bob");
        var offline = await alice.NextAsync("presenceChanged", e => e.Str("user_id") == "bob" && e.Str("status") == "offline",
            TimeSpan.FromSeconds(30));
        Assert.NotNull(offline.GetProperty("last_seen").GetString());
        Assert.Equal("offline", (await alice.Ok("GetPresence", new { user_id = "bob" })).Str("status"));
    }

    [Fact]
    public async Task After_a_reconnect_GetHistory_after_seq_returns_exactly_what_was_missed()
    {
        var room = await GroupAsync("t-catchup", "alice", "bob");
        await using var alice = await node.ConnectAsync("t-catchup", "alice");
        await alice.JoinAsync(room);
        var bob = await node.ConnectAsync("t-catchup", "bob");
        await bob.JoinAsync(room);
        for (var i = 1; i <= 3; i++) await alice.SendAsync(room, $"before {i}");
        var seen = await bob.MessagesAsync(room, 3);
        var lastSeen = seen[^1].Seq();
        await bob.DisposeAsync();

        for (var i = 1; i <= 5; i++) await alice.SendAsync(room, $"missed {i}");
        await using var again = await node.ConnectAsync("t-catchup", "bob");
        await again.JoinAsync(room);
        var history = await again.Ok("GetHistory", new { conversation_id = room, after_seq = lastSeen, limit = 100 });
        var items = history.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(Enumerable.Range(4, 5).Select(i => (long)i), items.Select(m => m.Seq()));
        Assert.Equal(Enumerable.Range(1, 5).Select(i => $"missed {i}"), items.Select(m => m.GetProperty("content").Str("text")));

        // Live again from where the history ended.
        await alice.SendAsync(room, "live");
        var live = (await again.MessagesAsync(room, 1))[0];
        Assert.Equal(9, live.Seq());
    }

    [Fact]
    public async Task A_kicked_user_leaves_the_room_at_once_and_receives_nothing_more()
    {
        var room = await GroupAsync("t-kick", "alice", "bob", "carol");
        await using var alice = await node.ConnectAsync("t-kick", "alice");
        await using var bob = await node.ConnectAsync("t-kick", "bob");
        await using var carol = await node.ConnectAsync("t-kick", "carol");
        foreach (var c in new[] { alice, bob, carol }) await c.JoinAsync(room);

        using var rest = node.Rest("t-kick", "alice");
        var (status, _) = await rest.ApiPost($"/v1/conversations/{room}/moderation/kick", new { user_id = "bob", reason = "spam" });
        Assert.Equal(200, status);
        var kicked = await bob.NextAsync("userKicked");
        Assert.Equal(("bob", "spam"), (kicked.Str("user_id"), kicked.Str("reason")));
        await carol.NextAsync("userKicked");

        await alice.SendAsync(room, "after the kick");
        await carol.MessagesAsync(room, 1);
        // One round trip on bob's own connection after carol has the message: bob's copy would have been queued first.
        await bob.Fails("Typing", new { conversation_id = room }, "not_found");
        Assert.DoesNotContain(bob.All, e => e.Name == "newMessage");
        await bob.Fails("JoinRoom", new { conversation_id = room }, "not_found");
        await bob.Fails("SendMessage", new { conversation_id = room, content = "let me back" }, "not_found");
    }

    [Fact]
    public async Task Edits_deletes_and_reactions_reach_the_room()
    {
        var room = await GroupAsync("t-edit", "alice", "bob");
        await using var alice = await node.ConnectAsync("t-edit", "alice");
        await using var bob = await node.ConnectAsync("t-edit", "bob");
        await alice.JoinAsync(room);
        await bob.JoinAsync(room);
        var sent = await alice.SendAsync(room, "first");
        var edited = await alice.Ok("EditMessage", new { conversation_id = room, seq = sent.Seq(), content = "first, edited" });
        Assert.Equal("first, edited", edited.GetProperty("message").GetProperty("content").Str("text"));
        Assert.Equal("first, edited", (await bob.NextAsync("messageEdited")).GetProperty("content").Str("text"));
        await bob.Ok("React", new { conversation_id = room, seq = sent.Seq(), reaction = "🎉" });
        var reaction = await alice.NextAsync("reactionChanged");
        Assert.Equal(("bob", "🎉", true), (reaction.Str("user_id"), reaction.Str("reaction"), reaction.GetProperty("added").GetBoolean()));
        await bob.Fails("EditMessage", new { conversation_id = room, seq = sent.Seq(), content = "not mine" }, "forbidden");
        await alice.Ok("DeleteMessage", new { conversation_id = room, seq = sent.Seq() });
        Assert.Equal(sent.Seq(), (await bob.NextAsync("messageDeleted")).Seq());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("not-a-jwt")]
    [InlineData("forged")]
    [InlineData("expired")]
    public async Task Negotiate_without_a_valid_token_is_401(string? kind)
    {
        var token = kind switch
        {
            "forged" => new Caas.Web.Auth.JwtSettings("another-secret-another-secret-another-secret", null, null, null).Issue("t", "u"),
            "expired" => node.Jwt.Issue("t", "u", lifetime: TimeSpan.FromMinutes(-5)),
            _ => kind,
        };
        using var http = new HttpClient { BaseAddress = node.BaseAddress };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/hubs/chat/negotiate?negotiateVersion=1");
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("unauthenticated", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Str("code"));

        // The official client fails to start, and a WebSocket with the token in the query string is refused too.
        await using var client = HubClient.Build(node.BaseAddress, token);
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => client.StartAsync());
        Assert.Equal(HttpStatusCode.Unauthorized, error.StatusCode);
    }

    [Fact]
    public async Task An_expiring_token_hears_sessionExpired_then_the_connection_closes()
    {
        await using var client = await node.ConnectAsync("t-expiry", "alice", lifetime: TimeSpan.FromSeconds(3));
        var expired = await client.NextAsync("sessionExpired", within: TimeSpan.FromSeconds(20));
        Assert.Equal("token_expired", expired.Str("code"));
        await client.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(Microsoft.AspNetCore.SignalR.Client.HubConnectionState.Disconnected, client.Connection.State);
    }

    [Fact]
    public async Task An_unknown_method_or_unbindable_arguments_get_an_error_completion_and_the_connection_stays()
    {
        var room = await GroupAsync("t-unknown", "alice");
        await using var alice = await node.ConnectAsync("t-unknown", "alice");
        var unknown = await Assert.ThrowsAsync<HubException>(() => alice.Connection.InvokeAsync<JsonElement>("NoSuchMethod", 1));
        Assert.Contains("NoSuchMethod", unknown.Message);
        var unbindable = await Assert.ThrowsAsync<HubException>(() =>
            alice.Connection.InvokeAsync<JsonElement>("JoinRoom", new { conversation_id = new[] { 1, 2 } }));
        Assert.DoesNotContain("   at ", unbindable.Message);
        Assert.Equal(Microsoft.AspNetCore.SignalR.Client.HubConnectionState.Connected, alice.Connection.State);
        await alice.JoinAsync(room);
        Assert.Equal(1, (await alice.SendAsync(room, "still here")).Seq());
    }

    [Fact]
    public async Task A_hub_websocket_is_not_an_http_request_in_the_metrics_while_rest_calls_are()
    {
        await using var alice = await node.ConnectAsync("t-metrics", "alice");
        using var rest = node.Rest("t-metrics", "alice");
        Assert.Equal(200, (await rest.ApiGet("/v1/conversations")).Status);
        var metrics = await rest.GetStringAsync("/metrics");
        // The REST call and the hub's negotiate are counted; the live socket (an upgrade request that lasts as long as the
        // connection) is not.
        Assert.Contains(metrics.Split('\n'), l => l.StartsWith("http_requests_received_total{", StringComparison.Ordinal) && l.Contains("/v1/conversations"));
        var sockets = metrics.Split('\n').Where(l => l.StartsWith("http_request", StringComparison.Ordinal) && l.Contains($"endpoint=\"{Caas.Web.Hubs.CaasHub.Path}\"")).ToList();
        Assert.True(sockets.Count == 0, string.Join("\n", sockets));
        Assert.Contains(metrics.Split('\n'), l => l.StartsWith("http_requests_received_total{", StringComparison.Ordinal) && l.Contains("/hubs/chat/negotiate"));
        Assert.Equal(HubConnectionState.Connected, alice.Connection.State);
        // The hub counts its connections itself (other tests' nodes in this process count into the same metrics).
        var open = metrics.Split('\n').Single(l => l.StartsWith("caas_hub_connections ", StringComparison.Ordinal));
        Assert.True(double.Parse(open.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) >= 1, open);
        Assert.Contains(metrics.Split('\n'), l => l.StartsWith("caas_hub_connections_opened_total ", StringComparison.Ordinal));
        // Alice's own connection: when she closes it, the hub lets it go with no server reason, so it counts as "client"
        // (the counter itself is shared with the other tests' nodes, so the connection's reason is what is checked).
        var connections = node.App.Services.GetRequiredService<Caas.Web.Hubs.ChatConnections>();
        var mine = Assert.Single(connections.OfUser("t-metrics", "alice"));
        await alice.DisposeAsync();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (connections.Find(mine.Id) is not null)
        {
            Assert.True(DateTime.UtcNow < deadline, "alice's connection let go within 60 s");
            await Task.Delay(100);
        }
        Assert.Null(mine.CloseReason);
        Assert.True(Caas.Web.Hubs.HubMetrics.Closed.WithLabels("client").Value >= 1);
    }

    [Fact]
    public async Task Hello_negotiates_the_highest_common_protocol_version_and_refuses_one_it_does_not_speak()
    {
        await using var alice = await node.ConnectAsync("t-hello", "alice");
        var hello = await alice.Ok("Hello", new { versions = new[] { 1 }, client = "caas-tests" });
        Assert.Equal(1, hello.GetProperty("protocol").GetInt32());
        Assert.Equal("caas", hello.Str("server"));
        var features = hello.GetProperty("features").EnumerateArray().Select(f => f.GetString()).ToList();
        Assert.Contains("resume", features);
        Assert.Contains("tracked_delivery", features);
        var limits = hello.GetProperty("limits");
        Assert.True(limits.GetProperty("max_message_bytes").GetInt64() > 0);
        Assert.Equal(100, limits.GetProperty("max_resume_rooms").GetInt32());
        // A newer client offers what it speaks: the server picks the highest it shares.
        Assert.Equal(1, (await alice.Ok("Hello", new { versions = new[] { 3, 2, 1 } })).GetProperty("protocol").GetInt32());
        var refused = await alice.Fails("Hello", new { versions = new[] { 2, 3 } }, "unsupported_protocol");
        Assert.Contains("offered 2, 3", refused.GetProperty("error").Str("message"));
        await alice.Fails("Hello", new { versions = Array.Empty<int>() }, "validation_failed");
        await alice.Fails("Hello", new { }, "validation_failed");
        await alice.Fails("Hello", new { versions = new[] { 0 } }, "validation_failed");
        await alice.Fails("Hello", new { versions = new[] { 1 }, client = new string('x', 201) }, "validation_failed");
        // The connection is unchanged by a refusal: the client decides whether to go on.
        Assert.Equal(HubConnectionState.Connected, alice.Connection.State);
        Assert.Equal(1, (await alice.Ok("Hello", new { versions = new[] { 1 } })).GetProperty("protocol").GetInt32());
    }
}
