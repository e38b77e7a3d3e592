namespace Caas.Web.Tests.Audit;

/// <summary>Admin actions (settings, moderation by an admin, erasure) land in the audit access log; reads and refused attempts do not.</summary>
public sealed class AdminActionLogTests(NodeFixture node) : IClassFixture<NodeFixture>
{
    private const string Tenant = "t-admin-actions";

    private static async Task<List<(string Action, string Target, string User)>> LogAsync(HttpClient admin)
    {
        var (status, page) = await admin.ApiGet("/v1/admin/audit/access-log?limit=200");
        Assert.Equal(200, status);
        return [.. page.GetProperty("items").EnumerateArray().Select(i => (i.Str("action"), i.Str("target"), i.Str("user_id")))];
    }

    [Fact]
    public async Task Settings_moderation_and_erasure_by_admins_are_recorded_refused_attempts_are_not()
    {
        using var admin = node.Client(Tenant, "root", "admin");
        using var owner = node.Client(Tenant, "olga");
        using var member = node.Client(Tenant, "mallory");

        Assert.Equal(200, (await admin.ApiPut("/v1/admin/tenant/settings", new { message_rate_per_minute = 120 })).Status);
        var room = await admin.CreateGroupAsync("mallory", "bob");
        Assert.Equal(200, (await admin.ApiPost($"/v1/conversations/{room}/moderation/mute", new { user_id = "bob", duration_seconds = 600 })).Status);
        Assert.Equal(200, (await admin.ApiDelete("/v1/admin/users/zed")).Status);

        // Not admin actions: an owner moderating their own room, a refused admin call, a plain read.
        var own = await owner.CreateGroupAsync("bob");
        Assert.Equal(200, (await owner.ApiPost($"/v1/conversations/{own}/moderation/mute", new { user_id = "bob", duration_seconds = 60 })).Status);
        Assert.Equal(403, (await member.ApiPut("/v1/admin/tenant/settings", new { message_rate_per_minute = 1 })).Status);
        Assert.Equal(200, (await admin.ApiGet("/v1/admin/tenant/settings")).Status);

        var log = await LogAsync(admin);
        Assert.Contains(("admin:PUT /v1/admin/tenant/settings", "/v1/admin/tenant/settings", "root"), log);
        Assert.Contains(("admin:POST /v1/conversations/{id}/moderation/{action}", $"/v1/conversations/{room}/moderation/mute", "root"), log);
        Assert.Contains(("admin:DELETE /v1/admin/users/{userId}", "/v1/admin/users/zed", "root"), log);
        Assert.DoesNotContain(log, e => e.Target.Contains(own) || e.User == "mallory" || e.User == "olga");
        Assert.DoesNotContain(log, e => e.Action.StartsWith("admin:GET", StringComparison.Ordinal));
    }
}
