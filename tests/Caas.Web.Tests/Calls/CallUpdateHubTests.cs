using System.Text.Json;
using Caas.Actors.Calls;
using Caas.Web.Tests.Hubs;

namespace Caas.Web.Tests.Calls;

/// <summary>
/// A call's lifecycle is recorded in its conversation (<c>callUpdated</c>): durable events with the conversation's
/// event_seq, to the room's connections, replayed by Resume to a client that was away, in order with the messages.
/// </summary>
public sealed class CallUpdateHubTests(CallHubTests.Node node) : IClassFixture<CallHubTests.Node>
{
    private static readonly TimeSpan Within = TimeSpan.FromMinutes(1);

    private static long EventSeq(JsonElement e) => e.GetProperty("event_seq").GetInt64();

    private static string Users(JsonElement e, string field) => string.Join(",", e.GetProperty(field).EnumerateArray().Select(u => u.GetString()));

    [Fact(Timeout = 180_000)]
    public async Task A_call_is_in_the_room_as_durable_updates_and_a_client_that_missed_it_gets_them_by_resume()
    {
        const string tenant = "t-callupd";
        var room = await node.Rest(tenant, "alice").CreateGroupAsync("bob", "carol");
        await using var alice = await CallClients.ConnectAsync(node, tenant, "alice");
        await using var carol = await CallClients.ConnectAsync(node, tenant, "carol");
        await carol.JoinAsync(room);
        var bob = await CallClients.ConnectAsync(node, tenant, "bob");
        await bob.JoinAsync(room);
        await alice.SendAsync(room, "before the call");
        var before = Assert.Single(await bob.MessagesAsync(room, 1, Within));
        var resumeFrom = EventSeq(before);
        await bob.DisposeAsync();

        // While bob is away: a call starts, carol answers, alice ends it.
        var call = (await alice.Ok("StartCall", new { conversation_id = room, media = "audio" })).Str("call_id");
        bool Of(JsonElement e) => e.Str("call_id") == call;
        var started = await carol.NextAsync("callUpdated", Of, Within);
        Assert.Equal(("started", "ringing", "audio", "alice", room), (started.Str("change"), started.Str("status"), started.Str("media"),
            started.Str("started_by"), started.Str("conversation_id")));
        Assert.Equal(("alice", "bob,carol"), (Users(started, "joined"), Users(started, "ringing")));
        Assert.True(EventSeq(started) > resumeFrom);
        await carol.Ok("AcceptCall", new { call_id = call });
        var joined = await carol.NextAsync("callUpdated", e => Of(e) && e.Str("change") == "joined", Within);
        Assert.Equal(("active", "alice,carol", "bob", "carol", "carol"),
            (joined.Str("status"), Users(joined, "joined"), Users(joined, "ringing"), Users(joined, "user_ids"), joined.Str("by")));
        await alice.Ok("EndCall", new { call_id = call });
        var ended = await carol.NextAsync("callUpdated", e => Of(e) && e.Str("change") == "ended", Within);
        Assert.Equal(("ended", "ended", "alice,carol", "alice"), (ended.Str("status"), ended.Str("reason"), Users(ended, "user_ids"), ended.Str("by")));
        // The summary message follows the end in the room.
        var summary = await carol.NextAsync("newMessage:" + room, m => m.GetProperty("content").Str("type") == "call", Within);
        Assert.True(EventSeq(summary) > EventSeq(ended), $"summary {EventSeq(summary)} before the end {EventSeq(ended)}");
        var live = carol.All.Where(e => e.Name == "callUpdated" && Of(e.Payload)).Select(e => e.Payload).ToList();
        Assert.Equal(live.Select(EventSeq).Order(), live.Select(EventSeq));
        Assert.Equal(live.Count, live.Select(EventSeq).Distinct().Count());

        // Bob comes back on a new connection: the call's updates and its summary, in order, each once, then live events.
        await using var bob2 = await CallClients.ConnectAsync(node, tenant, "bob");
        var answer = await bob2.Ok("Resume", new { rooms = new[] { new { conversation_id = room, event_seq = resumeFrom } } });
        Assert.True(Assert.Single(answer.GetProperty("rooms").EnumerateArray()).GetProperty("resumed").GetBoolean());
        var resumedSummary = await bob2.NextAsync("newMessage:" + room, m => m.GetProperty("content").Str("type") == "call", Within);
        await alice.SendAsync(room, "after the call");
        await bob2.NextAsync("newMessage:" + room, m => m.GetProperty("content").Str("text") == "after the call", Within);
        var durable = bob2.All.Where(e => e.Payload.ValueKind == JsonValueKind.Object && e.Payload.TryGetProperty("event_seq", out _)
                                          && e.Payload.Str("conversation_id") == room).ToList();
        var seqs = durable.Select(e => EventSeq(e.Payload)).ToList();
        Assert.Equal(seqs.Order(), seqs);
        Assert.Equal(seqs.Count, seqs.Distinct().Count());
        Assert.True(seqs[0] > resumeFrom);
        var resumedCalls = durable.Where(e => e.Name == "callUpdated").Select(e => e.Payload).ToList();
        // Exactly what carol saw live, by event_seq (the joined-then-ended order included).
        Assert.Equal(live.Select(EventSeq), resumedCalls.Select(EventSeq));
        Assert.Equal(live.Select(e => e.Str("change")), resumedCalls.Select(e => e.Str("change")));
        Assert.Equal(["started", "joined", "ended"], resumedCalls.Select(e => e.Str("change")));
        Assert.Equal(EventSeq(summary), EventSeq(resumedSummary));

        // The conversation's journal has them too: chat.events and audit carry the same changes (read back over REST).
        var (status, calls) = await node.Rest(tenant, "bob").ApiGet($"/v1/conversations/{room}/calls");
        Assert.Equal(200, status);
        Assert.Equal(call, Assert.Single(calls.GetProperty("items").EnumerateArray()).Str("call_id"));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_call_that_rings_on_is_recorded_once_however_often_its_entity_recovers()
    {
        const string tenant = "t-callupd2";
        var room = await node.Rest(tenant, "dan").CreateGroupAsync("eva");
        await using var dan = await CallClients.ConnectAsync(node, tenant, "dan");
        await using var eva = await CallClients.ConnectAsync(node, tenant, "eva");
        await eva.JoinAsync(room);
        var call = (await dan.Ok("StartCall", new { conversation_id = room, media = "video" })).Str("call_id");
        var started = await eva.NextAsync("callUpdated", e => e.Str("call_id") == call, Within);
        await eva.NextAsync(CallNotices.Ringing, e => e.Str("call_id") == call, Within);

        // The call's entity stops and is woken again (the last change is sent again after its recovery): nothing new in the room.
        await CallEntities.StopAsync(node, tenant, room);
        Assert.Equal("ringing", (await node.Rest(tenant, "eva").ApiGet($"/v1/conversations/{room}/calls")).Body.GetProperty("active").Str("status"));
        await eva.Ok("DeclineCall", new { call_id = call });
        var next = await eva.NextAsync("callUpdated", e => e.Str("call_id") == call && e.Str("change") != "started", Within);
        Assert.Equal("declined", next.Str("change"));
        Assert.Equal(EventSeq(started) + 1, EventSeq(next));
    }
}
