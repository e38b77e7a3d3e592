using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Caas.Web.Tests;

/// <summary>
/// Retries, message-id reuse and refused attempts through REST on a real node: a repeat is answered only to its own
/// sender, a refusal claims nothing and has its own budget, and the hourly cap and plain-string content hold.
/// </summary>
public sealed class MessageIdempotencyTests(NodeFixture node) : IClassFixture<NodeFixture>
{
    private static object Text(string conversation, string text, string? messageId) =>
        new { conversation_id = conversation, content = new { type = "text", text }, message_id = messageId };

    /// <summary>Waits (bounded) until the message reads back through REST: the read model has it.</summary>
    private static async Task WaitReadableAsync(HttpClient client, string messageId)
    {
        // Generous: the projection trails further on a loaded machine.
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while ((await client.ApiGet($"/v1/messages/{messageId}")).Status != 200)
        {
            Assert.True(DateTime.UtcNow < until, $"{messageId} did not become readable within 2 minutes.");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task A_non_member_or_another_tenant_posting_someone_elses_message_id_gets_404_and_never_the_text()
    {
        using var alice = node.Client("t-leak", "alice");
        using var mallory = node.Client("t-leak", "mallory");
        using var outsider = node.Client("t-leak-other", "alice");
        var id = await alice.CreateGroupAsync("bob");
        await alice.PostMessageAsync(id, "the launch code is 0000", "leak-1");

        foreach (var (client, text) in new[] { (mallory, "x"), (mallory, "the launch code is 0000"), (outsider, "x"), (outsider, "the launch code is 0000") })
        {
            var (status, body) = await client.ApiPost("/v1/messages", Text(id, text, "leak-1"));
            Assert.Equal(404, status);
            Assert.Equal("not_found", body.Code());
            Assert.DoesNotContain("launch code", body.ToString());
            // Exactly as for a fresh post by the same caller.
            var (freshStatus, fresh) = await client.ApiPost("/v1/messages", Text(id, text, null));
            Assert.Equal(freshStatus, status);
            Assert.Equal(fresh.Code(), body.Code());
        }
        var items = (await alice.ApiGet($"/v1/messages/conversations/{id}")).Body.GetProperty("items");
        Assert.Equal(1, items.GetArrayLength());
    }

    [Fact]
    public async Task A_member_reusing_another_members_id_gets_409_and_both_messages_survive()
    {
        using var alice = node.Client("t-reuse", "alice");
        using var bob = node.Client("t-reuse", "bob");
        var id = await alice.CreateGroupAsync("bob");
        var first = await alice.PostMessageAsync(id, "from alice", "reuse-1");

        foreach (var text in new[] { "from bob", "from alice" })
        {
            var (status, body) = await bob.ApiPost("/v1/messages", Text(id, text, "reuse-1"));
            Assert.Equal(409, status);
            Assert.Equal("message_id_conflict", body.Code());
            Assert.DoesNotContain("from alice", body.ToString());
        }
        var mine = await bob.PostMessageAsync(id, "from bob", "reuse-2");
        Assert.Equal(first.GetProperty("seq").GetInt64() + 1, mine.GetProperty("seq").GetInt64());

        var items = (await bob.ApiGet($"/v1/messages/conversations/{id}")).Body.GetProperty("items").EnumerateArray()
            .OrderBy(m => m.GetProperty("seq").GetInt64()).ToList();
        Assert.Equal(["alice", "bob"], items.Select(m => m.Str("sender_id")));
        Assert.Equal(["from alice", "from bob"], items.Select(m => m.GetProperty("content").Str("text")));
        Assert.Equal(["reuse-1", "reuse-2"], items.Select(m => m.Str("message_id")));
    }

    [Fact]
    public async Task A_refused_post_leaves_no_claim_so_the_id_can_be_used_for_real_afterwards()
    {
        using var alice = node.Client("t-squat", "alice");
        using var carol = node.Client("t-squat", "carol");
        var (madeUp, _) = await alice.ApiPost("/v1/messages", Text("no-such-conversation", "hi", "squat-1"));
        Assert.Equal(404, madeUp);

        var muted = await alice.CreateGroupAsync("carol");
        Assert.Equal(200, (await alice.ApiPost($"/v1/conversations/{muted}/moderation/mute", new { user_id = "carol" })).Status);
        var (mutedStatus, mutedBody) = await carol.ApiPost("/v1/messages", Text(muted, "hi", "squat-2"));
        Assert.Equal(403, mutedStatus);
        Assert.Equal("muted", mutedBody.Code());
        var (tooLong, _) = await carol.ApiPost("/v1/messages", Text(muted, new string('x', 4_001), "squat-3"));
        Assert.Equal(413, tooLong);

        var real = await alice.CreateGroupAsync();
        foreach (var messageId in new[] { "squat-1", "squat-2", "squat-3" })
            Assert.Equal(messageId, (await alice.PostMessageAsync(real, "now for real", messageId)).Str("message_id"));
    }

    [Fact]
    public async Task The_31st_refused_attempt_in_a_minute_is_429_while_real_sending_goes_on()
    {
        using var alice = node.Client("t-refused", "alice");
        using var mallory = node.Client("t-refused", "mallory");
        var theirs = await alice.CreateGroupAsync();
        var own = await mallory.CreateGroupAsync();

        for (var i = 0; i < 30; i++)
        {
            var (status, body) = await mallory.ApiPost("/v1/messages", Text(theirs, "let me in", $"probe-{i}"));
            Assert.True(404 == status, $"attempt {i + 1}: {status} {body}");
        }
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = JsonContent.Create(Text(theirs, "let me in", "probe-30")) };
        using var response = await mallory.SendAsync(request);
        Assert.Equal(429, (int)response.StatusCode);
        Assert.True(response.Headers.RetryAfter?.Delta?.TotalSeconds >= 1);
        Assert.Equal("rate_limited", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Code());

        // The refused budget is apart from the message rate: all 60 of the minute's messages still go through.
        for (var i = 0; i < 60; i++) await mallory.PostMessageAsync(own, $"real {i}", $"real-{i}");
        Assert.Equal(60, (await mallory.ApiGet($"/v1/conversations/{own}")).Body.GetProperty("last_seq").GetInt64());
        Assert.Equal(0, (await alice.ApiGet($"/v1/conversations/{theirs}")).Body.GetProperty("last_seq").GetInt64());
    }

    [Fact]
    public async Task A_banned_user_repeating_their_own_stored_id_gets_the_original_acknowledgement()
    {
        using var alice = node.Client("t-banrepeat", "alice");
        using var bob = node.Client("t-banrepeat", "bob");
        var id = await alice.CreateGroupAsync("bob");
        var first = await bob.PostMessageAsync(id, "before the ban", "ban-1");
        // The entity keeps no content: a repeat's original text comes from the read model.
        await WaitReadableAsync(alice, "ban-1");
        Assert.Equal(200, (await alice.ApiPost($"/v1/conversations/{id}/moderation/ban", new { user_id = "bob" })).Status);

        // The same retry (answered from the dedupe window) and a retry whose body changed (answered by the entity).
        foreach (var text in new[] { "before the ban", "a changed retry" })
        {
            var again = await bob.PostMessageAsync(id, text, "ban-1", expect: 200);
            Assert.Equal(first.GetProperty("seq").GetInt64(), again.GetProperty("seq").GetInt64());
            Assert.Equal(first.Str("created_at"), again.Str("created_at"));
            Assert.Equal("before the ban", again.GetProperty("content").Str("text"));
        }
        var (status, body) = await bob.ApiPost("/v1/messages", Text(id, "new", "ban-2"));
        Assert.Equal(403, status);
        Assert.Equal("banned", body.Code());
        Assert.Equal(1, (await alice.ApiGet($"/v1/conversations/{id}")).Body.GetProperty("last_seq").GetInt64());
    }

    [Fact]
    public async Task The_hourly_cap_is_a_tenant_setting_answered_429_and_bulk_is_exempt()
    {
        using var admin = node.Client("t-cap", "root", "admin");
        var (defaults, settings) = await admin.ApiGet("/v1/admin/tenant/settings");
        Assert.Equal(200, defaults);
        Assert.Equal(1_000, settings.GetProperty("message_cap_per_hour").GetInt32());
        Assert.Equal(30, settings.GetProperty("rejected_attempts_per_minute").GetInt32());
        foreach (var (field, value) in new[] { ("message_cap_per_hour", 0), ("message_cap_per_hour", 1_000_001), ("rejected_attempts_per_minute", 0) })
        {
            var (status, problem) = await admin.ApiPut("/v1/admin/tenant/settings", new Dictionary<string, int> { [field] = value });
            Assert.Equal(400, status);
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
        }
        var (ok, updated) = await admin.ApiPut("/v1/admin/tenant/settings", new { message_cap_per_hour = 3, rejected_attempts_per_minute = 5 });
        Assert.Equal(200, ok);
        Assert.Equal(3, updated.GetProperty("message_cap_per_hour").GetInt32());
        Assert.Equal(5, updated.GetProperty("rejected_attempts_per_minute").GetInt32());

        using var alice = node.Client("t-cap", "alice");
        var id = await alice.CreateGroupAsync();
        for (var i = 0; i < 3; i++) await alice.PostMessageAsync(id, $"m{i}", $"cap-{i}");
        await alice.PostMessageAsync(id, "m0", "cap-0", expect: 200);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = JsonContent.Create(Text(id, "one too many", "cap-3")) };
        using var response = await alice.SendAsync(request);
        Assert.Equal(429, (int)response.StatusCode);
        Assert.Equal("rate_limited", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Code());
        // The oldest of the hour's messages leaves the window in about an hour, not a minute.
        Assert.True(response.Headers.RetryAfter?.Delta?.TotalSeconds > 60, response.Headers.RetryAfter?.ToString());

        using var loader = node.Client("t-cap", "loader", "ingest");
        var line = JsonSerializer.Serialize(new { conversation_id = id, sender_id = "alice", message_id = "cap-bulk", content = new { type = "text", text = "bulk" } });
        using var bulk = await loader.PostAsync("/v1/ingest", new StringContent(line + "\n", Encoding.UTF8, "application/x-ndjson"));
        var answer = JsonDocument.Parse((await bulk.Content.ReadAsStringAsync()).Trim()).RootElement;
        Assert.Equal("persisted", answer.Str("status"));
        Assert.Equal(4, (await alice.ApiGet($"/v1/conversations/{id}")).Body.GetProperty("last_seq").GetInt64());
    }

