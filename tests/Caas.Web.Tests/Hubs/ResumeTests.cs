using System.Text.Json;
using Xunit.Abstractions;

namespace Caas.Web.Tests.Hubs;

/// <summary>
/// Tracked delivery: durable events carry the conversation's event_seq, and Resume on a new connection sends exactly
/// what was missed, in order, then the live events, with no gap and no duplicate, on the same node or another one.
/// </summary>
public static class ResumeScenario
{
    /// <summary>
    /// Bob receives 5 messages on <paramref name="first"/>, drops his connection, misses 5 more and an edit, and resumes
    /// on <paramref name="resume"/> while alice (on <paramref name="sender"/>) goes on sending 5 more.
    /// </summary>
    public static async Task RunAsync(Func<string, Task<HubClient>> sender, Func<string, Task<HubClient>> first, Func<string, Task<HubClient>> resume,
        string room)
    {
        await using var alice = await sender("alice");
        await alice.JoinAsync(room);
        var bob = await first("bob");
        var joined = await bob.JoinAsync(room);
        var joinedAt = joined.GetProperty("event_seq").GetInt64();

        for (var i = 1; i <= 5; i++) await alice.SendAsync(room, $"m{i}");
        var seen = await bob.MessagesAsync(room, 5, TimeSpan.FromMinutes(1));
        Assert.Equal([1L, 2, 3, 4, 5], seen.Select(m => m.Seq()));
        var eventSeqs = seen.Select(EventSeq).ToList();
        Assert.True(eventSeqs[0] > joinedAt, $"event_seq {eventSeqs[0]} not after the join's {joinedAt}");
        Assert.Equal(eventSeqs.Order(), eventSeqs);
        Assert.Equal(eventSeqs.Count, eventSeqs.Distinct().Count());
        var resumeFrom = eventSeqs[^1];
        await bob.DisposeAsync();

        for (var i = 6; i <= 10; i++) await alice.SendAsync(room, $"m{i}");
        await alice.Ok("EditMessage", new { conversation_id = room, seq = 3, content = "m3 edited" });

        await using var bob2 = await resume("bob");
        // Alice keeps sending while bob resumes: the journal read and the live events meet somewhere in these.
        var more = Task.Run(async () => { for (var i = 11; i <= 15; i++) await alice.SendAsync(room, $"m{i}"); });
        var answer = await bob2.Ok("Resume", new { rooms = new[] { new { conversation_id = room, event_seq = resumeFrom } } });
        var roomAnswer = Assert.Single(answer.GetProperty("rooms").EnumerateArray());
        Assert.True(roomAnswer.GetProperty("success").GetBoolean());
        Assert.True(roomAnswer.GetProperty("resumed").GetBoolean());
        await more;

        var got = await bob2.MessagesAsync(room, 10, TimeSpan.FromMinutes(1));
        Assert.True(Enumerable.Range(6, 10).Select(i => (long)i).SequenceEqual(got.Select(m => m.Seq())),
            $"resumed after {resumeFrom} (bob had {string.Join(",", eventSeqs)}), got: " +
            string.Join(", ", bob2.All.Select(e => $"{e.Name}:{(e.Payload.ValueKind == JsonValueKind.Object && e.Payload.TryGetProperty("seq", out var s) ? s.ToString() : "-")}/{(e.Payload.ValueKind == JsonValueKind.Object && e.Payload.TryGetProperty("event_seq", out var es) ? es.ToString() : "-")}")));
        Assert.Equal(Enumerable.Range(6, 10).Select(i => $"m{i}"), got.Select(m => m.GetProperty("content").Str("text")));

        // One more live message: the connection's events are in order, so a duplicate would have come before it.
        await alice.SendAsync(room, "m16");
        Assert.Equal(16, (await bob2.NextAsync("newMessage:" + room, within: TimeSpan.FromMinutes(1))).Seq());
        var durable = bob2.All.Where(e => e.Payload.ValueKind == JsonValueKind.Object && e.Payload.TryGetProperty("event_seq", out _)
                                          && e.Payload.Str("conversation_id") == room).ToList();
        Assert.Equal(Enumerable.Range(6, 11).Select(i => (long)i), durable.Where(e => e.Name == "newMessage").Select(e => e.Payload.Seq()));
        var edit = Assert.Single(durable, e => e.Name == "messageEdited");
        Assert.Equal(3, edit.Payload.Seq());
        Assert.Equal("m3 edited", edit.Payload.GetProperty("content").Str("text"));
        var resumedSeqs = durable.Select(e => EventSeq(e.Payload)).ToList();
        Assert.True(resumedSeqs[0] > resumeFrom, $"resumed from {resumeFrom} but got {resumedSeqs[0]} first");
        Assert.Equal(resumedSeqs.Order(), resumedSeqs);
        Assert.Equal(resumedSeqs.Count, resumedSeqs.Distinct().Count());
        // The edit (after message 10, before message 11) sits between them by event_seq.
        var ten = durable.Single(e => e.Name == "newMessage" && e.Payload.Seq() == 10);
        var eleven = durable.Single(e => e.Name == "newMessage" && e.Payload.Seq() == 11);
        Assert.InRange(EventSeq(edit.Payload), EventSeq(ten.Payload) + 1, EventSeq(eleven.Payload) - 1);
    }

