using System.Net.Http.Json;
using System.Text.Json;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Streams.DeadLetters;
using Caas.Streams.Kafka;
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
        var created = await Caas.Tests.Shared.Retrying.PostAsJsonAsync(alice, "/v1/conversations", new { type = "group" });
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

    [Fact]
    public async Task Replay_applies_the_topic_tenant_allowlist_the_original_record_was_refused_by()
    {
        // chat.messages admits t-good only; t-evil's record on it was refused and dead-lettered
        var kafka = new KafkaSettings
        {
            Bootstrap = "127.0.0.1:9",
            AllowedTenants = KafkaSettings.ParseAllowedTenants("chat.messages=t-good"),
        };
        await using var node = await PipelineNode.StartAsync("", services => services.AddSingleton(kafka));
        var letters = node.Services.GetRequiredService<DeadLetterStore>();

        async Task<(string Conversation, DeadLetter Letter)> RefusedRecordAsync(string tenant)
        {
            using var owner = node.Client(tenant, "alice");
            var created = await owner.PostAsJsonAsync("/v1/conversations", new { type = "group", members = new[] { "bob" } });
            var id = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
            var value = JsonSerializer.Serialize(new
            {
                tenant_id = tenant, conversation_id = id, sender_id = "bob", message_id = "dl-" + tenant,
                content = new { type = "text", text = "over the topic" },
            });
            var read = ChatMessageRecord.Read("chat.messages", null, System.Text.Encoding.UTF8.GetBytes(value), kafka);
            var code = read.Code ?? ErrorCodes.NotFound;
            return (id, await letters.AddAsync(tenant, IngestSource.Kafka, code, read.Reason ?? "refused", value, "chat.messages"));
        }

        var (evilConversation, evil) = await RefusedRecordAsync("t-evil");
        Assert.Equal(ErrorCodes.Forbidden, evil.Code);
        using var evilAdmin = node.Client("t-evil", "root", "admin");
        var refused = await evilAdmin.PostAsync($"/v1/admin/dead-letters/{evil.Id}/replay", null);
        Assert.Equal(403, (int)refused.StatusCode);
        Assert.Equal(ErrorCodes.Forbidden, JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        Assert.Equal(ErrorCodes.Forbidden, (await letters.GetAsync(evil.Id))!.ReplayOutcome);
        using var bob = node.Client("t-evil", "bob");
        var history = JsonDocument.Parse(await bob.GetStringAsync($"/v1/messages/conversations/{evilConversation}")).RootElement;
        Assert.Equal(0, history.GetProperty("items").GetArrayLength());
        // an operator cannot push it through either: the allowlist is not a role check
        using var operatorClient = node.Client("t-ops", "ops", "operator");
        Assert.Equal(403, (int)(await operatorClient.PostAsync($"/v1/admin/dead-letters/{evil.Id}/replay", null)).StatusCode);

        // the allowed tenant's letter (refused for another reason) still replays
        var (_, good) = await RefusedRecordAsync("t-good");
        using var goodAdmin = node.Client("t-good", "root", "admin");
        var replayed = JsonDocument.Parse(await (await goodAdmin.PostAsync($"/v1/admin/dead-letters/{good.Id}/replay", null)).Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("persisted", replayed.GetProperty("status").GetString());
    }

    private static async Task<List<string>> ListAsync(HttpClient client)
    {
        var page = JsonDocument.Parse(await client.GetStringAsync("/v1/admin/dead-letters")).RootElement;
        return page.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetString()!).ToList();
    }
}
