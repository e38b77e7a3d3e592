using System.Text.Json;
using Caas.Actors.Calls;
using Caas.Web.Hubs;
using Caas.Web.Tests.Hubs;
using Microsoft.AspNetCore.SignalR.Client;

namespace Caas.Web.Tests.Calls;

/// <summary>Call signaling through the hub on a real node: ringing, answering elsewhere, signals, leaving, ending, refusals.</summary>
public sealed class CallHubTests(CallHubTests.Node node) : IClassFixture<CallHubTests.Node>
{
    /// <summary>A node whose ring never times out during a test (its own test has a node of its own).</summary>
    public sealed class Node() : HubNode(new Dictionary<string, string?>(), o => o with { ExtraHocon = "caas.calls.ring-timeout = 1h" });

    private static readonly TimeSpan Within = TimeSpan.FromMinutes(1);

    private Task<HubClient> ConnectAsync(string tenant, string user) => CallClients.ConnectAsync(node, tenant, user);

    private async Task<string> GroupAsync(string tenant, string owner, params string[] members) =>
        await node.Rest(tenant, owner).CreateGroupAsync(members);

    private static Func<JsonElement, bool> Of(string callId) => e => e.Str("call_id") == callId;

    [Fact]
    public async Task A_call_rings_every_device_is_answered_on_one_relays_signals_and_ends_with_its_last_participant()
    {
        var conversation = await GroupAsync("t1", "alice", "bob", "carol");
        await using var alice = await ConnectAsync("t1", "alice");
        await using var bob1 = await ConnectAsync("t1", "bob");
        await using var bob2 = await ConnectAsync("t1", "bob");
        await using var carol = await ConnectAsync("t1", "carol");

        var started = await alice.Ok("StartCall", new { conversation_id = conversation, media = "video" });
        var call = started.Str("call_id");
        Assert.Equal("ringing", started.Str("status"));
        foreach (var device in new[] { bob1, bob2, carol })
        {
            var ring = await device.NextAsync(CallNotices.Ringing, Of(call), Within);
            Assert.Equal(("alice", "video", conversation), (ring.Str("from_user_id"), ring.Str("media"), ring.Str("conversation_id")));
        }
        await alice.Fails("StartCall", new { conversation_id = conversation, media = "audio" }, "conflict");

        var accepted = await bob1.Ok("AcceptCall", new { call_id = call });
        Assert.Equal("active", accepted.Str("status"));
        await bob2.NextAsync(CallNotices.AnsweredElsewhere, Of(call), Within);
        Assert.Equal("bob", (await alice.NextAsync(CallNotices.Accepted, Of(call), Within)).Str("user_id"));
        Assert.Equal("bob", (await alice.NextAsync(CallNotices.Joined, Of(call), Within)).Str("user_id"));

        // Signals go to every connection of the target, with the payload as sent.
        await alice.Ok("SendSignal", new { call_id = call, to_user_id = "bob", kind = "offer", payload = new { type = "offer", sdp = "v=0 fake" } });
        foreach (var device in new[] { bob1, bob2 })
        {
            var offer = await device.NextAsync(CallNotices.Signal, Of(call), Within);
            Assert.Equal(("alice", "offer", "v=0 fake"), (offer.Str("from_user_id"), offer.Str("kind"), offer.GetProperty("payload").Str("sdp")));
        }
        await bob1.Ok("SendSignal", new { call_id = call, to_user_id = "alice", kind = "answer", payload = new { type = "answer", sdp = "v=0 back" } });
        Assert.Equal("answer", (await alice.NextAsync(CallNotices.Signal, Of(call), Within)).Str("kind"));

        // A reload: bob joins again and stays in.
        Assert.Contains("bob", (await bob2.Ok("AcceptCall", new { call_id = call })).GetProperty("joined").EnumerateArray().Select(j => j.GetString()));

        await carol.Ok("DeclineCall", new { call_id = call });
        Assert.Equal("carol", (await alice.NextAsync(CallNotices.Declined, Of(call), Within)).Str("user_id"));
        await bob1.Ok("LeaveCall", new { call_id = call });
        Assert.Equal("bob", (await alice.NextAsync(CallNotices.Left, Of(call), Within)).Str("user_id"));
        var last = await alice.Ok("LeaveCall", new { call_id = call });
        Assert.Equal(("ended", "completed"), (last.Str("status"), last.Str("end_reason")));
        foreach (var device in new[] { bob1, bob2, carol })
        {
            var ended = await device.NextAsync(CallNotices.Ended, Of(call), Within);
            Assert.Equal(["alice", "bob"], ended.GetProperty("participants").EnumerateArray().Select(p => p.GetString()));
        }
        await alice.Fails("AcceptCall", new { call_id = call }, "not_found");

        // The conversation's call list: members only.
        var (status, list) = await node.Rest("t1", "carol").ApiGet($"/v1/conversations/{conversation}/calls");
        Assert.Equal(200, status);
        Assert.Equal(JsonValueKind.Null, list.GetProperty("active").ValueKind);
        var item = Assert.Single(list.GetProperty("items").EnumerateArray());
        Assert.Equal((call, "video", "alice", "completed"), (item.Str("call_id"), item.Str("media"), item.Str("started_by"), item.Str("reason")));
        Assert.Equal(404, (await node.Rest("t1", "mallory").ApiGet($"/v1/conversations/{conversation}/calls")).Status);
        Assert.Equal(404, (await node.Rest("t2", "alice").ApiGet($"/v1/conversations/{conversation}/calls")).Status);
        Assert.Equal(400, (await node.Rest("t1", "carol").ApiGet($"/v1/conversations/{conversation}/calls?limit=0")).Status);
    }

