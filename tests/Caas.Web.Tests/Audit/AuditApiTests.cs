using System.Text.Json;

namespace Caas.Web.Tests.Audit;

/// <summary>The audit API against a real node on PostgreSQL: replay by time range, state at an instant, access rules, the access log.</summary>
public sealed class AuditApiTests(NodeFixture node) : IClassFixture<NodeFixture>
{
    private static string Q(DateTimeOffset t) => Uri.EscapeDataString(t.ToUniversalTime().ToString("O"));

    /// <summary>An instant strictly between the events before it and the ones after it.</summary>
    private static async Task<DateTimeOffset> MarkAsync()
    {
        await Task.Delay(15);
        var t = DateTimeOffset.UtcNow;
        await Task.Delay(15);
        return t;
    }

    private static async Task<List<JsonElement>> NdjsonAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        Assert.True(200 == (int)response.StatusCode, $"{path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        Assert.Equal("application/x-ndjson", response.Content.Headers.ContentType?.MediaType);
        var lines = new List<JsonElement>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
            if (line.Length > 0) lines.Add(JsonDocument.Parse(line).RootElement.Clone());
        return lines;
    }

    /// <summary>Another user finds a message by id once the read model has it (read-your-writes covers only the writer).</summary>
    private static async Task VisibleAsync(HttpClient reader, string messageId)
    {
        for (var tries = 0; tries < 400 && (await reader.ApiGet($"/v1/messages/{messageId}")).Status != 200; tries++) await Task.Delay(50);
    }

    private static string[] Types(IEnumerable<JsonElement> lines) => [.. lines.Select(l => l.Str("type"))];

