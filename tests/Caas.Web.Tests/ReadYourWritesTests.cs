using Caas.Node;
using Caas.Tests.Shared;
using Caas.Web.Tests.Hubs;
using Microsoft.AspNetCore.Builder;

namespace Caas.Web.Tests;

/// <summary>
/// A node that runs no projection (as when the projection's node died and the singleton has not moved yet): the read
/// model stays empty, and a client still reads its own acknowledged writes, merged from the journal once the bounded
/// wait for the read model's progress mark runs out.
/// </summary>
public sealed class ReadYourWritesTests : IAsyncLifetime
{
    private WebApplication? _app;
    private HttpClient? _alice;

    public async Task InitializeAsync()
    {
        _app = await NodeHost.BuildAsync(new NodeOptions
        {
            Postgres = TestDatabases.NewPostgresDatabase("ryw"),
            Urls = "http://127.0.0.1:0",
            JwtSecret = NodeFixture.Secret,
            LogLevel = "Warning",
            Roles = [NodeOptions.RoleApi, NodeOptions.RoleEntities],
        });
        await _app.StartAsync();
        _alice = Client("alice");
    }

    private HttpClient Client(string user) =>
        new HttpClient { BaseAddress = new Uri(_app!.Urls.First()), Timeout = TimeSpan.FromSeconds(30) }.WithBearer(user);

    public async Task DisposeAsync()
    {
        _alice?.Dispose();
        if (_app is not null) await _app.DisposeAsync();
    }

    [Fact]
    public async Task Acknowledged_messages_are_listed_even_when_the_projection_is_stalled()
    {
        var id = await _alice!.CreateGroupAsync();
        for (var i = 1; i <= 5; i++) await _alice!.PostMessageAsync(id, $"m{i}", $"ryw-{i}");

        var (status, page) = await _alice!.ApiGet($"/v1/messages/conversations/{id}?limit=3");
        Assert.Equal(200, status);
        var items = page.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal([5L, 4L, 3L], items.Select(m => m.GetProperty("seq").GetInt64()));
        Assert.Equal("m4", items[1].GetProperty("content").Str("text"));

        var (_, catchUp) = await _alice!.ApiGet($"/v1/messages/conversations/{id}?after_seq=1&limit=10");
        Assert.Equal([2L, 3L, 4L, 5L], catchUp.GetProperty("items").EnumerateArray().Select(m => m.GetProperty("seq").GetInt64()));
    }

    [Fact]
    public async Task A_mute_is_in_the_moderation_log_at_once_even_when_the_projection_is_stalled()
    {
        var id = await _alice!.CreateGroupAsync("bob");
        var (status, _) = await _alice!.ApiPost($"/v1/conversations/{id}/moderation/mute", new { user_id = "bob", duration_seconds = 600, reason = "spam" });
        Assert.Equal(200, status);

        var (logStatus, log) = await _alice!.ApiGet($"/v1/conversations/{id}/moderation/log");
        Assert.Equal(200, logStatus);
        var entry = Assert.Single(log.GetProperty("items").EnumerateArray());
        Assert.Equal("mute", entry.Str("action"));
        Assert.Equal("bob", entry.Str("user_id"));
        Assert.Equal("spam", entry.Str("reason"));
    }

    [Fact]
    public async Task The_callers_conversations_and_member_changes_are_in_the_list_even_when_the_projection_is_stalled()
    {
        var id = await _alice!.CreateGroupAsync();
        Assert.Equal(201, (await _alice!.ApiPost($"/v1/conversations/{id}/members", new { user_id = "bob", role = "moderator" })).Status);

        var (status, list) = await _alice!.ApiGet("/v1/conversations");
        Assert.Equal(200, status);
        var mine = Assert.Single(list.GetProperty("items").EnumerateArray(), c => c.Str("id") == id);
        Assert.Equal("moderator", mine.GetProperty("members").EnumerateArray().Single(m => m.Str("user_id") == "bob").Str("role"));

        Assert.Equal(204, (await _alice!.ApiDelete($"/v1/conversations/{id}")).Status);
        var (_, after) = await _alice!.ApiGet("/v1/conversations");
        Assert.DoesNotContain(id, after.GetProperty("items").EnumerateArray().Select(c => c.Str("id")));
    }

