using System.Text.Json;

namespace Caas.Web.Tests;

/// <summary>Input that used to get through at the REST edge, and the existence oracle on message ids.</summary>
public sealed class InputHardeningTests(NodeFixture node) : IClassFixture<NodeFixture>
{
    [Theory]
    [InlineData("unban,mute")]
    [InlineData("ban, kick")]
    [InlineData("1")]
    [InlineData("0")]
    [InlineData("Ban")]
    [InlineData(" ban")]
    public async Task Only_the_exact_moderation_action_names_are_routes(string action)
    {
        using var alice = node.Client("t-modparse", "alice");
        var id = await alice.CreateGroupAsync("bob");
        var (status, body) = await alice.ApiPost($"/v1/conversations/{id}/moderation/{Uri.EscapeDataString(action)}", new { user_id = "bob" });
        Assert.Equal(404, status);
        Assert.Equal("not_found", body.Code());
        // nothing happened to bob
        var members = (await alice.ApiGet($"/v1/conversations/{id}")).Body.GetProperty("members");
        Assert.Contains(members.EnumerateArray(), m => m.Str("user_id") == "bob");
        Assert.Equal(200, (await alice.ApiPost($"/v1/conversations/{id}/moderation/mute", new { user_id = "bob" })).Status);
    }

    [Fact]
    public async Task Ids_with_a_trailing_newline_are_not_ids()
    {
        using var alice = node.Client("t-newline", "alice");
        var id = await alice.CreateGroupAsync();
        var (status, body) = await alice.ApiPost($"/v1/conversations/{id}/members", new { user_id = "bob\n" });
        Assert.Equal(400, status);
        Assert.Equal("validation_failed", body.Code());
        Assert.Equal(404, (await alice.ApiGet($"/v1/conversations/{id}%0A")).Status);
        var created = await alice.ApiPost("/v1/conversations", new { type = "group", members = new[] { "carol\n" } });
        Assert.Equal(400, created.Status);
    }

    [Fact]
    public async Task Metadata_over_its_limits_is_refused_and_changes_nothing()
    {
        using var alice = node.Client("t-metadata", "alice");
        var big = new string('v', 4 * 1024 + 1);
        var (status, body) = await alice.ApiPost("/v1/conversations", new { type = "group", title = "m", metadata = new Dictionary<string, string> { ["k"] = big } });
        Assert.Equal(400, status);
        Assert.Equal("validation_failed", body.Code());
        Assert.True(body.GetProperty("errors").TryGetProperty("metadata", out _));
        Assert.Empty((await alice.ApiGet("/v1/conversations")).Body.GetProperty("items").EnumerateArray());

        var id = await alice.CreateGroupAsync();
        var allTooMuch = Enumerable.Range(0, 17).ToDictionary(i => $"k{i}", _ => new string('v', 4_000));
        (status, body) = await alice.ApiPut($"/v1/conversations/{id}", new { metadata = allTooMuch });
        Assert.Equal(400, status);
        Assert.Equal("validation_failed", body.Code());
        (status, body) = await alice.ApiPut($"/v1/conversations/{id}", new { metadata = new Dictionary<string, string> { ["k"] = big } });
        Assert.Equal(400, status);
        Assert.Empty((await alice.ApiGet($"/v1/conversations/{id}")).Body.GetProperty("metadata").EnumerateObject());
        Assert.Equal(200, (await alice.ApiPut($"/v1/conversations/{id}", new { metadata = new Dictionary<string, string> { ["k"] = big[..^1] } })).Status);
    }

    /// <summary>Invalid UTF-8 inside a key the route ignores used to be read as an empty update (200).</summary>
    [Theory]
    [InlineData("/v1/users/me")]
    [InlineData("/v1/admin/tenant/settings")]
    public async Task A_body_that_is_not_UTF8_is_malformed_json_even_in_an_ignored_key(string path)
    {
        using var admin = node.Client("t-badutf8", "alice", "admin");
        var before = (await admin.ApiGet(path)).Body.GetRawText();
        byte[] bytes = [.. "{\""u8, 0xC3, 0x28, .. "\":1}"u8];
        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var response = await admin.PutAsync(path, content);
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("malformed_json", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Code());
        Assert.Equal(before, (await admin.ApiGet(path)).Body.GetRawText());
    }

