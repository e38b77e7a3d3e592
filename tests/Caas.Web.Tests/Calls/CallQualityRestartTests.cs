using System.Text.Json;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Caas.Actors.Calls;
using Caas.Actors.Common;
using Caas.Web.Tests.Hubs;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests.Calls;

/// <summary>An active call's quality reports survive a restart of its entity (from the last checkpoint).</summary>
public sealed class CallQualityRestartTests(CallHubTests.Node node) : IClassFixture<CallHubTests.Node>
{
    private static readonly TimeSpan Within = TimeSpan.FromMinutes(1);

    [Fact]
    public async Task Quality_reports_come_back_from_their_checkpoint_when_the_call_entity_restarts_mid_call()
    {
        var conversation = await node.Rest("t1", "kai").CreateGroupAsync("lou");
        await using var kai = await CallClients.ConnectAsync(node, "t1", "kai");
        await using var lou = await CallClients.ConnectAsync(node, "t1", "lou");
        var call = (await kai.Ok("StartCall", new { conversation_id = conversation, media = "audio" })).Str("call_id");
        await lou.Ok("AcceptCall", new { call_id = call });
        // The call's first report is checkpointed before it is answered.
        await kai.Ok("ReportCallQuality", new { call_id = call, rtt_ms = 42, bitrate_kbps = 64 });

        // The entity stops mid-call (as on a crash or a rebalance); the next command brings it back from the journal.
        await CallEntities.StopAsync(node, "t1", conversation);

        var (status, calls) = await node.Rest("t1", "lou").ApiGet($"/v1/conversations/{conversation}/calls");
        Assert.Equal(200, status);
        var quality = calls.GetProperty("active").GetProperty("quality").EnumerateArray().ToList();
        var restored = Assert.Single(quality);
        Assert.Equal(("kai", 1), (restored.Str("user_id"), restored.GetProperty("reports").GetInt32()));
        Assert.Equal(42, restored.GetProperty("rtt_ms").GetProperty("max").GetDouble());

        // Reports after the restart add to what came back; the call's end carries both.
        await lou.Ok("ReportCallQuality", new { call_id = call, packet_loss_pct = 0.5 });
        await kai.Ok("ReportCallQuality", new { call_id = call, rtt_ms = 58 });
        await kai.Ok("EndCall", new { call_id = call });
        var ended = await lou.NextAsync(CallNotices.Ended, e => e.Str("call_id") == call, Within);
        var byUser = ended.GetProperty("quality").EnumerateArray().ToDictionary(q => q.Str("user_id"));
        Assert.Equal(2, byUser["kai"].GetProperty("reports").GetInt32());
        Assert.Equal(50, byUser["kai"].GetProperty("rtt_ms").GetProperty("avg").GetDouble());
        Assert.Equal(1, byUser["lou"].GetProperty("reports").GetInt32());
    }
}

public static class CallEntities
{
    /// <summary>Stops a conversation's call entity (as a crash or a rebalance would) and waits until its shard has let it go.</summary>
    public static async Task StopAsync(HubNode node, string tenant, string conversation)
    {
        var within = TimeSpan.FromMinutes(1);
        var system = node.App.Services.GetRequiredService<ActorSystem>();
        var entityId = Ids.EntityId(tenant, conversation);
        var entity = await system.ActorSelection($"/system/sharding/{CallSharding.TypeName}/*/{Uri.EscapeDataString(entityId)}")
            .ResolveOne(within);
        Assert.True(await entity.GracefulStop(within));
        // The entity's end reaches its shard a moment after it reaches us; a command sent in between would go to the
        // stopped actor and be lost (sharding's at-most-once). Go on once the shard no longer lists it, so the next
        // command starts a new incarnation.
        var region = ClusterSharding.Get(system).ShardRegion(CallSharding.TypeName);
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            var state = await region.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, within);
            if (!state.Shards.Any(s => s.EntityIds.Contains(entityId))) break;
            Assert.True(DateTime.UtcNow < deadline, "the shard still lists the stopped call entity");
            await Task.Delay(20);
        }
    }
}
