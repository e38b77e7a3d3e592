using System.Text.Json;
using Caas.Actors.Calls;
using Caas.Web.Tests.Hubs;
using Microsoft.AspNetCore.SignalR.Client;

namespace Caas.Web.Tests.Calls;

/// <summary>On a real node: the call summary message, busy, and quality reports (with their refusals).</summary>
public sealed class CallSummaryBusyQualityHubTests(CallHubTests.Node node) : IClassFixture<CallHubTests.Node>
{
    private static readonly TimeSpan Within = TimeSpan.FromMinutes(1);

    private static Func<JsonElement, bool> Of(string callId) => e => e.Str("call_id") == callId;

    private async Task<HubClient> ConnectAsync(string tenant, string user)
    {
        var client = await CallClients.ConnectAsync(node, tenant, user);
        var inbox = client.Inbox(CallNotices.Busy);
        client.Connection.On<JsonElement>(CallNotices.Busy, p =>
        {
            inbox.Writer.TryWrite(p);
            client.All.Enqueue((CallNotices.Busy, p));
        });
        return client;
    }

    /// <summary>Polls the message list until <paramref name="match"/> is there (the read model follows the journal).</summary>
    private async Task<List<JsonElement>> MessagesUntilAsync(string tenant, string user, string conversation, Func<List<JsonElement>, bool> match)
    {
        var deadline = DateTime.UtcNow + Within;
        while (true)
        {
            var (status, body) = await node.Rest(tenant, user).ApiGet($"/v1/messages/conversations/{conversation}?limit=200");
            Assert.Equal(200, status);
            var items = body.GetProperty("items").EnumerateArray().ToList();
            if (match(items)) return items;
            Assert.True(DateTime.UtcNow < deadline, $"The message list never matched: {body}");
            await Task.Delay(200);
        }
    }

    [Fact]
    public async Task A_finished_call_lands_once_in_its_conversation_as_a_call_message_with_its_quality()
    {
        var conversation = await node.Rest("t1", "amy").CreateGroupAsync("ben", "cal");
        await using var amy = await ConnectAsync("t1", "amy");
        await using var ben = await ConnectAsync("t1", "ben");
        await using var cal = await ConnectAsync("t1", "cal");
        await cal.JoinAsync(conversation);
        await amy.SendAsync(conversation, "before the call");

        var call = (await amy.Ok("StartCall", new { conversation_id = conversation, media = "audio" })).Str("call_id");
        await ben.Ok("AcceptCall", new { call_id = call });
        await amy.Ok("ReportCallQuality", new { call_id = call, rtt_ms = 40, jitter_ms = 2.5, packet_loss_pct = 0, bitrate_kbps = 64 });
        await amy.Ok("ReportCallQuality", new { call_id = call, rtt_ms = 80, bitrate_kbps = 32 });
        await ben.Ok("ReportCallQuality", new { call_id = call, packet_loss_pct = 1.5 });

        // While the call is on, the list shows its quality so far.
        var (_, live) = await node.Rest("t1", "cal").ApiGet($"/v1/conversations/{conversation}/calls");
        Assert.Equal(["amy", "ben"], live.GetProperty("active").GetProperty("quality").EnumerateArray().Select(q => q.Str("user_id")));

        await amy.Ok("EndCall", new { call_id = call });
        var ended = await cal.NextAsync(CallNotices.Ended, Of(call), Within);
        Assert.Equal(2, ended.GetProperty("quality").GetArrayLength());

        // The hub event of the room: a newMessage whose content is the call.
        var pushed = await cal.NextAsync("newMessage:" + conversation, m => m.GetProperty("content").Str("type") == "call", Within);
        var content = pushed.GetProperty("content");
        Assert.Equal(("amy", call, "audio", "ended", "amy"), (pushed.Str("sender_id"), content.Str("call_id"), content.Str("media"),
            content.Str("reason"), content.Str("started_by")));
        Assert.Equal(["amy", "ben"], content.GetProperty("participants").EnumerateArray().Select(p => p.GetString()));
        Assert.True(content.GetProperty("duration_seconds").GetDouble() >= 0);

        // The message list has it once, after the text message, with the aggregated quality.
        var items = await MessagesUntilAsync("t1", "ben", conversation, l => l.Any(m => m.GetProperty("content").Str("type") == "call"));
        var message = Assert.Single(items, m => m.GetProperty("content").Str("type") == "call");
        Assert.Equal(pushed.Str("message_id"), message.Str("message_id"));
        Assert.True(message.Seq() > items.Single(m => m.GetProperty("content").Str("type") == "text").Seq());
        var quality = message.GetProperty("content").GetProperty("quality").EnumerateArray().ToDictionary(q => q.Str("user_id")!);
        var amyRtt = quality["amy"].GetProperty("rtt_ms");
        Assert.Equal((40.0, 60.0, 80.0), (amyRtt.GetProperty("min").GetDouble(), amyRtt.GetProperty("avg").GetDouble(), amyRtt.GetProperty("max").GetDouble()));
        Assert.Equal(2, quality["amy"].GetProperty("reports").GetInt32());
        Assert.Equal(1.5, quality["ben"].GetProperty("packet_loss_pct").GetProperty("max").GetDouble());
        Assert.Equal(JsonValueKind.Null, quality["ben"].GetProperty("rtt_ms").ValueKind);

        // The call list shows the same summary.
        var (_, list) = await node.Rest("t1", "cal").ApiGet($"/v1/conversations/{conversation}/calls");
        var item = Assert.Single(list.GetProperty("items").EnumerateArray());
        Assert.Equal(("amy", 2), (item.Str("ended_by"), item.GetProperty("quality").GetArrayLength()));

        // A second call posts a second summary, never a repeat of the first.
        var second = (await ben.Ok("StartCall", new { conversation_id = conversation, media = "video" })).Str("call_id");
        await ben.Ok("EndCall", new { call_id = second });
        items = await MessagesUntilAsync("t1", "amy", conversation, l => l.Count(m => m.GetProperty("content").Str("type") == "call") >= 2);
        var calls = items.Where(m => m.GetProperty("content").Str("type") == "call").OrderBy(m => m.Seq()).ToList();
        Assert.Equal([call, second], calls.Select(m => m.GetProperty("content").Str("call_id")));
        Assert.Equal(("ben", "ended"), (calls[1].Str("sender_id"), calls[1].GetProperty("content").Str("reason")));
    }