    [Fact]
    public async Task Replay_by_time_range_gives_the_exact_events_in_journal_order()
    {
        const string tenant = "t-audit-replay";
        using var alice = node.Client(tenant, "alice");
        using var bob = node.Client(tenant, "bob");
        using var auditor = node.Client(tenant, "auditor", "admin");
        var id = await alice.CreateGroupAsync("bob", "carol");
        var m1 = (await alice.PostMessageAsync(id, "one")).Str("message_id");
        await bob.PostMessageAsync(id, "two");
        var m3 = (await alice.PostMessageAsync(id, "three")).Str("message_id");
        await VisibleAsync(alice, m1);
        await VisibleAsync(alice, m3);
        var tA = await MarkAsync();
        Assert.Equal(200, (await alice.ApiPut($"/v1/messages/{m1}", new { content = new { type = "text", text = "one, edited" } })).Status);
        await VisibleAsync(bob, m1);
        Assert.Equal(200, (await bob.ApiPost($"/v1/messages/{m1}/reactions", new { reaction = "thumbs_up" })).Status);
        Assert.InRange((await alice.ApiDelete($"/v1/messages/{m3}")).Status, 200, 204);
        Assert.InRange((await bob.ApiDelete($"/v1/messages/{m1}/reactions/thumbs_up")).Status, 200, 204);
        var tB = await MarkAsync();
        Assert.Equal(200, (await alice.ApiPost($"/v1/conversations/{id}/moderation/ban", new { user_id = "carol", reason = "spam" })).Status);
        Assert.Equal(200, (await alice.ApiPost($"/v1/conversations/{id}/moderation/mute", new { user_id = "bob", duration_seconds = 600 })).Status);
        Assert.Equal(200, (await alice.ApiPost($"/v1/conversations/{id}/moderation/unmute", new { user_id = "bob" })).Status);
        Assert.Equal(200, (await alice.ApiPut($"/v1/conversations/{id}", new { title = "renamed" })).Status);

        var all = await NdjsonAsync(auditor, $"/v1/admin/audit/conversations/{id}/events");
        Assert.Equal(
        [
            "conv.created.v1", "conv.message-posted.v2", "conv.message-posted.v2", "conv.message-posted.v2",
            "conv.message-edited.v1", "conv.reaction-added.v1", "conv.message-deleted.v1", "conv.reaction-removed.v1",
            "conv.user-banned.v1", "conv.user-muted.v1", "conv.user-unmuted.v1", "conv.updated.v1",
        ], Types(all));
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (long)i), all.Select(l => l.GetProperty("seq").GetInt64()));
        Assert.All(all, l => Assert.Equal($"conversation|{tenant}|{id}", l.Str("persistence_id")));
        Assert.Equal(["alice", "alice", "bob", "alice"], all.Take(4).Select(l => l.Str("actor")));
        Assert.Equal("two", all[2].GetProperty("payload").GetProperty("content").Str("text"));
        Assert.Equal(tenant, all[0].GetProperty("payload").GetProperty("meta").Str("tenant_id"));

        // from inclusive, to exclusive, on the events' own occurred_at
        var middle = await NdjsonAsync(auditor, $"/v1/admin/audit/conversations/{id}/events?from={Q(tA)}&to={Q(tB)}");
        Assert.Equal(["conv.message-edited.v1", "conv.reaction-added.v1", "conv.message-deleted.v1", "conv.reaction-removed.v1"], Types(middle));
        Assert.Equal([5L, 6, 7, 8], middle.Select(l => l.GetProperty("seq").GetInt64()));
        Assert.Equal(["alice", "bob", "alice", "bob"], middle.Select(l => l.Str("actor")));
        Assert.Equal("one, edited", middle[0].GetProperty("payload").GetProperty("content").Str("text"));
        var exact = DateTimeOffset.Parse(middle[1].Str("timestamp"));
        Assert.Equal(["conv.reaction-added.v1"], Types(await NdjsonAsync(auditor,
            $"/v1/admin/audit/conversations/{id}/events?from={Q(exact)}&to={Q(exact.AddTicks(1))}")));
        Assert.Equal(["conv.message-edited.v1"], Types(await NdjsonAsync(auditor,
            $"/v1/admin/audit/conversations/{id}/events?from={Q(tA)}&to={Q(exact)}")));
        var late = await NdjsonAsync(auditor, $"/v1/admin/audit/conversations/{id}/events?from={Q(tB)}");
        Assert.Equal(["conv.user-banned.v1", "conv.user-muted.v1", "conv.user-unmuted.v1", "conv.updated.v1"], Types(late));
        Assert.Equal("spam", late[0].GetProperty("payload").Str("reason"));

        // the tenant's stream: by type (any version, or one version), in journal order
        var posted = await NdjsonAsync(auditor, "/v1/admin/audit/events?type=conv.message-posted");
        Assert.Equal(["one", "two", "three"], posted.Select(l => l.GetProperty("payload").GetProperty("content").Str("text")));
        Assert.Equal(posted.Count, (await NdjsonAsync(auditor, "/v1/admin/audit/events?type=conv.message-posted.v2")).Count);
        var tenantMiddle = await NdjsonAsync(auditor, $"/v1/admin/audit/events?from={Q(tA)}&to={Q(tB)}&type=conv.message-edited");
        Assert.Equal([5L], tenantMiddle.Select(l => l.GetProperty("seq").GetInt64()));
        var everything = await NdjsonAsync(auditor, "/v1/admin/audit/events");
        Assert.Equal(Types(all), Types(everything.Where(l => l.Str("persistence_id").StartsWith("conversation|", StringComparison.Ordinal))));
        Assert.DoesNotContain(everything, l => !l.Str("persistence_id").Contains($"|{tenant}|", StringComparison.Ordinal));
    }

    [Fact]
    public async Task State_at_an_instant_equals_the_state_the_entity_had_then()
    {
        const string tenant = "t-audit-state";
        using var alice = node.Client(tenant, "alice");
        using var auditor = node.Client(tenant, "auditor", "admin");
        var before = DateTimeOffset.UtcNow;
        await Task.Delay(15);
        var id = await alice.CreateGroupAsync("bob");
        var live = new List<(DateTimeOffset At, JsonElement View)>();
        async Task CaptureAsync()
        {
            var (status, view) = await alice.ApiGet($"/v1/conversations/{id}");
            Assert.Equal(200, status);
            live.Add((await MarkAsync(), view));
        }

        await CaptureAsync();
        Assert.Equal(201, (await alice.ApiPost($"/v1/conversations/{id}/members", new { user_id = "carol" })).Status);
        Assert.Equal(200, (await alice.ApiPut($"/v1/conversations/{id}/members/bob/role", new { role = "moderator" })).Status);
        await alice.PostMessageAsync(id, "hello");
        await CaptureAsync();
        Assert.Equal(200, (await alice.ApiPost($"/v1/conversations/{id}/moderation/ban", new { user_id = "carol", reason = "spam" })).Status);
        Assert.Equal(200, (await alice.ApiPost($"/v1/conversations/{id}/moderation/mute", new { user_id = "bob", duration_seconds = 3600 })).Status);
        Assert.Equal(200, (await alice.ApiPut($"/v1/conversations/{id}", new { title = "later title" })).Status);
        await alice.PostMessageAsync(id, "again");
        await CaptureAsync();

        foreach (var (at, view) in live)
        {
            var (status, state) = await auditor.ApiGet($"/v1/admin/audit/conversations/{id}/state?at={Q(at)}");
            Assert.Equal(200, status);
            Assert.True(state.GetProperty("exists").GetBoolean());
            Assert.Equal(view.GetProperty("title").ToString(), state.GetProperty("title").ToString());
            Assert.Equal(view.GetProperty("last_seq").GetInt64(), state.GetProperty("last_seq").GetInt64());
            Assert.Equal(view.Str("created_at"), state.Str("created_at"));
            Assert.Equal(view.GetProperty("members").ToString(), state.GetProperty("members").ToString());
        }

        var (_, early) = await auditor.ApiGet($"/v1/admin/audit/conversations/{id}/state?at={Q(live[1].At)}");
        Assert.Equal(0, early.GetProperty("bans").GetArrayLength());
        Assert.Equal(0, early.GetProperty("mutes").GetArrayLength());
        var (_, last) = await auditor.ApiGet($"/v1/admin/audit/conversations/{id}/state?at={Q(live[2].At)}");
        Assert.Equal("carol", last.GetProperty("bans")[0].Str("user_id"));
        Assert.Equal("spam", last.GetProperty("bans")[0].Str("reason"));
        Assert.Equal("bob", last.GetProperty("mutes")[0].Str("user_id"));
        // the mute had expired an hour and a bit later, though nothing was written since
        var (_, after) = await auditor.ApiGet($"/v1/admin/audit/conversations/{id}/state?at={Q(live[2].At.AddHours(1.1))}");
        Assert.Equal(0, after.GetProperty("mutes").GetArrayLength());
        Assert.Equal(1, after.GetProperty("bans").GetArrayLength());

        var (_, none) = await auditor.ApiGet($"/v1/admin/audit/conversations/{id}/state?at={Q(before)}");
        Assert.False(none.GetProperty("exists").GetBoolean());
        Assert.Equal(0, none.GetProperty("members").GetArrayLength());
    }

    [Fact]
    public async Task Non_admins_get_403_other_tenants_404_bad_parameters_400_and_only_valid_reads_are_logged()
    {
        const string tenant = "t-audit-access";
        using var alice = node.Client(tenant, "alice");
        using var auditor = node.Client(tenant, "auditor", "admin");
        using var stranger = node.Client("t-audit-other", "eve", "admin");
        var id = await alice.CreateGroupAsync();
        await alice.PostMessageAsync(id, "hi");

        foreach (var path in new[]
                 {
                     $"/v1/admin/audit/conversations/{id}/events", "/v1/admin/audit/events",
                     $"/v1/admin/audit/conversations/{id}/state?at={Q(DateTimeOffset.UtcNow)}", "/v1/admin/audit/access-log",
                 })
        {
            var (status, problem) = await alice.ApiGet(path);
            Assert.True(403 == status, path);
            Assert.Equal("forbidden", problem.Code());
        }
        foreach (var path in new[]
                 {
                     $"/v1/admin/audit/conversations/{id}/events", $"/v1/admin/audit/conversations/{id}/state?at={Q(DateTimeOffset.UtcNow)}",
                     "/v1/admin/audit/conversations/no-such-conversation/events",
                 })
        {
            var who = path.Contains("no-such", StringComparison.Ordinal) ? auditor : stranger;
            var (status, problem) = await who.ApiGet(path);
            Assert.True(404 == status, path);
            Assert.Equal("not_found", problem.Code());
        }
        Assert.Empty(await NdjsonAsync(stranger, "/v1/admin/audit/events"));

        var now = DateTimeOffset.UtcNow;
        foreach (var (path, field) in new[]
                 {
                     ($"/v1/admin/audit/conversations/{id}/events?from={Q(now)}&to={Q(now.AddSeconds(-1))}", "to"),
                     ($"/v1/admin/audit/conversations/{id}/events?from=yesterday", "from"),
                     ("/v1/admin/audit/events?to=2026-13-01T00:00:00Z", "to"),
                     ("/v1/admin/audit/events?from=11/23/2026", "from"),
                     ("/v1/admin/audit/events?type=conv.no-such-event", "type"),
                     ($"/v1/admin/audit/conversations/{id}/state", "at"),
                     ($"/v1/admin/audit/conversations/{id}/state?at=2026-11-23", "at"),
                     ("/v1/admin/audit/access-log?limit=0", "limit"),
                 })
        {
            var (status, problem) = await auditor.ApiGet(path);
            Assert.True(400 == status, $"{path}: {status}");
            Assert.Equal("validation_failed", problem.Code());
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{path}: {problem}");
        }

        // Nothing above was recorded: refused and invalid requests change nothing.
        var (_, log0) = await auditor.ApiGet("/v1/admin/audit/access-log");
        Assert.Equal(["access_log"], log0.GetProperty("items").EnumerateArray().Select(i => i.Str("action")));

        await NdjsonAsync(auditor, $"/v1/admin/audit/conversations/{id}/events?from={Q(now.AddMinutes(-5))}");
        await NdjsonAsync(auditor, "/v1/admin/audit/events?type=conv.created");
        Assert.Equal(200, (await auditor.ApiGet($"/v1/admin/audit/conversations/{id}/state?at={Q(now)}")).Status);
        var (_, log) = await auditor.ApiGet("/v1/admin/audit/access-log");
        var items = log.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(["access_log", "state_at", "replay_tenant", "replay_conversation", "access_log"], items.Select(i => i.Str("action")));
        Assert.All(items, i => Assert.Equal("auditor", i.Str("user_id")));
        Assert.Equal(id, items[1].Str("target"));
        Assert.Equal(id, items[3].Str("target"));
        Assert.Contains("type=conv.created", items[2].Str("query"));
        Assert.True(DateTimeOffset.Parse(items[0].Str("at")) >= now.AddSeconds(-1));
        // another tenant's admin sees none of it
        var (_, theirs) = await stranger.ApiGet("/v1/admin/audit/access-log");
        Assert.DoesNotContain(theirs.GetProperty("items").EnumerateArray(), i => i.Str("user_id") == "auditor");
    }
}
