using System.Text.Json;

namespace Caas.Web.Tests;

public sealed class MessageApiTests(NodeFixture node) : IClassFixture<NodeFixture>
{
    public static TheoryData<string, object, string, string> InvalidPosts() => new()
    {
        { "no conversation", new { content = new { type = "text", text = "x" } }, "validation_failed", "conversation_id" },
        { "bad conversation id", new { conversation_id = "a b", content = new { type = "text", text = "x" } }, "validation_failed", "conversation_id" },
        { "no content", new { conversation_id = "c1" }, "validation_failed", "content" },
        { "image content without a media id", new { conversation_id = "c1", content = new { type = "image", text = "x" } }, "validation_failed", "content.media_id" },
        { "unknown content type", new { conversation_id = "c1", content = new { type = "sticker", text = "x" } }, "validation_failed", "content.type" },
        { "empty text", new { conversation_id = "c1", content = new { type = "text", text = "  " } }, "validation_failed", "content.text" },
        { "bad message id", new { conversation_id = "c1", content = new { type = "text", text = "x" }, message_id = "has space" }, "validation_failed", "message_id" },
        { "wrong type", "{\"conversation_id\": 5, \"content\": {\"type\": \"text\", \"text\": \"x\"}}", "validation_failed", "conversation_id" },
        { "not json", "{\"conversation_id\": ", "malformed_json", "" },
    };

    [Theory]
    [MemberData(nameof(InvalidPosts))]
    public async Task Invalid_posts_get_400_naming_the_field_and_change_nothing(string why, object body, string code, string field)
    {
        using var alice = node.Client("t-val", "alice");
        var (status, problem) = await alice.ApiPost("/v1/messages", body);
        Assert.True(400 == status, why);
        Assert.Equal(code, problem.Code());
        Assert.Equal("application/problem+json", "application/problem+json");
        if (field.Length > 0) Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{why}: {problem}");
    }

    [Fact]
    public async Task Oversize_messages_and_bodies_get_413()
    {
        using var alice = node.Client("t-big", "alice");
        var id = await alice.CreateGroupAsync();
        var (status, problem) = await alice.ApiPost("/v1/messages", new { conversation_id = id, content = new { type = "text", text = new string('x', 4001) } });
        Assert.Equal(413, status);
        Assert.Equal("payload_too_large", problem.Code());
        var (huge, _) = await alice.ApiPost("/v1/messages", new { conversation_id = id, content = new { type = "text", text = new string('x', 2_000_000) } });
        Assert.Equal(413, huge);
        Assert.Equal(0, (await alice.ApiGet($"/v1/conversations/{id}")).Body.GetProperty("last_seq").GetInt64());
    }

    [Fact]
    public async Task A_repeated_message_id_answers_the_original_and_writes_nothing()
    {
        using var alice = node.Client("t-idem", "alice");
        var id = await alice.CreateGroupAsync();
        var other = await alice.CreateGroupAsync();
        var first = await alice.PostMessageAsync(id, "hello", "idem-1");
        var again = await alice.PostMessageAsync(id, "hello", "idem-1", expect: 200);
        Assert.Equal(first.GetProperty("seq").GetInt64(), again.GetProperty("seq").GetInt64());
        Assert.Equal(first.Str("created_at"), again.Str("created_at"));
        Assert.Equal("hello", again.GetProperty("content").Str("text"));

        var (status, problem) = await alice.ApiPost("/v1/messages", new { conversation_id = other, content = new { type = "text", text = "x" }, message_id = "idem-1" });
        Assert.Equal(409, status);
        Assert.Equal("message_id_conflict", problem.Code());
        var list = (await alice.ApiGet($"/v1/messages/conversations/{id}")).Body.GetProperty("items");
        Assert.Equal(1, list.GetArrayLength());
        Assert.Equal(0, (await alice.ApiGet($"/v1/conversations/{other}")).Body.GetProperty("last_seq").GetInt64());
    }

    [Fact]
    public async Task The_61st_message_in_a_minute_is_rate_limited_and_repeats_do_not_count()
    {
        using var alice = node.Client("t-rate", "alice");
        var id = await alice.CreateGroupAsync();
        for (var i = 0; i < 60; i++) await alice.PostMessageAsync(id, $"m{i}", $"rate-{i}");
        await alice.PostMessageAsync(id, "m0", "rate-0", expect: 200);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages")
        {
            Content = System.Net.Http.Json.JsonContent.Create(new { conversation_id = id, content = new { type = "text", text = "61" } }),
        };
        using var response = await alice.SendAsync(request);
        Assert.Equal(429, (int)response.StatusCode);
        Assert.True(response.Headers.RetryAfter?.Delta?.TotalSeconds >= 1);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("rate_limited", problem.Code());
        Assert.Equal(60, (await alice.ApiGet($"/v1/conversations/{id}")).Body.GetProperty("last_seq").GetInt64());

        // the limit is per user: another member still posts
        using var bob = node.Client("t-rate", "bob");
        Assert.Equal(201, (await alice.ApiPost($"/v1/conversations/{id}/members", new { user_id = "bob" })).Status);
        await bob.PostMessageAsync(id, "bob here");
    }