    [Fact]
    public async Task Hub_writes_are_in_the_hubs_history_and_the_rest_list_at_once_even_when_the_projection_is_stalled()
    {
        var id = await _alice!.CreateGroupAsync();
        await using var hub = await HubClient.ConnectAsync(new Uri(_app!.Urls.First()), new global::Caas.Web.Auth.JwtSettings(NodeFixture.Secret, null, null, null).Issue("t-ryw", "alice"));
        var first = await hub.SendAsync(id, "first");
        var second = await hub.SendAsync(id, "second");
        await hub.Ok("EditMessage", new { conversation_id = id, seq = first.GetProperty("seq").GetInt64(), content = new { type = "text", text = "first, edited" } });
        await hub.Ok("React", new { conversation_id = id, seq = second.GetProperty("seq").GetInt64(), reaction = "👍" });

        var history = await hub.Ok("GetHistory", new { conversation_id = id });
        var items = history.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal([2L, 1L], items.Select(m => m.GetProperty("seq").GetInt64()));
        Assert.Equal("first, edited", items[1].GetProperty("content").Str("text"));
        Assert.Equal(["alice"], items[0].GetProperty("reactions").GetProperty("👍").EnumerateArray().Select(u => u.GetString()));

        var (_, page) = await _alice!.ApiGet($"/v1/messages/conversations/{id}");
        var rest = page.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal("first, edited", rest[1].GetProperty("content").Str("text"));
        Assert.Equal(["alice"], rest[0].GetProperty("reactions").GetProperty("👍").EnumerateArray().Select(u => u.GetString()));
    }
}

/// <summary>
/// A node whose projection runs but trails the entities (it polls the journal every 300 ms): every acknowledged write
/// is in the caller's very next read, without the caller waiting or retrying.
/// </summary>
public sealed class ReadYourWritesLiveTests : IAsyncLifetime
{
    private WebApplication? _app;

    public async Task InitializeAsync()
    {
        _app = await NodeHost.BuildAsync(new NodeOptions
        {
            Postgres = TestDatabases.NewPostgresDatabase("rywlive"),
            Urls = "http://127.0.0.1:0",
            JwtSecret = NodeFixture.Secret,
            LogLevel = "Warning",
            ExtraHocon = "akka.persistence.query.journal.sql.refresh-interval = 300ms",
        });
        await _app.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
    }

    private HttpClient Client(string user) =>
        new HttpClient { BaseAddress = new Uri(_app!.Urls.First()), Timeout = TimeSpan.FromSeconds(30) }.WithBearer(user, "t-live");

    [Fact]
    public async Task A_mute_is_in_the_next_moderation_log_read()
    {
        using var alice = Client("alice");
        var id = await alice.CreateGroupAsync("bob");
        for (var round = 0; round < 3; round++)
        {
            var action = round % 2 == 0 ? "mute" : "unmute";
            var (status, _) = await alice.ApiPost($"/v1/conversations/{id}/moderation/{action}", new { user_id = "bob" });
            Assert.Equal(200, status);
            var (_, log) = await alice.ApiGet($"/v1/conversations/{id}/moderation/log");
            var items = log.GetProperty("items").EnumerateArray().ToList();
            Assert.Equal(round + 1, items.Count);
            Assert.Equal(action, items[0].Str("action"));
        }
    }

    [Fact]
    public async Task A_reaction_an_edit_and_a_delete_are_in_the_next_read_of_the_message()
    {
        using var alice = Client("alice");
        var id = await alice.CreateGroupAsync();
        await alice.PostMessageAsync(id, "hello", "live-m1");
        await alice.PostMessageAsync(id, "other", "live-m2");

        Assert.Equal(200, (await alice.ApiPost("/v1/messages/live-m1/reactions", new { reaction = "🎉" })).Status);
        var (_, reacted) = await alice.ApiGet("/v1/messages/live-m1");
        Assert.Equal(["alice"], reacted.GetProperty("reactions").GetProperty("🎉").EnumerateArray().Select(u => u.GetString()));

        Assert.Equal(200, (await alice.ApiPut("/v1/messages/live-m1", new { content = new { type = "text", text = "hello, edited" } })).Status);
        var (_, page) = await alice.ApiGet($"/v1/messages/conversations/{id}");
        Assert.Equal("hello, edited", page.GetProperty("items").EnumerateArray().Single(m => m.Str("message_id") == "live-m1").GetProperty("content").Str("text"));

        Assert.Equal(200, (await alice.ApiDelete("/v1/messages/live-m2")).Status);
        var (_, deleted) = await alice.ApiGet("/v1/messages/live-m2");
        Assert.True(deleted.GetProperty("deleted").GetBoolean());
    }

