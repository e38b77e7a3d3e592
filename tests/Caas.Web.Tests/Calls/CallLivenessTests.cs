using System.Text.Json;
using Caas.Actors.Calls;
using Caas.Web.Tests.Hubs;

namespace Caas.Web.Tests.Calls;

/// <summary>
/// A call whose participants no hub node vouches for any more (their node died: its connections never said goodbye)
/// ends by itself. Here the node's heartbeats are an hour apart and the liveness timeout two seconds, which is what a
/// call entity sees when the node holding its participants' connections is gone.
/// </summary>
public sealed class CallLivenessTests(CallLivenessTests.Node node) : IClassFixture<CallLivenessTests.Node>
{
    public sealed class Node() : HubNode(new Dictionary<string, string?>(), o => o with
    {
        ExtraHocon = "caas.calls.ring-timeout = 1h\ncaas.calls.heartbeat-every = 1h\ncaas.calls.liveness-timeout = 2s\ncaas.calls.liveness-check = 500ms",
    });

    [Fact]
    public async Task Participants_nobody_vouches_for_leave_as_disconnected_and_the_call_ends()
    {
        var within = TimeSpan.FromMinutes(1);
        var conversation = await node.Rest("t1", "mia").CreateGroupAsync("ned");
        await using var mia = await CallClients.ConnectAsync(node, "t1", "mia");
        await using var ned = await CallClients.ConnectAsync(node, "t1", "ned");
        var call = (await mia.Ok("StartCall", new { conversation_id = conversation, media = "audio" })).Str("call_id");
        Func<JsonElement, bool> of = e => e.Str("call_id") == call;
        await ned.Ok("AcceptCall", new { call_id = call });

        // Both connections are still open, but nothing vouches for them: both leave (disconnected), and the call ends.
        var left = await mia.NextAsync(CallNotices.Left, of, within);
        Assert.Equal(CallReasons.Disconnected, left.Str("reason"));
        var ended = await mia.NextAsync(CallNotices.Ended, of, within);
        Assert.Equal(CallReasons.Completed, ended.Str("reason"));
        Assert.Equal(["mia", "ned"], ended.GetProperty("participants").EnumerateArray().Select(p => p.GetString()));
        var (status, calls) = await node.Rest("t1", "ned").ApiGet($"/v1/conversations/{conversation}/calls");
        Assert.Equal(200, status);
        Assert.Equal(JsonValueKind.Null, calls.GetProperty("active").ValueKind);
        // A new call can start in the conversation.
        Assert.Equal("ringing", (await ned.Ok("StartCall", new { conversation_id = conversation, media = "audio" })).Str("status"));
    }
}
