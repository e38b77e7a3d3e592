namespace Caas.Web.Tests;

public sealed class ConversationApiTests(NodeFixture node) : IClassFixture<NodeFixture>
{
    [Fact]
    public async Task Another_tenants_conversation_is_404_never_403()
    {
        using var alice = node.Client("t-iso-a", "alice");
        using var mallory = node.Client("t-iso-b", "alice"); // same user id, other tenant
        var id = await alice.CreateGroupAsync("bob");
        var msg = await alice.PostMessageAsync(id, "secret", "iso-1");

        foreach (var (status, body) in new[]
                 {
                     await mallory.ApiGet($"/v1/conversations/{id}"),
                     await mallory.ApiGet($"/v1/messages/conversations/{id}"),
                     await mallory.ApiPost("/v1/messages", new { conversation_id = id, content = new { type = "text", text = "x" } }),
                     await mallory.ApiGet($"/v1/messages/{msg.Str("message_id")}"),
                     await mallory.ApiPut($"/v1/conversations/{id}", new { title = "pwned" }),
                     await mallory.ApiPost($"/v1/conversations/{id}/members", new { user_id = "mallory" }),
                 })
        {
            Assert.Equal(404, status);
            Assert.Equal("not_found", body.Code());
        }
        Assert.Empty((await mallory.ApiGet("/v1/conversations")).Body.GetProperty("items").EnumerateArray());
        Assert.Equal("g", (await alice.ApiGet($"/v1/conversations/{id}")).Body.Str("title"));
    }

    [Fact]
    public async Task Direct_conversations_are_one_per_pair()
    {
        using var alice = node.Client("t-dm", "alice");
        using var bob = node.Client("t-dm", "bob");
        var (first, a) = await alice.ApiPost("/v1/conversations", new { type = "direct", members = new[] { "bob" } });
        var (second, b) = await bob.ApiPost("/v1/conversations", new { type = "direct", members = new[] { "alice" } });
        Assert.Equal(201, first);
        Assert.Equal(200, second);
        Assert.Equal(a.Str("id"), b.Str("id"));
        Assert.Equal(2, b.GetProperty("members").GetArrayLength());
        var (three, problem) = await alice.ApiPost("/v1/conversations", new { type = "direct", members = new[] { "bob", "carol" } });
        Assert.Equal(400, three);
        Assert.True(problem.GetProperty("errors").TryGetProperty("members", out _));
    }

    [Fact]
    public async Task Roles_are_ordered_and_the_last_owner_cannot_leave()
    {
        using var owner = node.Client("t-roles", "owner");
        using var admin = node.Client("t-roles", "admin");
        using var mod = node.Client("t-roles", "mod");
        var id = await owner.CreateGroupAsync("admin", "mod", "member");
        Assert.Equal(200, (await owner.ApiPut($"/v1/conversations/{id}/members/admin/role", new { role = "admin" })).Status);
        Assert.Equal(200, (await owner.ApiPut($"/v1/conversations/{id}/members/mod/role", new { role = "moderator" })).Status);

        // nobody acts on a peer or a superior
        Assert.Equal("forbidden", (await admin.ApiPut($"/v1/conversations/{id}/members/owner/role", new { role = "member" })).Body.Code());
        Assert.Equal("forbidden", (await mod.ApiPut($"/v1/conversations/{id}/members/member/role", new { role = "moderator" })).Body.Code());
        Assert.Equal("forbidden", (await admin.ApiPost($"/v1/conversations/{id}/members", new { user_id = "x", role = "admin" })).Body.Code());
        Assert.Equal("forbidden", (await mod.ApiPut($"/v1/conversations/{id}", new { title = "t" })).Body.Code());
        Assert.Equal("forbidden", (await admin.ApiDelete($"/v1/conversations/{id}")).Body.Code());
        Assert.Equal(201, (await admin.ApiPost($"/v1/conversations/{id}/members", new { user_id = "new", role = "moderator" })).Status);

        var (status, body) = await owner.ApiDelete($"/v1/conversations/{id}/members/owner");
        Assert.Equal(409, status);
        Assert.Equal("last_owner", body.Code());
        Assert.Equal(204, (await mod.ApiDelete($"/v1/conversations/{id}/members/mod")).Status);
        Assert.Equal(404, (await mod.ApiGet($"/v1/conversations/{id}")).Status);
        Assert.Equal(204, (await owner.ApiDelete($"/v1/conversations/{id}")).Status);
        Assert.Equal(404, (await owner.ApiGet($"/v1/conversations/{id}")).Status);
    }