    [Fact]
    public async Task A_member_already_in_a_call_is_busy_for_another_until_they_leave_it()
    {
        var first = await node.Rest("t1", "dan").CreateGroupAsync("eli");
        var direct = await node.Rest("t1", "fox").CreateGroupAsync("eli");
        var group = await node.Rest("t1", "fox").CreateGroupAsync("eli", "gil");
        await using var dan = await ConnectAsync("t1", "dan");
        await using var eli = await ConnectAsync("t1", "eli");
        await using var fox = await ConnectAsync("t1", "fox");
        await using var gil = await ConnectAsync("t1", "gil");

        var inCall = (await dan.Ok("StartCall", new { conversation_id = first, media = "audio" })).Str("call_id");
        await eli.Ok("AcceptCall", new { call_id = inCall });

        // Everyone fox would ring is busy: the call ends at once as busy, and fox hears who was busy.
        var busyCall = await fox.Ok("StartCall", new { conversation_id = direct, media = "audio" });
        Assert.Equal(("ended", "busy"), (busyCall.Str("status"), busyCall.Str("end_reason")));
        var id = busyCall.Str("call_id");
        Assert.Equal("eli", (await fox.NextAsync(CallNotices.Busy, Of(id), Within)).Str("user_id"));
        Assert.Equal("busy", (await fox.NextAsync(CallNotices.Ended, Of(id), Within)).Str("reason"));

        // In a group, the busy member is skipped and the others ring.
        var groupCall = await fox.Ok("StartCall", new { conversation_id = group, media = "video" });
        var groupId = groupCall.Str("call_id");
        Assert.Equal(["gil"], groupCall.GetProperty("ringing").EnumerateArray().Select(r => r.GetString()));
        await gil.NextAsync(CallNotices.Ringing, Of(groupId), Within);
        Assert.Equal("eli", (await fox.NextAsync(CallNotices.Busy, Of(groupId), Within)).Str("user_id"));
        Assert.DoesNotContain(eli.All, e => e.Name == CallNotices.Ringing && e.Payload.Str("call_id") is var c && (c == id || c == groupId));
        // Busy is not a lock: eli may still join the group call.
        await eli.Ok("AcceptCall", new { call_id = groupId });
        await eli.Ok("LeaveCall", new { call_id = groupId });
        await fox.Ok("EndCall", new { call_id = groupId });

        // Once eli leaves the first call, fox's call rings eli (polled: the index hears of the leave a moment later).
        await eli.Ok("LeaveCall", new { call_id = inCall });
        var deadline = DateTime.UtcNow + Within;
        string rang;
        while (true)
        {
            var again = await fox.Ok("StartCall", new { conversation_id = direct, media = "audio" });
            if (again.Str("status") == "ringing")
            {
                rang = again.Str("call_id");
                break;
            }
            Assert.True(DateTime.UtcNow < deadline, "eli stayed busy after leaving the call");
            await Task.Delay(200);
        }
        await eli.NextAsync(CallNotices.Ringing, Of(rang), Within);
        await fox.Ok("EndCall", new { call_id = rang });
        await dan.Ok("EndCall", new { call_id = inCall });
    }

