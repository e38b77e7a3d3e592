using System.Net.Http.Json;
using System.Text.Json;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Streams.DeadLetters;
using Caas.Streams.Pipeline;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Streams.Tests;

public sealed class DeadLetterTests
{
    [Fact]
    public async Task Dead_letters_are_listed_by_role_and_replay_through_the_pipeline()
    {
        await using var node = await PipelineNode.StartAsync();
        var letters = node.Services.GetRequiredService<DeadLetterStore>();
        using var alice = node.Client("t-dlq", "alice");
        var created = await alice.PostAsJsonAsync("/v1/conversations", new { type = "group" });
        var id = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;

        // bob was not a member when his message came in over a trusted path: it was refused and dead-lettered
        var message = new IngestMessage("t-dlq", id, "bob", "dl-1", new MessageContent("text", "from the topic"), IngestSource.Kafka);
        var refused = await node.Ingest.SubmitAsync(message);
        var rejection = Assert.IsType<Rejected>(refused).Rejection;
        var letter = await letters.AddAsync("t-dlq", IngestSource.Kafka, rejection.Code, rejection.Message, DeadLetterStore.PayloadOf(message));
        var unreadable = await letters.AddAsync(null, IngestSource.Kafka, ErrorCodes.MalformedJson, "not JSON", "\u0001garbage");
        var otherTenant = await letters.AddAsync("t-other", IngestSource.Kafka, ErrorCodes.NotFound, "x", "{}");

        using var admin = node.Client("t-dlq", "root", "admin");
        using var operatorClient = node.Client("t-ops", "ops", "operator");
        var adminView = await ListAsync(admin);
        Assert.Equal([letter.Id], adminView);
        var operatorView = await ListAsync(operatorClient);
        Assert.Contains(unreadable.Id, operatorView);
        Assert.Contains(otherTenant.Id, operatorView);
        Assert.Equal(403, (int)(await alice.GetAsync("/v1/admin/dead-letters")).StatusCode);
        Assert.Equal(404, (int)(await admin.PostAsync($"/v1/admin/dead-letters/{otherTenant.Id}/replay", null)).StatusCode);
        Assert.Equal(409, (int)(await operatorClient.PostAsync($"/v1/admin/dead-letters/{unreadable.Id}/replay", null)).StatusCode);

        Assert.Equal(201, (int)(await alice.PostAsJsonAsync($"/v1/conversations/{id}/members", new { user_id = "bob" })).StatusCode);
        var replay = await admin.PostAsync($"/v1/admin/dead-letters/{letter.Id}/replay", null);
        var body = JsonDocument.Parse(await replay.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("persisted", body.GetProperty("status").GetString());
        Assert.Equal(1, body.GetProperty("seq").GetInt64());
        var again = JsonDocument.Parse(await (await admin.PostAsync($"/v1/admin/dead-letters/{letter.Id}/replay", null)).Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("duplicate", again.GetProperty("status").GetString());
        Assert.Equal("duplicate", (await letters.GetAsync(letter.Id))!.ReplayOutcome);
    }

    private static async Task<List<string>> ListAsync(HttpClient client)
    {
        var page = JsonDocument.Parse(await client.GetStringAsync("/v1/admin/dead-letters")).RootElement;
        return page.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetString()!).ToList();
    }
}