    [Fact]
    public async Task Memberships_and_roles_are_in_the_next_conversation_list()
    {
        using var alice = Client("alice");
        var id = await alice.CreateGroupAsync();
        var (_, list) = await alice.ApiGet("/v1/conversations");
        Assert.Contains(id, list.GetProperty("items").EnumerateArray().Select(c => c.Str("id")));

        Assert.Equal(201, (await alice.ApiPost($"/v1/conversations/{id}/members", new { user_id = "bob" })).Status);
        Assert.Equal("member", RoleIn(await alice.ApiGet("/v1/conversations"), id, "bob"));

        Assert.Equal(200, (await alice.ApiPut($"/v1/conversations/{id}/members/bob/role", new { role = "moderator" })).Status);
        Assert.Equal("moderator", RoleIn(await alice.ApiGet("/v1/conversations"), id, "bob"));

        Assert.Equal(204, (await alice.ApiDelete($"/v1/conversations/{id}/members/bob")).Status);
        Assert.Null(RoleIn(await alice.ApiGet("/v1/conversations"), id, "bob"));
    }

    private static string? RoleIn((int Status, System.Text.Json.JsonElement Body) list, string conversation, string user)
    {
        Assert.Equal(200, list.Status);
        var c = list.Body.GetProperty("items").EnumerateArray().Single(x => x.Str("id") == conversation);
        return c.GetProperty("members").EnumerateArray().Where(m => m.Str("user_id") == user).Select(m => m.Str("role")).SingleOrDefault();
    }

    [Fact]
    public async Task Profile_and_tenant_settings_are_in_the_next_read()
    {
        using var alice = Client("alice");
        Assert.Equal(200, (await alice.ApiPut("/v1/users/me", new { display_name = "Alice A.", time_zone = "Europe/Paris" })).Status);
        var (_, me) = await alice.ApiGet("/v1/users/me");
        Assert.Equal("Alice A.", me.Str("display_name"));

        using var admin = new HttpClient { BaseAddress = new Uri(_app!.Urls.First()) }.WithBearer("root", "t-live", "admin");
        Assert.Equal(200, (await admin.ApiPut("/v1/admin/tenant/settings", new { max_message_chars = 1234 })).Status);
        var (_, settings) = await admin.ApiGet("/v1/admin/tenant/settings");
        Assert.Equal(1234, settings.GetProperty("max_message_chars").GetInt32());
    }

    [Fact]
    public async Task Hub_edits_and_reactions_are_in_the_next_GetHistory()
    {
        using var alice = Client("alice");
        var id = await alice.CreateGroupAsync();
        await using var hub = await HubClient.ConnectAsync(new Uri(_app!.Urls.First()), new global::Caas.Web.Auth.JwtSettings(NodeFixture.Secret, null, null, null).Issue("t-live", "alice"));
        for (var round = 1; round <= 3; round++)
        {
            var sent = await hub.SendAsync(id, $"m{round}");
            var seq = sent.GetProperty("seq").GetInt64();
            Assert.Equal(seq, (await hub.Ok("GetHistory", new { conversation_id = id, limit = 1 })).GetProperty("items")[0].GetProperty("seq").GetInt64());
            await hub.Ok("EditMessage", new { conversation_id = id, seq, content = new { type = "text", text = $"m{round}, edited" } });
            var history = await hub.Ok("GetHistory", new { conversation_id = id, limit = 1 });
            Assert.Equal($"m{round}, edited", history.GetProperty("items")[0].GetProperty("content").Str("text"));
            await hub.Ok("React", new { conversation_id = id, seq, reaction = "ok" });
            history = await hub.Ok("GetHistory", new { conversation_id = id, limit = 1 });
            Assert.True(history.GetProperty("items")[0].GetProperty("reactions").TryGetProperty("ok", out _), history.ToString());
        }
    }
}

internal static class Bearer
{
    public static HttpClient WithBearer(this HttpClient client, string user, string tenant = "t-ryw", params string[] roles)
    {
        client.DefaultRequestHeaders.Authorization = new("Bearer", new global::Caas.Web.Auth.JwtSettings(NodeFixture.Secret, null, null, null).Issue(tenant, user, roles));
        return client;
    }
}
