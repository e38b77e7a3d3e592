using System.Text.Json;
using Caas.Actors.Calls;
using Caas.Web.Tests.Hubs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.SignalR.Client;
using Xunit.Abstractions;

namespace Caas.Web.Tests.Calls;

/// <summary>
/// Busy and the summary across two nodes: the presence index and the conversations are wherever sharding put them,
/// and callers are connected to either node.
/// </summary>
public sealed class TwoNodeCallTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Tenant = "t-calls2";
    private static readonly TimeSpan Within = TimeSpan.FromMinutes(1);
    private TwoNodeCluster? _cluster;
    private readonly Caas.Web.Auth.JwtSettings _jwt = new(HubNode.Secret, null, null, null);

    public async Task InitializeAsync() => _cluster = await TwoNodeCluster.StartAsync("calls2", output, "caas.calls.ring-timeout = 1h");

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    private Uri Address(int node) => new(_cluster!.Nodes[node].Urls.First());

    private HttpClient Rest(int node, string user)
    {
        var c = new HttpClient { BaseAddress = Address(node) };
        c.DefaultRequestHeaders.Authorization = new("Bearer", _jwt.Issue(Tenant, user));
        return c;
    }

    private async Task<HubClient> ConnectAsync(int node, string user)
    {
        var client = await HubClient.ConnectAsync(Address(node), _jwt.Issue(Tenant, user));
        foreach (var name in CallClients.Events.Append(CallNotices.Busy))
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

    [Fact(Timeout = 240_000)]
    public async Task A_member_in_a_call_on_one_node_is_busy_for_a_call_started_on_the_other_and_summaries_land()
    {
        using var rest0 = Rest(0, "ann");
        using var rest1 = Rest(1, "bea");
        // Several conversations, so the calls live on both nodes.
        var first = await rest0.CreateGroupAsync("cy");
        var others = new List<string>();
        for (var i = 0; i < 3; i++) others.Add(await rest1.CreateGroupAsync("cy"));
        await using var ann = await ConnectAsync(0, "ann");
        await using var cy = await ConnectAsync(1, "cy");
        await using var bea = await ConnectAsync(1, "bea");
        // In the rooms: each call's changes come through its conversation (the call and the conversation entities may
        // be on different nodes, and so may the room's feed).
        await cy.JoinAsync(first);
        foreach (var conversation in others) await bea.JoinAsync(conversation);

        var call = (await ann.Ok("StartCall", new { conversation_id = first, media = "audio" })).Str("call_id");
        await cy.Ok("AcceptCall", new { call_id = call });
        foreach (var conversation in others)
        {
            var busy = await bea.Ok("StartCall", new { conversation_id = conversation, media = "video" });
            Assert.Equal(("ended", "busy"), (busy.Str("status"), busy.Str("end_reason")));
            Assert.Equal("cy", (await bea.NextAsync(CallNotices.Busy, e => e.Str("call_id") == busy.Str("call_id"), Within)).Str("user_id"));
        }
        await ann.Ok("EndCall", new { call_id = call });

        // Every call's summary is in its conversation, read on the other node.
        foreach (var (conversation, reader) in others.Select(c => (c, Rest(0, "cy"))).Append((first, Rest(1, "cy"))))
        {
            using (reader)
            {
                var deadline = DateTime.UtcNow + Within;
                while (true)
                {
                    var (status, body) = await reader.ApiGet($"/v1/messages/conversations/{conversation}");
                    Assert.Equal(200, status);
                    var calls = body.GetProperty("items").EnumerateArray().Where(m => m.GetProperty("content").Str("type") == "call").ToList();
                    if (calls.Count > 0)
                    {
                        Assert.Single(calls);
                        Assert.Equal(conversation == first ? "ended" : "busy", calls[0].GetProperty("content").Str("reason"));
                        break;
                    }
                    Assert.True(DateTime.UtcNow < deadline, $"No call message in {conversation}: {body}");
                    await Task.Delay(250);
                }
            }
        }
        Assert.DoesNotContain(cy.All, e => e.Name == CallNotices.Ringing && e.Payload.Str("call_id") != call);

        // The rooms' callUpdated: the whole call, in event_seq order, once each.
        static async Task<List<JsonElement>> UpdatesAsync(HubClient client, string callId)
        {
            // From everything the client received (its inbox hands each event to one reader only).
            var deadline = DateTime.UtcNow + Within;
            while (true)
            {
                var list = client.All.Where(e => e.Name == "callUpdated" && e.Payload.Str("call_id") == callId).Select(e => e.Payload).ToList();
                if (list.Any(u => u.Str("change") == "ended")) return list;
                Assert.True(DateTime.UtcNow < deadline, $"No end of {callId} in the room: {string.Join(", ", list.Select(u => u.Str("change")))}");
                await Task.Delay(100);
            }
        }
        var firstUpdates = await UpdatesAsync(cy, call);
        Assert.Equal(["started", "joined", "ended"], firstUpdates.Select(u => u.Str("change")));
        Assert.Equal(firstUpdates.Select(u => u.GetProperty("event_seq").GetInt64()).Order(), firstUpdates.Select(u => u.GetProperty("event_seq").GetInt64()));
        foreach (var conversation in others)
        {
            var busyCall = bea.All.First(e => e.Name == CallNotices.Busy && e.Payload.Str("conversation_id") == conversation).Payload.Str("call_id");
            var updates = await UpdatesAsync(bea, busyCall);
            Assert.Equal(["started", "busy", "ended"], updates.Select(u => u.Str("change")));
            Assert.Equal(("cy", "busy"), (updates[1].GetProperty("user_ids")[0].GetString(), updates[2].Str("reason")));
        }
    }
}