    [Fact]
    public async Task Bad_quality_reports_are_refused_with_stable_codes_and_change_nothing()
    {
        var conversation = await node.Rest("t1", "hal").CreateGroupAsync("ivy", "jo");
        await using var hal = await ConnectAsync("t1", "hal");
        await using var ivy = await ConnectAsync("t1", "ivy");
        await using var jo = await ConnectAsync("t1", "jo");
        await using var kay = await ConnectAsync("t1", "kay"); // not a member
        await using var other = await ConnectAsync("t2", "hal"); // another tenant
        var call = (await hal.Ok("StartCall", new { conversation_id = conversation, media = "audio" })).Str("call_id");
        await ivy.Ok("AcceptCall", new { call_id = call });

        async Task Invalid(object args, string field)
        {
            var refused = await ivy.Fails("ReportCallQuality", args, "validation_failed");
            Assert.True(refused.GetProperty("error").GetProperty("errors").TryGetProperty(field, out _), refused.ToString());
        }
        await Invalid(new { call_id = call, rtt_ms = -1 }, "rtt_ms");
        await Invalid(new { call_id = call, packet_loss_pct = 101 }, "packet_loss_pct");
        await Invalid(new { call_id = call, jitter_ms = 60_001 }, "jitter_ms");
        await Invalid(new { call_id = call, bitrate_kbps = 2_000_000 }, "bitrate_kbps");
        await Invalid(new { call_id = call, rtt_ms = "fast" }, "rtt_ms");
        await Invalid(new { call_id = call, bitrate_kbps = new { kbps = 1 } }, "bitrate_kbps");
        await Invalid(new { call_id = call }, "rtt_ms");
        await jo.Fails("ReportCallQuality", new { call_id = call, rtt_ms = 10 }, "forbidden"); // rung, not joined
        await kay.Fails("ReportCallQuality", new { call_id = call, rtt_ms = 10 }, "not_found");
        await other.Fails("ReportCallQuality", new { call_id = call, rtt_ms = 10 }, "not_found");
        await ivy.Fails("ReportCallQuality", new { call_id = "call_nope", rtt_ms = 10 }, "not_found");

        // None of it was counted.
        var (_, list) = await node.Rest("t1", "hal").ApiGet($"/v1/conversations/{conversation}/calls");
        Assert.Equal(0, list.GetProperty("active").GetProperty("quality").GetArrayLength());

        await ivy.Ok("ReportCallQuality", new { call_id = call, rtt_ms = 33 });
        (_, list) = await node.Rest("t1", "hal").ApiGet($"/v1/conversations/{conversation}/calls");
        var q = Assert.Single(list.GetProperty("active").GetProperty("quality").EnumerateArray());
        Assert.Equal(("ivy", 1), (q.Str("user_id"), q.GetProperty("reports").GetInt32()));
        await hal.Ok("EndCall", new { call_id = call });
    }
}

/// <summary>Quality reports are rate-limited per connection (the shipped limit: a burst of 5, then 1 a second).</summary>
public sealed class CallQualityLimitTests(CallQualityLimitTests.Node node) : IClassFixture<CallQualityLimitTests.Node>
{
    public sealed class Node() : HubNode(new Dictionary<string, string?>
    {
        ["Limits:ReportCallQuality:PermitsPerSecond"] = "1",
        ["Limits:ReportCallQuality:Burst"] = "5",
    }, o => o with { ExtraHocon = "caas.calls.ring-timeout = 1h" });

    [Fact]
    public async Task Hammering_reports_on_one_connection_is_rate_limited_and_another_connection_is_not()
    {
        var conversation = await node.Rest("t1", "lou").CreateGroupAsync("max");
        await using var lou = await CallClients.ConnectAsync(node, "t1", "lou");
        await using var max = await CallClients.ConnectAsync(node, "t1", "max");
        var call = (await lou.Ok("StartCall", new { conversation_id = conversation, media = "audio" })).Str("call_id");
        await max.Ok("AcceptCall", new { call_id = call });

        // Bad reports count too, and cost nothing but the check, so the bucket empties however slow the machine is.
        JsonElement? limited = null;
        for (var i = 0; i < 500 && limited is null; i++)
        {
            var answer = await lou.Call("ReportCallQuality", new { call_id = call, rtt_ms = -5 });
            Assert.False(answer.GetProperty("success").GetBoolean());
            if (answer.GetProperty("error").Str("code") == "rate_limited") limited = answer;
        }
        Assert.NotNull(limited);
        Assert.True(limited.Value.GetProperty("error").GetProperty("retry_after_ms").GetInt64() > 0);
        await max.Ok("ReportCallQuality", new { call_id = call, rtt_ms = 20, bitrate_kbps = 48 });
    }
}