    [Fact]
    public async Task Bad_call_input_is_refused_and_changes_nothing()
    {
        var conversation = await GroupAsync("t1", "dora", "eve", "fay");
        await using var dora = await ConnectAsync("t1", "dora");
        await using var eve = await ConnectAsync("t1", "eve");
        await using var fay = await ConnectAsync("t1", "fay");
        await using var gus = await ConnectAsync("t1", "gus");
        await using var stranger = await ConnectAsync("t2", "dora"); // same user id, another tenant

        await gus.Fails("StartCall", new { conversation_id = conversation, media = "audio" }, "not_found");
        await dora.Fails("StartCall", new { conversation_id = conversation, media = "hologram" }, "validation_failed");
        var call = (await dora.Ok("StartCall", new { conversation_id = conversation, media = "audio" })).Str("call_id");
        await eve.Ok("AcceptCall", new { call_id = call });

        // signals: to a user not in the call, to one still ringing, from a non-member, oversize, bad kind
        await dora.Fails("SendSignal", new { call_id = call, to_user_id = "gus", kind = "offer", payload = "x" }, "not_found");
        await dora.Fails("SendSignal", new { call_id = call, to_user_id = "fay", kind = "offer", payload = "x" }, "not_found");
        await gus.Fails("SendSignal", new { call_id = call, to_user_id = "dora", kind = "offer", payload = "x" }, "not_found");
        await dora.Fails("SendSignal", new { call_id = call, to_user_id = "eve", kind = "offer", payload = new string('v', ChatHub.MaxSignalPayloadBytes + 1) }, "payload_too_large");
        await dora.Fails("SendSignal", new { call_id = call, to_user_id = "eve", kind = "bye", payload = "x" }, "validation_failed");

        // another tenant's call id, a made-up one, and ending someone else's call without the right
        await stranger.Fails("AcceptCall", new { call_id = call }, "not_found");
        await stranger.Fails("EndCall", new { call_id = call }, "not_found");
        await dora.Fails("AcceptCall", new { call_id = "call_nope" }, "not_found");
        await eve.Fails("EndCall", new { call_id = call }, "forbidden");
        await gus.Fails("EndCall", new { call_id = call }, "not_found");

        // None of it changed the call: eve still gets dora's signal, and dora (the caller) ends it for everyone.
        await dora.Ok("SendSignal", new { call_id = call, to_user_id = "eve", kind = "ice", payload = new { candidate = "c1" } });
        Assert.Equal("ice", (await eve.NextAsync(CallNotices.Signal, Of(call), Within)).Str("kind"));
        var ended = await dora.Ok("EndCall", new { call_id = call });
        Assert.Equal("ended", ended.Str("end_reason"));
        Assert.Equal("dora", (await eve.NextAsync(CallNotices.Ended, Of(call), Within)).Str("ended_by"));
        Assert.DoesNotContain(gus.All, e => e.Name.StartsWith("call", StringComparison.Ordinal) || e.Name == CallNotices.Signal);
        Assert.DoesNotContain(stranger.All, e => e.Name.StartsWith("call", StringComparison.Ordinal) || e.Name == CallNotices.Signal);
    }
}