    [Fact]
    public async Task Content_as_a_plain_string_is_text_on_post_edit_and_bulk()
    {
        using var alice = node.Client("t-plain", "alice");
        var id = await alice.CreateGroupAsync();
        var (status, posted) = await alice.ApiPost("/v1/messages", new { conversation_id = id, content = "hello", message_id = "plain-1" });
        Assert.Equal(201, status);
        Assert.Equal("text", posted.GetProperty("content").Str("type"));
        Assert.Equal("hello", posted.GetProperty("content").Str("text"));

        await WaitReadableAsync(alice, "plain-1");
        var (edited, changed) = await alice.ApiPut("/v1/messages/plain-1", new { content = "hello again" });
        Assert.Equal(200, edited);
        Assert.Equal("hello again", changed.GetProperty("content").Str("text"));

        using var loader = node.Client("t-plain", "loader", "ingest");
        var line = JsonSerializer.Serialize(new { conversation_id = id, sender_id = "alice", message_id = "plain-2", content = "from a file" });
        using var bulk = await loader.PostAsync("/v1/ingest", new StringContent(line + "\n", Encoding.UTF8, "application/x-ndjson"));
        Assert.Equal("persisted", JsonDocument.Parse((await bulk.Content.ReadAsStringAsync()).Trim()).RootElement.Str("status"));
        var (_, stored) = await alice.ApiGet("/v1/messages/plain-2");
        Assert.Equal("from a file", stored.GetProperty("content").Str("text"));

        foreach (var bad in new object[] { 5, "", "   " })
        {
            var (badStatus, problem) = await alice.ApiPost("/v1/messages", new { conversation_id = id, content = bad });
            Assert.Equal(400, badStatus);
            Assert.Equal("validation_failed", problem.Code());
        }
    }
}
