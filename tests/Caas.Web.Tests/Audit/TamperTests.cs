using System.Diagnostics;
using Caas.Node;
using Caas.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Npgsql;

namespace Caas.Web.Tests.Audit;

/// <summary>A node whose PostgreSQL database the test can reach directly, to tamper with the journal.</summary>
public class TamperNodeFixture : IAsyncLifetime
{
    private WebApplication? _app;
    private readonly NodeFixture _tokens = new();

    public string Postgres { get; } = TestDatabases.NewPostgresDatabase("audit");
    public Uri BaseAddress { get; private set; } = null!;
    public IServiceProvider Services => _app!.Services;

    public async Task InitializeAsync()
    {
        _app = await NodeHost.BuildAsync(Configure(new NodeOptions
        {
            Postgres = Postgres, Urls = "http://127.0.0.1:0", JwtSecret = NodeFixture.Secret, LogLevel = "Warning",
            // Only the genesis run at start signs on its own; tests that want checkpoints run them, so none lands mid-test.
            AuditCheckpointInterval = TimeSpan.FromHours(1),
            // The erasure test reads the entities found in a message: they must not depend on the machine's speed.
            ExtraHocon = "caas.pipeline.enrich-budget = 10s",
        }));
        await _app.StartAsync();
        BaseAddress = new Uri(_app.Urls.First());
    }

    protected virtual NodeOptions Configure(NodeOptions options) => options;

    public async Task DisposeAsync()
    {
        if (_app is null) return;
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    public HttpClient Client(string tenant, string user, params string[] roles)
    {
        var client = _tokens.Client(tenant, user, roles);
        client.BaseAddress = BaseAddress;
        return client;
    }

    public async Task<int> ExecuteAsync(string sql, params (string Name, object Value)[] args)
    {
        await using var c = new NpgsqlConnection(Postgres);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, c);
        foreach (var (name, value) in args) cmd.Parameters.AddWithValue(name, value);
        return await cmd.ExecuteNonQueryAsync();
    }
}

/// <summary>The hash chain: intact after real traffic; an edited or removed journal row is named by the verifier (API and CLI).</summary>
public sealed class TamperTests(TamperNodeFixture node) : IClassFixture<TamperNodeFixture>
{
    private static List<(string Pid, long Seq, string Problem)> Broken(System.Text.Json.JsonElement report) =>
        [.. report.GetProperty("broken").EnumerateArray().Select(b => (b.Str("persistence_id"), b.GetProperty("seq").GetInt64(), b.Str("problem")))];

    [Fact]
    public async Task An_edited_or_deleted_journal_row_is_named_and_the_rest_verifies()
    {
        const string tenant = "t-tamper";
        using var alice = node.Client(tenant, "alice");
        using var admin = node.Client(tenant, "root", "admin");
        var id = await alice.CreateGroupAsync("bob");
        var other = await alice.CreateGroupAsync();
        foreach (var text in new[] { "one", "two", "three", "four" }) await alice.PostMessageAsync(id, text);
        await alice.PostMessageAsync(other, "elsewhere");
        Assert.Equal(200, (await alice.ApiPut("/v1/users/me", new { display_name = "Alice" })).Status);
        Assert.Equal(200, (await admin.ApiPut("/v1/admin/tenant/settings", new { message_rate_per_minute = 100 })).Status);
        Assert.Equal(200, (await admin.ApiPut("/v1/admin/tenant/settings", new { message_rate_per_minute = 90 })).Status);

        var (status, clean) = await admin.ApiGet("/v1/admin/audit/verify");
        Assert.Equal(200, status);
        Assert.True(clean.GetProperty("intact").GetBoolean(), clean.ToString());
        Assert.Empty(Broken(clean));
        Assert.Equal(0, clean.GetProperty("unchained").GetInt64());
        // the conversations' 5 + 2 events, the tenant's settings (2) and alice's profile (1), all chained
        Assert.Equal(10, clean.GetProperty("chained").GetInt64());
        Assert.Equal(10, clean.GetProperty("events").GetInt64());
        Assert.Equal(4, clean.GetProperty("entities").GetInt64());

        var pid = $"conversation|{tenant}|{id}";
        // "two" is seq 3 of the conversation (created, one, two, ...): change its sealed content in place, as an intruder would.
        Assert.Equal(1, await node.ExecuteAsync(
            "UPDATE journal SET message = convert_to(regexp_replace(convert_from(message, 'UTF8'), '\"data\":\"(.)', '\"data\":\"\\1\\1'), 'UTF8') " +
            "WHERE persistence_id = @pid AND sequence_number = 3 AND convert_from(message, 'UTF8') LIKE '%\"sealed\"%'", ("pid", pid)));
        var (_, edited) = await admin.ApiGet("/v1/admin/audit/verify");
        Assert.False(edited.GetProperty("intact").GetBoolean());
        Assert.Equal([(pid, 3L, "hash_mismatch")], Broken(edited));

        // An edit that also re-hashes the row cannot fake the next link; removing a row leaves a gap and a broken link.
        Assert.Equal(1, await node.ExecuteAsync("DELETE FROM journal WHERE persistence_id = @pid AND sequence_number = 4", ("pid", pid)));
        var (_, removed) = await admin.ApiGet("/v1/admin/audit/verify");
        var links = Broken(removed);
        Assert.Contains((pid, 3L, "hash_mismatch"), links);
        Assert.Contains((pid, 5L, "sequence_gap: after 3"), links);
        Assert.Contains((pid, 5L, "prev_hash_mismatch"), links);
        Assert.Equal(3, links.Count);

        // Another tenant's verify sees none of this.
        using var stranger = node.Client("t-tamper-other", "root", "admin");
        var (_, theirs) = await stranger.ApiGet("/v1/admin/audit/verify");
        Assert.True(theirs.GetProperty("intact").GetBoolean());
        Assert.Equal(0, theirs.GetProperty("events").GetInt64());
        using var nonAdmin = node.Client(tenant, "alice");
        Assert.Equal(403, (await nonAdmin.ApiGet("/v1/admin/audit/verify")).Status);

        // The command line says the same against the same database, and fails.
        var (exit, output) = await CaasAsync(node.Postgres, "audit", "verify", "--tenant", tenant);
        Assert.Equal(1, exit);
        Assert.Contains($"broken persistence_id={pid} seq=3 problem=hash_mismatch", output);
        Assert.Contains($"broken persistence_id={pid} seq=5 problem=prev_hash_mismatch", output);
        Assert.Contains("broken=3", output.Trim().Split('\n')[^1]);
    }

    internal static async Task<(int Exit, string Output)> CaasAsync(string postgres, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "caas.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(dll);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["CAAS_POSTGRES"] = postgres;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + await stderr);
    }
}
