using Caas.Actors.Hosting;
using FluentMigrator.Runner;
using FluentMigrator.Runner.Conventions;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Caas.Streams.Operational;

/// <summary>What the migrations need to know of the deployment they run on.</summary>
public sealed record OperationalMigrationContext(StorageOptions Storage)
{
    public bool IsPostgres => Storage.IsPostgres;
}

/// <summary>
/// Runs the operational store's versioned migrations (FluentMigrator; the applied versions are in its
/// <c>VersionInfo</c> table, in <c>caas_ops</c> on PostgreSQL). Every node runs them on start: on PostgreSQL under a
/// session advisory lock, so one node of a cluster migrates while the others wait and then find nothing left to do;
/// a SQLite file has a single node.
/// </summary>
public static class OperationalMigrations
{
    /// <summary>The advisory lock's key ("caasops" in ASCII): one per database, whatever the node.</summary>
    public const long AdvisoryLockKey = 0x0063616173_6f7073;

    public static async Task RunAsync(StorageOptions storage, CancellationToken ct = default)
    {
        if (!storage.IsPostgres)
        {
            await using (var c = new SqliteConnection(storage.OperationalConnectionString))
            {
                await c.OpenAsync(ct);
                await ExecuteAsync(c, "PRAGMA journal_mode=WAL;", ct);
            }
            Migrate(storage);
            return;
        }
        // Unpooled: if anything goes wrong the lock goes with the closed session rather than back into a pool.
        var lockString = new NpgsqlConnectionStringBuilder(storage.ReadModelConnectionString) { Pooling = false }.ConnectionString;
        await using var session = new NpgsqlConnection(lockString);
        await session.OpenAsync(ct);
        await ExecuteAsync(session, $"SELECT pg_advisory_lock({AdvisoryLockKey})", ct);
        try
        {
            await ExecuteAsync(session, $"CREATE SCHEMA IF NOT EXISTS {StorageOptions.OperationalSchema}", ct);
            await Task.Run(() => Migrate(storage), ct);
        }
        finally
        {
            await ExecuteAsync(session, $"SELECT pg_advisory_unlock({AdvisoryLockKey})", CancellationToken.None);
        }
    }

    private static void Migrate(StorageOptions storage)
    {
        using var services = new ServiceCollection()
            .AddSingleton(new OperationalMigrationContext(storage))
            // The version table goes with the tables it versions: caas_ops on PostgreSQL, the file's own on SQLite.
            .AddSingleton<IConventionSet>(new DefaultConventionSet(storage.IsPostgres ? StorageOptions.OperationalSchema : null, null))
            .AddFluentMigratorCore()
            .ConfigureRunner(runner =>
            {
                if (storage.IsPostgres) runner.AddPostgres();
                else runner.AddSQLite();
                runner.WithGlobalConnectionString(storage.OperationalConnectionString)
                    .ScanIn(typeof(OperationalMigrations).Assembly).For.Migrations();
            })
            .BuildServiceProvider(validateScopes: false);
        using var scope = services.CreateScope();
        scope.ServiceProvider.GetRequiredService<IMigrationRunner>().MigrateUp();
    }

    private static async Task ExecuteAsync(System.Data.Common.DbConnection c, string sql, CancellationToken ct)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