    /// <summary>A body that ends before its Content-Length used to fail the handler's read with a 500.</summary>
    [Fact]
    public async Task A_body_shorter_than_its_content_length_is_a_400()
    {
        var token = node.Jwt.Issue("t-shortbody", "alice");
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(node.BaseAddress.Host, node.BaseAddress.Port);
        var stream = tcp.GetStream();
        var request = $"POST /v1/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n" +
                      "Content-Length: 100\r\n\r\n{\"type\":";
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(request));
        // The client sends no more and keeps the connection open: the server's body read fails once the minimum data
        // rate's grace period is over (seconds), and the request must be answered as the client's fault.
        using var reader = new StreamReader(stream, System.Text.Encoding.ASCII);
        var statusLine = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.NotNull(statusLine);
        Assert.StartsWith("HTTP/1.1 400", statusLine);
        var rest = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Contains("malformed_json", rest);
        using var alice = node.Client("t-shortbody", "alice");
        Assert.Empty((await alice.ApiGet("/v1/conversations")).Body.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task The_51st_distinct_reaction_on_a_message_conflicts()
    {
        using var alice = node.Client("t-reactions", "alice");
        var id = await alice.CreateGroupAsync();
        await alice.PostMessageAsync(id, "react to me", "r-1");
        for (var i = 0; i < 50; i++)
            Assert.Equal(200, (await alice.ApiPost("/v1/messages/r-1/reactions", new { reaction = $"r{i}" })).Status);
        var (status, body) = await alice.ApiPost("/v1/messages/r-1/reactions", new { reaction = "r50" });
        Assert.Equal(409, status);
        Assert.Equal("conflict", body.Code());
    }

    [Fact]
    public async Task A_deleted_direct_conversation_can_be_created_again_with_a_new_id_and_an_empty_history()
    {
        using var alice = node.Client("t-direct", "alice");
        using var bob = node.Client("t-direct", "bob");
        var (status, first) = await alice.ApiPost("/v1/conversations", new { type = "direct", members = new[] { "bob" } });
        Assert.Equal(201, status);
        var oldId = first.Str("id");
        await alice.PostMessageAsync(oldId, "before the delete", "dm-1");
        Assert.Equal(204, (await alice.ApiDelete($"/v1/conversations/{oldId}")).Status);

        // either side recreates it: a new conversation, and both then find that one
        var (again, second) = await bob.ApiPost("/v1/conversations", new { type = "direct", members = new[] { "alice" } });
        Assert.Equal(201, again);
        var newId = second.Str("id");
        Assert.NotEqual(oldId, newId);
        var (found, third) = await alice.ApiPost("/v1/conversations", new { type = "direct", members = new[] { "bob" } });
        Assert.Equal(200, found);
        Assert.Equal(newId, third.Str("id"));

        // the deleted one stays deleted and its history hidden
        Assert.Equal(404, (await alice.ApiGet($"/v1/conversations/{oldId}")).Status);
        Assert.Equal(404, (await bob.ApiGet($"/v1/messages/conversations/{oldId}")).Status);
        Assert.Equal(0, (await bob.ApiGet($"/v1/messages/conversations/{newId}")).Body.GetProperty("items").GetArrayLength());
        await bob.PostMessageAsync(newId, "after", "dm-2");

        // and deleting the recreated one frees the pair again
        Assert.Equal(204, (await bob.ApiDelete($"/v1/conversations/{newId}")).Status);
        var (fourth, last) = await alice.ApiPost("/v1/conversations", new { type = "direct", members = new[] { "bob" } });
        Assert.Equal(201, fourth);
        Assert.NotEqual(newId, last.Str("id"));
    }

    [Fact]
    public async Task An_unknown_message_id_and_another_conversations_id_answer_the_same_404()
    {
        using var alice = node.Client("t-oracle", "alice");
        using var mallory = node.Client("t-oracle", "mallory");
        var secret = await alice.CreateGroupAsync("bob");
        await alice.PostMessageAsync(secret, "not for mallory", "oracle-real");
        var own = await mallory.CreateGroupAsync();

        static string Shape(JsonElement problem) => JsonSerializer.Serialize(problem.EnumerateObject()
            .Where(p => p.Name is not ("instance" or "request_id")).ToDictionary(p => p.Name, p => p.Value.ToString()));

        var (realStatus, real) = await mallory.ApiGet("/v1/messages/oracle-real");
        var (unknownStatus, unknown) = await mallory.ApiGet("/v1/messages/oracle-never-written");
        Assert.Equal(404, realStatus);
        Assert.Equal(404, unknownStatus);
        Assert.Equal(Shape(unknown), Shape(real));

        // the caller's own message is read at once after the post (read-your-writes), by id
        var posted = await mallory.PostMessageAsync(own, "mine", "oracle-own");
        var (ownStatus, ownBody) = await mallory.ApiGet("/v1/messages/oracle-own");
        Assert.Equal(200, ownStatus);
        Assert.Equal(posted.GetProperty("seq").GetInt64(), ownBody.GetProperty("seq").GetInt64());
        // and alice's id is no more visible to mallory than before
        Assert.Equal(Shape(unknown), Shape((await mallory.ApiGet("/v1/messages/oracle-real")).Body));
    }
}