    [Fact]
    public async Task Banned_muted_and_non_members_are_refused_with_their_codes()
    {
        using var owner = node.Client("t-mod", "owner");
        using var bob = node.Client("t-mod", "bob");
        using var carol = node.Client("t-mod", "carol");
        using var stranger = node.Client("t-mod", "stranger");
        var id = await owner.CreateGroupAsync("bob", "carol");

        Assert.Equal("not_found", (await stranger.ApiPost("/v1/messages", new { conversation_id = id, content = new { type = "text", text = "hi" } })).Body.Code());
        Assert.Equal(200, (await owner.ApiPost($"/v1/conversations/{id}/moderation/mute", new { user_id = "bob", duration_seconds = 600, reason = "flood" })).Status);
        Assert.Equal("muted", (await bob.ApiPost("/v1/messages", new { conversation_id = id, content = new { type = "text", text = "hi" } })).Body.Code());
        Assert.Equal(200, (await owner.ApiPost($"/v1/conversations/{id}/moderation/ban", new { user_id = "carol", reason = "abuse" })).Status);
        var (status, body) = await carol.ApiPost("/v1/messages", new { conversation_id = id, content = new { type = "text", text = "hi" } });
        Assert.Equal(403, status);
        Assert.Equal("banned", body.Code());
        Assert.Equal("banned", (await owner.ApiPost($"/v1/conversations/{id}/members", new { user_id = "carol" })).Body.Code());
        Assert.Equal("forbidden", (await bob.ApiPost($"/v1/conversations/{id}/moderation/kick", new { user_id = "owner" })).Body.Code());
        Assert.Equal(200, (await owner.ApiPost($"/v1/conversations/{id}/moderation/unmute", new { user_id = "bob" })).Status);
        await bob.PostMessageAsync(id, "back");

        var log = (await owner.ApiGet($"/v1/conversations/{id}/moderation/log")).Body.GetProperty("items").EnumerateArray().Select(x => x.Str("action")).ToList();
        for (var i = 0; i < 600 && log.Count < 3; i++)
        {
            await Task.Delay(100);
            log = (await owner.ApiGet($"/v1/conversations/{id}/moderation/log")).Body.GetProperty("items").EnumerateArray().Select(x => x.Str("action")).ToList();
        }
        Assert.Equal(["unmute", "ban", "mute"], log);
        Assert.Equal("forbidden", (await bob.ApiGet($"/v1/conversations/{id}/moderation/log")).Body.Code());
    }

    [Fact]
    public async Task Read_markers_presence_and_profile()
    {
        using var alice = node.Client("t-me", "alice");
        var id = await alice.CreateGroupAsync();
        await alice.PostMessageAsync(id, "one");
        await alice.PostMessageAsync(id, "two");
        var (status, read) = await alice.ApiPut($"/v1/conversations/{id}/read", new { seq = 2 });
        Assert.Equal(200, status);
        Assert.Equal(2, read.GetProperty("seq").GetInt64());
        Assert.Equal(1 + 1, (await alice.ApiPut($"/v1/conversations/{id}/read", new { seq = 1 })).Body.GetProperty("seq").GetInt64());
        Assert.Equal("validation_failed", (await alice.ApiPut($"/v1/conversations/{id}/read", new { seq = 3 })).Body.Code());

        var (_, presence) = await alice.ApiGet("/v1/users/bob/presence");
        Assert.Equal("offline", presence.Str("status"));

        var (ok, profile) = await alice.ApiPut("/v1/users/me", new { display_name = "Alice", time_zone = "Europe/Paris", locale = "fr-FR" });
        Assert.Equal(200, ok);
        Assert.Equal("Europe/Paris", profile.Str("time_zone"));
        Assert.Equal("Alice", (await alice.ApiGet("/v1/users/me")).Body.Str("display_name"));
        var (bad, problem) = await alice.ApiPut("/v1/users/me", new { time_zone = "Mars/Olympus" });
        Assert.Equal(400, bad);
        Assert.True(problem.GetProperty("errors").TryGetProperty("time_zone", out _));
    }
}