    private static long EventSeq(JsonElement e) => e.GetProperty("event_seq").GetInt64();
}

public sealed class ResumeTests(HubNode node) : IClassFixture<HubNode>
{
    [Fact(Timeout = 180_000)]
    public async Task A_client_that_reconnects_gets_exactly_what_it_missed_then_live_events()
    {
        const string tenant = "t-resume";
        using (var admin = node.Rest(tenant, "root", "admin"))
            Assert.Equal(200, (await admin.ApiPut("/v1/admin/tenant/settings", new { message_rate_per_minute = 100_000 })).Status);
        string room;
        using (var rest = node.Rest(tenant, "alice")) room = await rest.CreateGroupAsync("bob");
        Task<HubClient> Connect(string user) => node.ConnectAsync(tenant, user);
        await ResumeScenario.RunAsync(Connect, Connect, Connect, room);
    }

    [Fact(Timeout = 180_000)]
    public async Task Delivered_acknowledgements_are_saved_and_a_resume_without_event_seq_starts_from_them()
    {
        const string tenant = "t-delivered";
        string room;
        using (var rest = node.Rest(tenant, "alice")) room = await rest.CreateGroupAsync("bob");
        await using var alice = await node.ConnectAsync(tenant, "alice");
        await alice.JoinAsync(room);
        var bob = await node.ConnectAsync(tenant, "bob");
        await bob.JoinAsync(room);
        for (var i = 1; i <= 3; i++) await alice.SendAsync(room, $"d{i}");
        var got = await bob.MessagesAsync(room, 3, TimeSpan.FromMinutes(1));
        var last = got[^1].GetProperty("event_seq").GetInt64();

        // Cumulative acknowledgements, coalesced: the receipt alice hears carries the highest one.
        foreach (var m in got) await bob.Ok("MarkDelivered", new { conversation_id = room, event_seq = m.GetProperty("event_seq").GetInt64() });
        await bob.Fails("MarkDelivered", new { conversation_id = room, event_seq = last + 1_000 }, "validation_failed");
        await alice.NextAsync("delivered", e => e.Str("user_id") == "bob" && e.GetProperty("event_seq").ValueKind == JsonValueKind.Number
                                                && e.GetProperty("event_seq").GetInt64() == last, TimeSpan.FromMinutes(1));
        await bob.DisposeAsync();

        // The receipt went out after the marker was saved: a resume that names no event_seq starts there.
        for (var i = 4; i <= 5; i++) await alice.SendAsync(room, $"d{i}");
        await using var bob2 = await node.ConnectAsync(tenant, "bob");
        var answer = await bob2.Ok("Resume", new { rooms = new[] { new { conversation_id = room } } });
        Assert.True(Assert.Single(answer.GetProperty("rooms").EnumerateArray()).GetProperty("resumed").GetBoolean());
        Assert.Equal([4L, 5], (await bob2.MessagesAsync(room, 2, TimeSpan.FromMinutes(1))).Select(m => m.Seq()));
        await alice.SendAsync(room, "d6");
        Assert.Equal(6, (await bob2.NextAsync("newMessage:" + room, within: TimeSpan.FromMinutes(1))).Seq());
        Assert.Equal([4L, 5, 6], bob2.All.Where(e => e.Name == "newMessage").Select(e => e.Payload.Seq()));
    }

