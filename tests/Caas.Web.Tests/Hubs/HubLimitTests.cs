using System.Diagnostics;
using System.Text.Json;
using Caas.Web.Hubs;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests.Hubs;

/// <summary>
/// A node whose hub methods allow 2 calls at once and 1 a second per connection, except GetHistory, whose own bucket
/// is large so that the client's REST budget (30 at once, 1 a second) is what limits it.
/// </summary>
public sealed class TightLimitsHubNode() : HubNode(Limits(), o => o with { RequestLimits = new RequestLimits(PermitsPerSecond: 1, Burst: 30) })
{
    public const int RestBurst = 30;

    private static Dictionary<string, string?> Limits()
    {
        var settings = new Dictionary<string, string?>();
        foreach (var method in new HubSettings().Limits.Keys)
        {
            var high = method == "GetHistory";
            settings[$"Limits:{method}:PermitsPerSecond"] = high ? "10000" : "1";
            settings[$"Limits:{method}:Burst"] = high ? "10000" : "2";
        }
        return settings;
    }
}

/// <summary>Every hub method has a per-connection limit; GetHistory also spends the client's REST budget.</summary>
public sealed class HubLimitTests(TightLimitsHubNode node) : IClassFixture<TightLimitsHubNode>
{
    private const int MaxCalls = 500;

    [Theory(Timeout = 180_000)]
    [InlineData("JoinRoom")]
    [InlineData("LeaveRoom")]
    [InlineData("SendMessage")]
    [InlineData("EditMessage")]
    [InlineData("DeleteMessage")]
    [InlineData("React")]
    [InlineData("Unreact")]
    [InlineData("Typing")]
    [InlineData("MarkRead")]
    [InlineData("MarkDelivered")]
    [InlineData("GetPresence")]
    public async Task A_method_called_over_its_limit_answers_rate_limited_on_that_connection_only(string method)
    {
        var tenant = "t-limits-" + method.ToLowerInvariant();
        var (room, seq) = await RoomAsync(tenant);
        await using var bob = await node.ConnectAsync(tenant, "bob");
        await bob.JoinAsync(room);
        object args = method switch
        {
            "JoinRoom" or "LeaveRoom" or "Typing" => new { conversation_id = room },
            "SendMessage" => new { conversation_id = room, content = "spam" },
            "EditMessage" => new { conversation_id = room, seq, content = "edited" },
            "DeleteMessage" or "MarkRead" or "MarkDelivered" => new { conversation_id = room, seq },
            "React" or "Unreact" => new { conversation_id = room, seq, reaction = "👍" },
            "GetPresence" => new { user_id = "alice" },
            _ => throw new ArgumentOutOfRangeException(nameof(method)),
        };

        var limited = await CallUntilLimitedAsync(bob, method, args);
        Assert.Equal("rate_limited", limited.Str("code"));
        Assert.False(string.IsNullOrEmpty(limited.Str("message")));
        Assert.True(limited.GetProperty("retry_after_ms").GetInt64() > 0, $"no retry_after_ms: {limited}");

        // The limit is the connection's: the same user's other connection still has its whole bucket.
        await using var other = await node.ConnectAsync(tenant, "bob");
        var fresh = await other.Call(method, args);
        Assert.NotEqual("rate_limited", fresh.GetProperty("success").GetBoolean() ? null : fresh.GetProperty("error").Str("code"));
    }

    [Fact(Timeout = 180_000)]
    public async Task GetHistory_is_held_to_the_clients_request_budget()
    {
        const string tenant = "t-limits-history";
        var (room, _) = await RoomAsync(tenant);
        await using var carol = await node.ConnectAsync(tenant, "carol");

        // GetHistory's own hub bucket is huge on this node: what stops it is the per-client budget (30, then 1 a second).
        var clock = Stopwatch.StartNew();
        var hubOk = 0;
        JsonElement limited;
        while (true)
        {
            Assert.True(hubOk < MaxCalls, "GetHistory was never limited");
            var answer = await carol.Call("GetHistory", new { conversation_id = room, limit = 10 });
            if (!answer.GetProperty("success").GetBoolean())
            {
                limited = answer.GetProperty("error");
                break;
            }
            hubOk++;
        }
        var refilled = (int)Math.Ceiling(clock.Elapsed.TotalSeconds) + 1;
        Assert.Equal("rate_limited", limited.Str("code"));
        Assert.True(limited.GetProperty("retry_after_ms").GetInt64() > 0);
        Assert.True(hubOk <= TightLimitsHubNode.RestBurst + refilled,
            $"{hubOk} history pages in {clock.Elapsed.TotalSeconds:0.0} s: more than the request budget");
    }

    private async Task<(string Room, long Seq)> RoomAsync(string tenant)
    {
        using (var admin = node.Rest(tenant, "root", "admin"))
            Assert.Equal(200, (await admin.ApiPut("/v1/admin/tenant/settings", new { message_rate_per_minute = 100_000 })).Status);
        using var rest = node.Rest(tenant, "alice");
        var room = await rest.CreateGroupAsync("bob", "carol");
        var posted = await rest.PostMessageAsync(room, "something to edit, react to and mark");
        return (room, posted.Seq());
    }

    /// <summary>
    /// Calls until the answer is rate_limited. Bounded: at 1 call a second refilled, 500 calls all allowed would take
    /// minutes, past the test's timeout.
    /// </summary>
    private static async Task<JsonElement> CallUntilLimitedAsync(HubClient client, string method, object args)
    {
        for (var i = 0; i < MaxCalls; i++)
        {
            var answer = await client.Call(method, args);
            if (!answer.GetProperty("success").GetBoolean() && answer.GetProperty("error").Str("code") == "rate_limited")
                return answer.GetProperty("error");
        }
        Assert.Fail($"{method} was never limited in {MaxCalls} calls");
        throw new InvalidOperationException();
    }
}
