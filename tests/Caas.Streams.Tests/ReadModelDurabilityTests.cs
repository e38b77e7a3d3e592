using System.Data.Common;
using Caas.Actors.Hosting;
using Caas.Streams.Operational;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;

namespace Caas.Streams.Tests;

/// <summary>
/// The read model (projections only, rebuilt from the journal) does not wait for each commit's flush unless
/// <c>CAAS_READMODEL_SYNC=full</c>; the operational store (keys, claims, dead letters: not rebuildable) always does.
/// Checked by asking each real database what its session runs with.
/// </summary>
public sealed class ReadModelDurabilityTests
{
    [Theory]
    [InlineData("postgres", false)]
    [InlineData("postgres", true)]
    [InlineData("sqlite", false)]
    [InlineData("sqlite", true)]
    public async Task The_read_model_flushes_each_commit_only_when_asked_and_the_operational_store_always(string kind, bool full)
    {
        var storage = TestDatabases.Storage(kind) with { ReadModelFlushesEachCommit = full };

        await using var readModel = new ReadModelStore(storage);
        await readModel.EnsureSchemaAsync();
        await using (var connection = await readModel.OpenAsync())
            Assert.Equal(full ? Flushing(kind) : Relaxed(kind), await SettingAsync(connection, kind));

        await using var operational = new OperationalStore(storage);
        await operational.MigrateAsync();
        await using (var connection = await operational.OpenAsync())
            Assert.Equal(Flushing(kind), await SettingAsync(connection, kind));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_read_models_file_checkpoints_its_WAL_every_20000_pages_and_the_operational_store_at_SQLites_default(bool full)
    {
        var storage = TestDatabases.Storage("sqlite") with { ReadModelFlushesEachCommit = full };
        await using var readModel = new ReadModelStore(storage);
        await readModel.EnsureSchemaAsync();
        await using (var connection = await readModel.OpenAsync())
            Assert.Equal(SqliteWaits.ProjectionWalAutocheckpointPages, await PragmaAsync(connection, "wal_autocheckpoint"));
        Assert.Equal(20_000, SqliteWaits.ProjectionWalAutocheckpointPages);

        await using var operational = new OperationalStore(storage);
        await operational.MigrateAsync();
        await using (var connection = await operational.OpenAsync())
            Assert.Equal(1_000, await PragmaAsync(connection, "wal_autocheckpoint"));
    }

    [Fact]
    public async Task A_pooled_SQLite_connection_keeps_its_settings_and_is_not_configured_again_on_each_open()
    {
        var storage = TestDatabases.Storage("sqlite");
        await using var readModel = new ReadModelStore(storage);
        await readModel.EnsureSchemaAsync();
        // An empty pool for this file (the schema's connections closed), so the next open's connection is the one
        // the pool hands back after it.
        await using (var seed = (Microsoft.Data.Sqlite.SqliteConnection)await readModel.OpenAsync())
            Microsoft.Data.Sqlite.SqliteConnection.ClearPool(seed);

        SQLitePCL.sqlite3 handle;
        await using (var first = (Microsoft.Data.Sqlite.SqliteConnection)await readModel.OpenAsync())
        {
            handle = first.Handle!;
            Assert.Equal(SqliteWaits.BusyTimeoutMs, await PragmaAsync(first, "busy_timeout"));
            Assert.Equal(1, await PragmaAsync(first, "synchronous"));
            await using var change = first.CreateCommand();
            change.CommandText = "PRAGMA busy_timeout = 1234";
            await change.ExecuteNonQueryAsync();
        }

        // Back from the pool: the same SQLite connection, its settings as it left them (not set again).
        await using (var again = (Microsoft.Data.Sqlite.SqliteConnection)await readModel.OpenAsync())
        {
            Assert.Same(handle, again.Handle);
            Assert.Equal(1234, await PragmaAsync(again, "busy_timeout"));
            Assert.Equal(1, await PragmaAsync(again, "synchronous"));
            Microsoft.Data.Sqlite.SqliteConnection.ClearPool(again); // closed, not pooled, once disposed
        }

        // A connection SQLite opens anew is configured.
        await using (var fresh = (Microsoft.Data.Sqlite.SqliteConnection)await readModel.OpenAsync())
        {
            Assert.NotSame(handle, fresh.Handle);
            Assert.Equal(SqliteWaits.BusyTimeoutMs, await PragmaAsync(fresh, "busy_timeout"));
            Assert.Equal(1, await PragmaAsync(fresh, "synchronous"));
            Assert.Equal(SqliteWaits.ProjectionWalAutocheckpointPages, await PragmaAsync(fresh, "wal_autocheckpoint"));
        }
    }

    private static async Task<long> PragmaAsync(DbConnection connection, string pragma)
    {
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "PRAGMA " + pragma;
        return Convert.ToInt64(await cmd.ExecuteScalarAsync());
    }

    // SQLite: synchronous FULL = 2, NORMAL = 1. PostgreSQL: synchronous_commit off set by the session itself, or
    // whatever the server is configured with (the test server runs with it off for speed; production keeps it on).
    private static string Flushing(string kind) => kind == "postgres" ? "server" : "2";
    private static string Relaxed(string kind) => kind == "postgres" ? "off by the session" : "1";

    private static async Task<string> SettingAsync(DbConnection connection, string kind)
    {
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = kind == "postgres"
            ? "SELECT CASE WHEN source IN ('client', 'session') THEN setting || ' by the session' ELSE 'server' END FROM pg_settings WHERE name = 'synchronous_commit'"
            : "PRAGMA synchronous";
        return Convert.ToString(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture)!;
    }
}