    [Fact(Timeout = 60_000)]
    public async Task Resume_refuses_bad_input_and_rooms_the_caller_is_not_in()
    {
        const string tenant = "t-resume-bad";
        string room;
        using (var rest = node.Rest(tenant, "alice")) room = await rest.CreateGroupAsync();
        await using var mallory = await node.ConnectAsync(tenant, "mallory");
        await mallory.Fails("Resume", new { rooms = Array.Empty<object>() }, "validation_failed");
        await mallory.Fails("Resume", new { rooms = new[] { new { conversation_id = room, event_seq = -1L } } }, "validation_failed");
        var answer = await mallory.Ok("Resume", new { rooms = new[] { new { conversation_id = room, event_seq = 0L } } });
        var denied = Assert.Single(answer.GetProperty("rooms").EnumerateArray());
        Assert.False(denied.GetProperty("success").GetBoolean());
        Assert.Equal("not_found", denied.GetProperty("error").Str("code"));
    }
}

public sealed class TwoNodeResumeTests(ITestOutputHelper output) : TwoNodeResumeScenario(output, "resume2", "pubsub");

/// <summary>The same over sharded room topics.</summary>
public sealed class TwoNodeShardedTopicResumeTests(ITestOutputHelper output) : TwoNodeResumeScenario(output, "resume2s", "sharded");

/// <summary>Resume on the other node of a two-node cluster: the missed events come from the shared journal.</summary>
public abstract class TwoNodeResumeScenario(ITestOutputHelper output, string database, string topics) : IAsyncLifetime
{
    private const string Tenant = "t-resume2";
    private TwoNodeCluster? _cluster;
    private readonly Caas.Web.Auth.JwtSettings _jwt = new(HubNode.Secret, null, null, null);

    public async Task InitializeAsync() => _cluster = await TwoNodeCluster.StartAsync(database, output, $"caas.rooms.topics = {topics}");

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    [Fact(Timeout = 240_000)]
    public async Task A_client_that_drops_on_one_node_resumes_on_the_other_with_no_gap_and_no_duplicate()
    {
        using (var admin = new HttpClient { BaseAddress = _cluster!.Address(0) })
        {
            admin.DefaultRequestHeaders.Authorization = new("Bearer", _jwt.Issue(Tenant, "root", ["admin"]));
            Assert.Equal(200, (await admin.ApiPut("/v1/admin/tenant/settings", new { message_rate_per_minute = 100_000 })).Status);
        }
        using var rest = new HttpClient { BaseAddress = _cluster.Address(0) };
        rest.DefaultRequestHeaders.Authorization = new("Bearer", _jwt.Issue(Tenant, "alice"));
        var room = await rest.CreateGroupAsync("bob");
        Func<string, Task<HubClient>> on(int node) => user => HubClient.ConnectAsync(_cluster.Address(node), _jwt.Issue(Tenant, user));
        await ResumeScenario.RunAsync(on(0), on(1), on(0), room);
    }
}

/// <summary>A node that sends unacknowledged events again after 1 s, twice, before it closes the connection as stale.</summary>
public sealed class FastRedeliveryHubNode() : HubNode(new Dictionary<string, string?>
{
    ["DeliveryTimeout"] = "00:00:01",
    ["DeliveryRetries"] = "2",
});

public sealed class RedeliveryTests(FastRedeliveryHubNode node) : IClassFixture<FastRedeliveryHubNode>
{
    [Fact(Timeout = 180_000)]
    public async Task A_connection_that_acknowledges_gets_unacknowledged_events_again_and_is_then_closed_as_stale()
    {
        const string tenant = "t-redeliver";
        string room;
        using (var rest = node.Rest(tenant, "alice")) room = await rest.CreateGroupAsync("bob");
        await using var alice = await node.ConnectAsync(tenant, "alice");
        await alice.JoinAsync(room);
        await using var bob = await node.ConnectAsync(tenant, "bob");
        var joined = await bob.JoinAsync(room);
        // Bob's first acknowledgement opts his connection in to tracked delivery for the room.
        await bob.Ok("MarkDelivered", new { conversation_id = room, event_seq = joined.GetProperty("event_seq").GetInt64() });

        await alice.SendAsync(room, "acknowledge me");
        var first = await bob.NextAsync("newMessage:" + room, within: TimeSpan.FromMinutes(1));
        var again = await bob.NextAsync("newMessage:" + room, within: TimeSpan.FromMinutes(1));
        Assert.Equal(first.GetProperty("event_seq").GetInt64(), again.GetProperty("event_seq").GetInt64());
        Assert.Equal(first.Str("message_id"), again.Str("message_id"));

        // Never acknowledged: after its retries the connection is closed with the reason stale.
        var closed = await bob.Closed.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Contains("stale", closed?.Message ?? string.Empty);
        // Alice never acknowledged anything, so nothing was tracked for her and she is still connected.
        Assert.False(alice.Closed.IsCompleted);
        Assert.Equal(2, (await alice.SendAsync(room, "still here")).Seq());
    }
}