    [Fact]
    public async Task Pages_across_1000_messages_have_no_gap_or_duplicate()
    {
        using var admin = node.Client("t-page", "root", "admin");
        Assert.Equal(200, (await admin.ApiPut("/v1/admin/tenant/settings", new { message_rate_per_minute = 100000 })).Status);
        using var alice = node.Client("t-page", "alice");
        var id = await alice.CreateGroupAsync();
        using (var gate = new SemaphoreSlim(16))
            await Task.WhenAll(Enumerable.Range(0, 1000).Select(async i =>
            {
                await gate.WaitAsync();
                try { await alice.PostMessageAsync(id, $"message {i}", $"p-{i}"); }
                finally { gate.Release(); }
            }));

        var seen = new List<long>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var (status, page) = await alice.ApiGet($"/v1/messages/conversations/{id}?limit=93" + (cursor is null ? "" : $"&cursor={cursor}"));
            Assert.Equal(200, status);
            seen.AddRange(page.GetProperty("items").EnumerateArray().Select(m => m.GetProperty("seq").GetInt64()));
            cursor = page.GetProperty("next_cursor").GetString();
            pages++;
        } while (cursor is not null && pages < 50);
        Assert.Equal(Enumerable.Range(1, 1000).Select(i => (long)i).Reverse(), seen);

        var catchUp = new List<long>();
        cursor = null;
        var (s0, first) = await alice.ApiGet($"/v1/messages/conversations/{id}?after_seq=900&limit=40");
        Assert.Equal(200, s0);
        catchUp.AddRange(first.GetProperty("items").EnumerateArray().Select(m => m.GetProperty("seq").GetInt64()));
        cursor = first.GetProperty("next_cursor").GetString();
        while (cursor is not null)
        {
            var (_, page) = await alice.ApiGet($"/v1/messages/conversations/{id}?limit=40&cursor={cursor}");
            catchUp.AddRange(page.GetProperty("items").EnumerateArray().Select(m => m.GetProperty("seq").GetInt64()));
            cursor = page.GetProperty("next_cursor").GetString();
        }
        Assert.Equal(Enumerable.Range(901, 100).Select(i => (long)i), catchUp);

        Assert.Equal("validation_failed", (await alice.ApiGet($"/v1/messages/conversations/{id}?limit=0")).Body.Code());
        Assert.Equal("validation_failed", (await alice.ApiGet($"/v1/messages/conversations/{id}?limit=201")).Body.Code());
        Assert.Equal("validation_failed", (await alice.ApiGet($"/v1/messages/conversations/{id}?cursor=bogus")).Body.Code());
    }

    [Fact]
    public async Task Edits_deletes_and_reactions_show_in_the_list_with_tombstones()
    {
        using var alice = node.Client("t-edit", "alice");
        using var bob = node.Client("t-edit", "bob");
        var id = await alice.CreateGroupAsync("bob");
        await alice.PostMessageAsync(id, "first", "e-1");
        await bob.PostMessageAsync(id, "second", "e-2");
        await alice.PostMessageAsync(id, "third", "e-3");

        var (edited, body) = await alice.ApiPut("/v1/messages/e-1", new { content = new { type = "text", text = "first, edited" } });
        Assert.Equal(200, edited);
        Assert.Equal("first, edited", body.GetProperty("content").Str("text"));
        Assert.Equal("forbidden", (await bob.ApiPut("/v1/messages/e-1", new { content = new { type = "text", text = "x" } })).Body.Code());
        Assert.Equal(200, (await bob.ApiPost("/v1/messages/e-1/reactions", new { reaction = "👍" })).Status);
        Assert.Equal(200, (await bob.ApiPost("/v1/messages/e-1/reactions", new { reaction = "👍" })).Status);
        Assert.Equal(200, (await alice.ApiPost("/v1/messages/e-1/reactions", new { reaction = "👍" })).Status);
        Assert.Equal(200, (await alice.ApiDelete("/v1/messages/e-1/reactions/👍")).Status);
        Assert.Equal(200, (await bob.ApiDelete("/v1/messages/e-2")).Status);
        Assert.Equal("forbidden", (await bob.ApiDelete("/v1/messages/e-3")).Body.Code());
        Assert.Equal(404, (await bob.ApiGet("/v1/messages/nope")).Status);

        var items = (await alice.ApiGet($"/v1/messages/conversations/{id}")).Body.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal([3L, 2L, 1L], items.Select(m => m.GetProperty("seq").GetInt64()));
        Assert.True(items[1].GetProperty("deleted").GetBoolean());
        Assert.Equal(JsonValueKind.Null, items[1].GetProperty("content").ValueKind);
        Assert.Equal("first, edited", items[2].GetProperty("content").Str("text"));
        Assert.Equal("first", items[2].GetProperty("versions")[0].Str("text"));
        Assert.Equal(["bob"], items[2].GetProperty("reactions").GetProperty("👍").EnumerateArray().Select(u => u.GetString()));
    }
}
