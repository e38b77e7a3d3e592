using System.Net.Http.Json;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.SignalR.Client;

namespace Caas.Web.Tests.Hubs;

/// <summary>A node that defers every message's enrichment (high-water mark 0), with a budget no loaded machine misses.</summary>
public sealed class DeferringHubNode() : HubNode(new Dictionary<string, string?>(),
    o => o with { ExtraHocon = "caas.pipeline.enrich-high-water = 0\ncaas.pipeline.enrich-budget = 10s" });

public sealed class DeferredEnrichmentHubTests(DeferringHubNode node) : IClassFixture<DeferringHubNode>
{
    private static async Task<string> CreateGroupRetryingAsync(HttpClient rest, params string[] members)
    {
        using var response = await Caas.Tests.Shared.Retrying.PostAsJsonAsync(rest, "/v1/conversations", new { type = "group", members });
        Assert.Equal(201, (int)response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
    }

    [Fact]
    public async Task A_deferred_message_reaches_the_room_at_once_and_its_enrichment_follows_as_messageEnriched()
    {
        using var rest = node.Rest("t-hub-enrich", "alice");
        var room = await CreateGroupRetryingAsync(rest, "bob");
        await using var alice = await node.ConnectAsync("t-hub-enrich", "alice");
        await using var bob = await node.ConnectAsync("t-hub-enrich", "bob");
        var enriched = Channel.CreateUnbounded<JsonElement>();
        bob.Connection.On<JsonElement>("messageEnriched", e => enriched.Writer.TryWrite(e));
        await alice.JoinAsync(room);
        await bob.JoinAsync(room);

        var sent = await alice.SendAsync(room, "mail me at alice@example.com tomorrow");
        var message = (await bob.MessagesAsync(room, 1, TimeSpan.FromMinutes(2)))[0];
        Assert.Equal(sent.Seq(), message.Seq());

        using var wait = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var e = await enriched.Reader.ReadAsync(wait.Token);
        Assert.Equal(room, e.GetProperty("conversation_id").GetString());
        Assert.Equal(message.Seq(), e.Seq());
        Assert.Equal(message.GetProperty("message_id").GetString(), e.GetProperty("message_id").GetString());
        var enrichment = e.GetProperty("enrichment");
        Assert.False(enrichment.TryGetProperty("deferred", out _));
        var entities = enrichment.GetProperty("results").EnumerateArray().Single(r => r.GetProperty("name").GetString() == "entities");
        Assert.Contains("alice@example.com", entities.GetProperty("data").ToString());

        // The history shows it too, once the read model has the event (read-your-writes covers the post, not this).
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        while (true)
        {
            var history = await bob.Ok("GetHistory", new { conversation_id = room, after_seq = 0 });
            var item = history.GetProperty("items").EnumerateArray().Single();
            if (item.GetProperty("enrichment") is { ValueKind: JsonValueKind.Object } stored && !stored.TryGetProperty("deferred", out _))
            {
                Assert.Contains(stored.GetProperty("results").EnumerateArray(), r => r.GetProperty("name").GetString() == "entities");
                break;
            }
            Assert.True(DateTime.UtcNow < deadline, $"The history never showed the enrichment: {item}");
            await Task.Delay(100);
        }
    }
}
