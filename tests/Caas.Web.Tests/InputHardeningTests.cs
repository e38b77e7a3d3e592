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