/// <summary>An unanswered call is missed when its ring times out (3 s here; the test waits for the events, not the time).</summary>
public sealed class CallRingTimeoutTests(CallRingTimeoutTests.Node node) : IClassFixture<CallRingTimeoutTests.Node>
{
    public sealed class Node() : HubNode(new Dictionary<string, string?>(), o => o with { ExtraHocon = "caas.calls.ring-timeout = 3s" });

    [Fact]
    public async Task An_unanswered_call_is_missed_when_the_ring_times_out()
    {
        var within = TimeSpan.FromMinutes(1);
        var conversation = await node.Rest("t1", "hal").CreateGroupAsync("ida");
        await using var hal = await CallClients.ConnectAsync(node, "t1", "hal");
        await using var ida = await CallClients.ConnectAsync(node, "t1", "ida");
        var call = (await hal.Ok("StartCall", new { conversation_id = conversation, media = "audio" })).Str("call_id");
        Func<JsonElement, bool> of = e => e.Str("call_id") == call;
        await ida.NextAsync(CallNotices.Ringing, of, within);
        await ida.NextAsync(CallNotices.Missed, of, within);
        Assert.Equal("missed", (await hal.NextAsync(CallNotices.Ended, of, within)).Str("reason"));
        Assert.Equal("missed", (await ida.NextAsync(CallNotices.Ended, of, within)).Str("reason"));
        // The conversation is free for the next call.
        await hal.Ok("StartCall", new { conversation_id = conversation, media = "audio" });
    }
}

/// <summary>Hub clients that also record the call events.</summary>
public static class CallClients
{
    public static readonly string[] Events =
    [
        CallNotices.Ringing, CallNotices.Accepted, CallNotices.AnsweredElsewhere, CallNotices.Declined, CallNotices.Joined,
        CallNotices.Left, CallNotices.Missed, CallNotices.Ended, CallNotices.Signal,
        CallNotices.RecordingConsentRequested, CallNotices.RecordingConsented, CallNotices.RecordingStarted, CallNotices.RecordingStopped,
        CallNotices.RecordingDeclined,
    ];

    public static async Task<HubClient> ConnectAsync(HubNode node, string tenant, string user)
    {
        var client = await node.ConnectAsync(tenant, user);
        foreach (var name in Events)
        {
            var inbox = client.Inbox(name);
            client.Connection.On<JsonElement>(name, p =>
            {
                inbox.Writer.TryWrite(p);
                client.All.Enqueue((name, p));
            });
        }
        return client;
    }
}

/// <summary>A participant's closed connection leaves the call; they can join again; the last one out ends it.</summary>
public sealed class CallDisconnectTests(CallHubTests.Node node) : IClassFixture<CallHubTests.Node>
{
    [Fact]
    public async Task Disconnecting_leaves_the_call_a_reload_rejoins_and_the_last_disconnect_ends_it()
    {
        var within = TimeSpan.FromMinutes(1);
        var conversation = await node.Rest("t1", "jan").CreateGroupAsync("kim", "lee");
        var jan = await CallClients.ConnectAsync(node, "t1", "jan");
        var kim = await CallClients.ConnectAsync(node, "t1", "kim");
        await using var lee = await CallClients.ConnectAsync(node, "t1", "lee");
        var call = (await jan.Ok("StartCall", new { conversation_id = conversation, media = "video" })).Str("call_id");
        Func<JsonElement, bool> of = e => e.Str("call_id") == call;
        await kim.Ok("AcceptCall", new { call_id = call });
        await jan.NextAsync(CallNotices.Joined, of, within);

        await kim.DisposeAsync(); // a page reload: the old connection goes
        var left = await jan.NextAsync(CallNotices.Left, of, within);
        Assert.Equal(("kim", "disconnected"), (left.Str("user_id"), left.Str("reason")));
        await using var kimAgain = await CallClients.ConnectAsync(node, "t1", "kim");
        await kimAgain.Ok("AcceptCall", new { call_id = call });
        Assert.Equal("kim", (await jan.NextAsync(CallNotices.Joined, of, within)).Str("user_id"));

        await jan.DisposeAsync();
        Assert.Equal("jan", (await kimAgain.NextAsync(CallNotices.Left, of, within)).Str("user_id"));
        await kimAgain.Connection.StopAsync();
        var ended = await lee.NextAsync(CallNotices.Ended, of, within);
        Assert.Equal("completed", ended.Str("reason"));
        Assert.Equal(["jan", "kim"], ended.GetProperty("participants").EnumerateArray().Select(p => p.GetString()!));
    }
}
