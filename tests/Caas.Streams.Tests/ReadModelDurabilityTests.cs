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
