using System.Text.Json;
using Npgsql;

namespace Caas.Web.Tests.Audit;

/// <summary>
/// The erasure is recorded before any key is destroyed: when destroying the keys fails (here a trigger on the real
/// PostgreSQL key table refuses the update), the journal already holds the <c>user_erased</c> event, and a retry
/// completes the erasure.
/// </summary>
public sealed class ErasureOrderTests(TamperNodeFixture node) : IClassFixture<TamperNodeFixture>
{
    private const string Tenant = "t-erase-order";

    private async Task<long> ErasedEventsAsync(string user)
    {
        await using var c = new NpgsqlConnection(node.Postgres);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand(
            "SELECT count(*) FROM journal WHERE manifest LIKE '%user-erased%' AND convert_from(message, 'UTF8') LIKE @u", c);
        cmd.Parameters.AddWithValue("u", $"%\"user_id\":\"{user}\"%");
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    private async Task<long> LiveKeysAsync(string user)
    {
        await using var c = new NpgsqlConnection(node.Postgres);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM caas_ops.data_keys WHERE tenant_id = @t AND user_id = @u AND destroyed_at IS NULL", c);
        cmd.Parameters.AddWithValue("t", Tenant);
        cmd.Parameters.AddWithValue("u", user);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task A_failed_key_destruction_leaves_the_recorded_erasure_and_a_retry_completes_it()
    {
        using var alice = node.Client(Tenant, "carol");
        using var admin = node.Client(Tenant, "root", "admin");
        var room = await alice.CreateGroupAsync("dave");
        await alice.PostMessageAsync(room, "carol's secret");
        Assert.Equal(1, await LiveKeysAsync("carol"));

        await node.ExecuteAsync("""
            CREATE OR REPLACE FUNCTION refuse_key_destruction() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'injected failure: data_keys is read-only'; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_key_destruction BEFORE UPDATE ON caas_ops.data_keys FOR EACH ROW EXECUTE FUNCTION refuse_key_destruction();
            """);
        try
        {
            var (failed, _) = await admin.ApiDelete("/v1/admin/users/carol");
            Assert.Equal(500, failed);
            // Nothing was destroyed, but the erasure (the intent) is on record.
            Assert.Equal(1, await LiveKeysAsync("carol"));
            Assert.Equal(1, await ErasedEventsAsync("carol"));
        }
        finally
        {
            await node.ExecuteAsync("DROP TRIGGER refuse_key_destruction ON caas_ops.data_keys; DROP FUNCTION refuse_key_destruction();");
        }

        var (status, report) = await admin.ApiDelete("/v1/admin/users/carol");
        Assert.Equal(200, status);
        Assert.Equal(0, await LiveKeysAsync("carol"));
        Assert.Equal(2, await ErasedEventsAsync("carol"));
        Assert.True(report.TryGetProperty("keys_destroyed", out var keys), report.ToString());
        Assert.Equal(1, keys.GetArrayLength());
    }
}
