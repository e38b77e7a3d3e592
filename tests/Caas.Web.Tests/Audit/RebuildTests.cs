using System.Text;
using Npgsql;

namespace Caas.Web.Tests.Audit;

/// <summary>A read-model rebuild from the journal, while the node serves, equals the live read model row for row.</summary>
public sealed class RebuildTests(TamperNodeFixture node) : IClassFixture<TamperNodeFixture>
{
    private static readonly string[] Tables =
    [
        "SELECT * FROM rm_conversations ORDER BY tenant_id, conversation_id",
        "SELECT * FROM rm_memberships ORDER BY tenant_id, conversation_id, user_id",
        "SELECT * FROM rm_people ORDER BY tenant_id, user_id",
        "SELECT * FROM rm_messages ORDER BY tenant_id, conversation_id, seq",
        "SELECT * FROM rm_moderation_log ORDER BY tenant_id, conversation_id, journal_offset",
    ];

    private async Task<List<string>> RowsAsync()
    {
        var rows = new List<string>();
        await using var c = new NpgsqlConnection(node.Postgres);
        await c.OpenAsync();
        foreach (var sql in Tables)
        {
            await using var cmd = new NpgsqlCommand(sql, c);
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                var row = new StringBuilder(sql[14..30]);
                for (var i = 0; i < reader.FieldCount; i++) row.Append('|').Append(reader.GetName(i)).Append('=').Append(reader.GetValue(i));
                rows.Add(row.ToString());
            }
        }
        return rows;
    }

    private async Task<long> ScalarAsync(string sql)
    {
        await using var c = new NpgsqlConnection(node.Postgres);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, c);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync() ?? 0L);
    }

    /// <summary>The live projection has written every conversation event in the journal.</summary>
    private async Task CaughtUpAsync()
    {
        for (var i = 0; i < 200; i++)
        {
            var last = await ScalarAsync("SELECT COALESCE(MAX(ordering), 0) FROM journal WHERE persistence_id LIKE 'conversation|%'");
            if (await ScalarAsync("SELECT COALESCE(MAX(last_offset), 0) FROM rm_projection_offsets WHERE name = 'conversations'") >= last) return;
            await Task.Delay(50);
        }
        Assert.Fail("the projection did not catch up");
    }

    [Fact]
    public async Task A_rebuild_while_serving_equals_the_live_read_model_row_for_row()
    {
        using var alice = node.Client("t-rebuild", "alice");
        using var bob = node.Client("t-rebuild", "bob");
        using var carol = node.Client("t-rebuild-2", "carol");
        var room = await alice.CreateGroupAsync("bob", "dave");
        var other = await carol.CreateGroupAsync();
        var ids = new List<string>();
        for (var i = 0; i < 12; i++) ids.Add((await alice.PostMessageAsync(room, $"m{i}")).Str("message_id"));
        for (var i = 0; i < 5; i++) await bob.PostMessageAsync(room, $"b{i}");
        for (var i = 0; i < 5; i++) await carol.PostMessageAsync(other, $"c{i}");
        await CaughtUpAsync();
        Assert.Equal(200, (await alice.ApiPut($"/v1/messages/{ids[1]}", new { content = new { type = "text", text = "m1 edited" } })).Status);
        Assert.Equal(200, (await alice.ApiPut($"/v1/messages/{ids[1]}", new { content = new { type = "text", text = "m1 edited twice" } })).Status);
        Assert.Equal(200, (await bob.ApiPost($"/v1/messages/{ids[2]}/reactions", new { reaction = "heart" })).Status);
        Assert.InRange((await alice.ApiDelete($"/v1/messages/{ids[3]}")).Status, 200, 204);
        Assert.Equal(200, (await alice.ApiPost($"/v1/conversations/{room}/moderation/kick", new { user_id = "dave", reason = "bye" })).Status);
        Assert.Equal(200, (await alice.ApiPost($"/v1/conversations/{room}/moderation/mute", new { user_id = "bob", duration_seconds = 60 })).Status);
        Assert.Equal(200, (await alice.ApiPut($"/v1/conversations/{room}", new { title = "renamed" })).Status);
        await CaughtUpAsync();
        var live = await RowsAsync();
        Assert.Equal(2 + 3 + 3 + 22 + 2, live.Count); // conversations, memberships (dave was kicked), people (alice, bob, carol), messages, moderation log

        // Damage the read model; the rebuild comes from the journal, so it must not keep this.
        await using (var c = new NpgsqlConnection(node.Postgres))
        {
            await c.OpenAsync();
            await new NpgsqlCommand("UPDATE rm_messages SET text = 'damaged' WHERE seq = 1", c).ExecuteNonQueryAsync();
            await new NpgsqlCommand("DELETE FROM rm_memberships WHERE user_id = 'bob'", c).ExecuteNonQueryAsync();
            await new NpgsqlCommand("DELETE FROM rm_people WHERE user_id = 'bob'", c).ExecuteNonQueryAsync();
        }
        Assert.NotEqual(live, await RowsAsync());

        using var op = node.Client("t-rebuild", "ops", "operator");
        Assert.Equal(403, (await alice.ApiPost("/v1/admin/projections/conversations/rebuild", null)).Status);
        Assert.Equal(403, (await node.Client("t-rebuild", "root", "admin").ApiPost("/v1/admin/projections/conversations/rebuild", null)).Status);
        Assert.Equal(404, (await op.ApiPost("/v1/admin/projections/no-such/rebuild", null)).Status);
        var (status, started) = await op.ApiPost("/v1/admin/projections/conversations/rebuild", null);
        Assert.Equal(202, status);
        var target = started.GetProperty("target_offset").GetInt64();
        Assert.True(target > 0);

        // The node keeps serving while it rebuilds.
        using (var reader = node.Client("t-rebuild", "auditor", "admin"))
            Assert.Equal(200, (await reader.ApiGet($"/v1/admin/audit/conversations/{room}/state?at={Uri.EscapeDataString(DateTimeOffset.UtcNow.ToString("O"))}")).Status);

        string state = "";
        for (var i = 0; i < 2_400 && state != "done"; i++) // up to two minutes on a loaded machine
        {
            await Task.Delay(50);
            var (_, progress) = await op.ApiGet("/v1/admin/projections/conversations/rebuild");
            state = progress.Str("state");
            Assert.Equal(target, progress.GetProperty("target_offset").GetInt64());
        }
        Assert.Equal("done", state);
        await CaughtUpAsync();
        Assert.Equal(live, await RowsAsync());

        // ...and goes on projecting new events after it.
        await alice.PostMessageAsync(room, "after the rebuild");
        await CaughtUpAsync();
        Assert.Equal(live.Count + 1, (await RowsAsync()).Count);
        using var metrics = new HttpClient { BaseAddress = node.BaseAddress };
        Assert.Contains("caas_projection_rebuild_target_offset{projection=\"conversations\"} " + target, await metrics.GetStringAsync("/metrics"));
        // The runner exports every projection's lag behind the journal's head, sampled once a second.
        var exported = "";
        for (var i = 0; i < 600 && !(exported.Contains("caas_projection_lag_events{projection=\"conversations\"}")
                                     && HeadOffset(exported) > target); i++)
        {
            await Task.Delay(100);
            exported = await metrics.GetStringAsync("/metrics");
        }
        Assert.Contains("caas_projection_lag_events{projection=\"conversations\"}", exported);
        Assert.True(HeadOffset(exported) > target, "the journal head is sampled past the rebuild's target");
    }

    private static long HeadOffset(string metrics) =>
        metrics.Split('\n').FirstOrDefault(l => l.StartsWith("caas_journal_head_offset ")) is { } line
            ? (long)double.Parse(line["caas_journal_head_offset ".Length..], System.Globalization.CultureInfo.InvariantCulture)
            : -1;
}
