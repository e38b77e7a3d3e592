using System.Text;
using System.Text.Json;
using Caas.Streams.DeadLetters;
using Caas.Streams.Pipeline;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Caas.Web.Tests.Audit;

/// <summary>
/// GDPR erasure against a real node on PostgreSQL: the journal keeps only ciphertext; after
/// <c>DELETE /v1/admin/users/{id}</c> the user's content reads as erased on every read path (messages, history with
/// edits, enrichment, audit replay, dead letters, a rebuilt read model) while everyone else's stays, and the hash chain
/// still verifies.
/// </summary>
public sealed class ErasureTests(TamperNodeFixture node) : IClassFixture<TamperNodeFixture>
{
    private const string Tenant = "t-erase";

    private async Task<List<string>> JournalTextsAsync()
    {
        await using var c = new NpgsqlConnection(node.Postgres);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT message FROM journal ORDER BY ordering", c);
        var texts = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) texts.Add(Encoding.UTF8.GetString((byte[])r.GetValue(0)));
        return texts;
    }

    private static async Task<List<JsonElement>> NdjsonAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path);
        Assert.Equal(200, (int)response.StatusCode);
        return [.. (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonDocument.Parse(l).RootElement.Clone())];
    }

    private static async Task<Dictionary<string, JsonElement>> MessagesAsync(HttpClient reader, string conversation)
    {
        var (status, page) = await reader.ApiGet($"/v1/messages/conversations/{conversation}?limit=50");
        Assert.Equal(200, status);
        return page.GetProperty("items").EnumerateArray().ToDictionary(m => m.Str("message_id"));
    }

    private static async Task VisibleAsync(HttpClient reader, string conversation, int count)
    {
        for (var i = 0; i < 2_400 && (await MessagesAsync(reader, conversation)).Count < count; i++) await Task.Delay(50);
    }

    [Fact]
    public async Task Erasure_makes_a_users_content_unreadable_everywhere_and_the_chain_still_verifies()
    {
        using var alice = node.Client(Tenant, "alice");
        using var bob = node.Client(Tenant, "bob");
        using var admin = node.Client(Tenant, "root", "admin");
        var room = await alice.CreateGroupAsync("bob");
        var a1 = (await alice.PostMessageAsync(room, "alice secret: call me at +1 415 555 0100 or alice@example.com")).Str("message_id");
        var b1 = (await bob.PostMessageAsync(room, "bob says hello")).Str("message_id");
        // The edit looks the message up in the read model: wait for it there first (the machine may be loaded).
        await VisibleAsync(alice, room, 2);
        var edited = await alice.ApiPut($"/v1/messages/{a1}", new { content = new { type = "text", text = "alice secret, edited" } });
        Assert.True(200 == edited.Status, edited.Body.ToString());
        var a2 = (await alice.PostMessageAsync(room, "alice second secret")).Str("message_id");
        var letters = node.Services.GetRequiredService<DeadLetterStore>();
        var aliceLetter = await letters.AddAsync(Tenant, IngestSource.Kafka, "not_found", "conversation missing",
            JsonSerializer.Serialize(new { tenant_id = Tenant, conversation_id = "gone", sender_id = "alice", content = new { type = "text", text = "alice dead-lettered secret" } }));
        var bobLetter = await letters.AddAsync(Tenant, IngestSource.Kafka, "not_found", "conversation missing",
            JsonSerializer.Serialize(new { tenant_id = Tenant, conversation_id = "gone", sender_id = "bob", content = new { type = "text", text = "bob dead-lettered" } }));

        // The journal holds ciphertext and key ids, never the text or the entities found in it.
        var journal = await JournalTextsAsync();
        Assert.DoesNotContain(journal, j => j.Contains("alice secret") || j.Contains("+14155550100") || j.Contains("example.com") || j.Contains("bob says hello"));
        Assert.Equal(4, journal.Count(j => j.Contains("\"sealed\":{\"key_id\":\"dk_")));

        // Before: everyone reads it, enrichment included.
        await VisibleAsync(bob, room, 3);
        var before = await MessagesAsync(bob, room);
        Assert.Equal("alice secret, edited", before[a1].GetProperty("content").Str("text"));
        Assert.Contains("alice secret: call me", before[a1].GetProperty("versions")[0].Str("text"));
        Assert.Contains("+14155550100", before[a1].GetProperty("enrichment").ToString());
        var replayBefore = await NdjsonAsync(admin, $"/v1/admin/audit/conversations/{room}/events");
        Assert.Contains(replayBefore, e => e.GetProperty("payload").ToString().Contains("alice second secret"));
        Assert.DoesNotContain(replayBefore, e => e.GetProperty("payload").TryGetProperty("sealed", out _));

        // Only the tenant's admin erases; bad ids change nothing; another tenant's admin erases its own "alice" only.
        Assert.Equal(403, (await bob.ApiDelete("/v1/admin/users/alice")).Status);
        var (badStatus, bad) = await admin.ApiDelete("/v1/admin/users/not%20valid");
        Assert.Equal((400, "validation_failed"), (badStatus, bad.Code()));
        using (var stranger = node.Client("t-erase-other", "root", "admin"))
        {
            var (status, other) = await stranger.ApiDelete("/v1/admin/users/alice");
            Assert.Equal(200, status);
            Assert.Equal(0, other.GetProperty("keys_destroyed").GetArrayLength());
        }
        Assert.Equal("alice second secret", (await MessagesAsync(bob, room))[a2].GetProperty("content").Str("text"));

        var (erasedStatus, report) = await admin.ApiDelete("/v1/admin/users/alice");
        Assert.Equal(200, erasedStatus);
        Assert.Equal(1, report.GetProperty("keys_destroyed").GetArrayLength());
        Assert.True(report.GetProperty("read_model_settled").GetBoolean());
        Assert.Equal(1, report.GetProperty("dead_letters_erased").GetInt64());

        // The read model: alice's text, edit history and enrichment are gone; bob's message is untouched.
        var after = await MessagesAsync(bob, room);
        foreach (var id in new[] { a1, a2 })
        {
            Assert.Equal("erased", after[id].GetProperty("content").Str("type"));
            Assert.Equal(JsonValueKind.Null, after[id].GetProperty("content").GetProperty("text").ValueKind);
            Assert.Equal(0, after[id].GetProperty("versions").GetArrayLength());
            Assert.Equal(JsonValueKind.Null, after[id].GetProperty("enrichment").ValueKind);
        }
        Assert.Equal("bob says hello", after[b1].GetProperty("content").Str("text"));
        Assert.Equal("erased", (await alice.ApiGet($"/v1/messages/{a2}")).Body.GetProperty("content").Str("type"));

        // Replay: the same events in the same order, alice's content erased, bob's readable; the erasure is an event.
        var replay = await NdjsonAsync(admin, $"/v1/admin/audit/conversations/{room}/events");
        Assert.Equal(replayBefore.Select(e => (e.Str("type"), e.GetProperty("seq").GetInt64())), replay.Select(e => (e.Str("type"), e.GetProperty("seq").GetInt64())));
        var all = string.Join("\n", replay.Select(e => e.GetProperty("payload").ToString()));
        Assert.DoesNotContain("alice secret", all);
        Assert.DoesNotContain("alice second", all);
        Assert.Contains("bob says hello", all);
        var erasures = await NdjsonAsync(admin, "/v1/admin/audit/events?type=session.user-erased");
        var erasure = Assert.Single(erasures);
        Assert.Equal("root", erasure.Str("actor"));
        Assert.Equal("alice", erasure.GetProperty("payload").Str("user_id"));

        // Dead letters: alice's payload is erased, bob's is kept.
        var (_, listed) = await admin.ApiGet("/v1/admin/dead-letters");
        var byId = listed.GetProperty("items").EnumerateArray().ToDictionary(l => l.Str("id"));
        Assert.DoesNotContain("alice dead-lettered", byId[aliceLetter.Id].ToString());
        Assert.Contains("bob dead-lettered", byId[bobLetter.Id].ToString());

        // The journal is unchanged in length and the chain verifies; the key row stays, without its key.
        Assert.Equal(journal.Count + 2, (await JournalTextsAsync()).Count); // + the two user_erased events (this tenant's and the other's)
        var (_, verify) = await admin.ApiGet("/v1/admin/audit/verify");
        Assert.True(verify.GetProperty("intact").GetBoolean(), verify.ToString());
        await using (var c = new NpgsqlConnection(node.Postgres))
        {
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT COUNT(*) FROM caas_ops.data_keys WHERE tenant_id = 't-erase' AND user_id = 'alice' AND wrapped_key IS NULL AND destroyed_by = 'root'", c);
            Assert.Equal(1L, (long)(await cmd.ExecuteScalarAsync())!);
        }

        // A rebuild from the journal cannot bring the content back.
        using var op = node.Client(Tenant, "ops", "operator");
        Assert.Equal(202, (await op.ApiPost("/v1/admin/projections/conversations/rebuild", null)).Status);
        var state = "";
        for (var i = 0; i < 2_400 && state != "done"; i++)
        {
            await Task.Delay(50);
            state = (await op.ApiGet("/v1/admin/projections/conversations/rebuild")).Body.Str("state");
        }
        Assert.Equal("done", state);
        await VisibleAsync(bob, room, 3);
        var rebuilt = await MessagesAsync(bob, room);
        Assert.Equal("erased", rebuilt[a1].GetProperty("content").Str("type"));
        Assert.Equal(0, rebuilt[a1].GetProperty("versions").GetArrayLength());
        Assert.Equal("bob says hello", rebuilt[b1].GetProperty("content").Str("text"));

        // Alice may go on using the service: her new content is sealed under a new key and readable.
        var a3 = (await alice.PostMessageAsync(room, "alice is back")).Str("message_id");
        await VisibleAsync(bob, room, 4);
        Assert.Equal("alice is back", (await MessagesAsync(bob, room))[a3].GetProperty("content").Str("text"));
    }
}
