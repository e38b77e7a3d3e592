using System.Data.Common;
using Caas.Actors.Hosting;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Caas.Streams.ReadModel;

/// <summary>Plain SQL access to the journal's database, for the tools that read or repair it beside the plugin.</summary>
public static class JournalDb
{
    public static async Task<DbConnection> OpenAsync(StorageOptions storage, CancellationToken ct = default)
    {
        DbConnection c = storage.IsPostgres ? new NpgsqlConnection(storage.JournalConnectionString) : new SqliteConnection(storage.JournalConnectionString);
        await c.OpenAsync(ct);
        return c;
    }

    /// <summary>Adds a named parameter and returns it, so a prepared command can be run again with new values.</summary>
    public static DbParameter Parameter(DbCommand cmd, string name, object value)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.Value = value;
        cmd.Parameters.Add(p);
        return p;
    }

    /// <summary>The journal's highest ordering value (0 when it is empty): the head the projections follow.</summary>
    public static async Task<long> HeadAsync(DbConnection c, CancellationToken ct = default)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COALESCE(MAX(ordering), 0) FROM journal";
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct));
    }

    public static async Task<bool> TableExistsAsync(DbConnection c, bool postgres, string table, CancellationToken ct)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = postgres
            ? $"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '{table}'"
            : $"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'";
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct)) > 0;
    }
}
