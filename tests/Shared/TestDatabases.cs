using Caas.Actors.Hosting;
using Npgsql;

namespace Caas.Tests.Shared;

/// <summary>
/// Real databases for tests: a fresh PostgreSQL database per call (from CAAS_TEST_POSTGRES, which the test script
/// sets after starting a throwaway server) or a fresh SQLite directory.
/// </summary>
public static class TestDatabases
{
    public const string EnvVar = "CAAS_TEST_POSTGRES";

    /// <summary>The content vault's master key that the nodes of one test cluster share (32 bytes, base64).</summary>
    public const string MasterKey = "Y2Fhcy10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=";

    public static string AdminConnectionString =>
        Environment.GetEnvironmentVariable(EnvVar)
        ?? throw new InvalidOperationException(
            $"{EnvVar} is not set. Run the tests through ./scripts/test.sh, which starts a PostgreSQL server for them.");

    /// <summary>Creates an empty database and answers its connection string.</summary>
    public static string NewPostgresDatabase(string prefix = "caas")
    {
        var name = $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(60, prefix.Length + 33)].ToLowerInvariant();
        using (var admin = new NpgsqlConnection(AdminConnectionString))
        {
            admin.Open();
            using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", admin);
            cmd.ExecuteNonQuery();
        }
        // Idle pooled connections close after 10 s: a test node that stopped leaves its idle connections in the
        // process-wide pools (the query journal's among them), and at Npgsql's default of 300 s the nodes of a whole
        // suite add up past the test server's max_connections ("53300: sorry, too many clients already").
        return new NpgsqlConnectionStringBuilder(AdminConnectionString)
        {
            Database = name, MaxPoolSize = 50, ConnectionIdleLifetime = 10, ConnectionPruningInterval = 2,
        }.ConnectionString;
    }

    public static string NewSqliteDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), "caas-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static StorageOptions Storage(string kind) => kind switch
    {
        "postgres" => StorageOptions.Postgres(NewPostgresDatabase()),
        "sqlite" => StorageOptions.Sqlite(NewSqliteDirectory()),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };
}
