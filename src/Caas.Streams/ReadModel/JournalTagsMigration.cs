using System.Data.Common;
using Caas.Actors.Hosting;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Caas.Streams.ReadModel;

/// <summary>
/// The journal keeps each event's tags in its own row (Akka.Persistence.Sql <c>tag-write-mode = Csv</c>, column
/// <c>tags</c>, <c>;a;b;</c>). Journals written before that kept them only in the <c>tags</c> table; with the served
/// linq2db 6.5.1 the plugin reads that table through an aggregate that scans the whole table for every event
/// returned (recovery, events by tag, replay), so costs grew with the square of the journal. This one-time
/// migration adds the column and fills it from the tag table; it runs before the actor system starts, is idempotent,
/// and leaves the tag table in place.
/// </summary>
public static class JournalTagsMigration
{
    /// <summary>Returns the number of journal rows whose tags were filled in (0 when nothing was to do).</summary>
    public static async Task<long> RunAsync(StorageOptions storage, CancellationToken ct = default)
    {
        await using DbConnection c = storage.IsPostgres
            ? new NpgsqlConnection(storage.JournalConnectionString)
            : new SqliteConnection(storage.JournalConnectionString);
        await c.OpenAsync(ct);
        if (!await JournalDb.TableExistsAsync(c, storage.IsPostgres, "journal", ct) || await ColumnExistsAsync(c, storage.IsPostgres, ct)) return 0;

        await using var tx = await c.BeginTransactionAsync(ct);
        await ExecuteAsync(c, tx, "ALTER TABLE journal ADD COLUMN tags " + (storage.IsPostgres ? "VARCHAR(2000)" : "NVarChar(2000)") + " NULL", ct);
        long filled = 0;
        if (await JournalDb.TableExistsAsync(c, storage.IsPostgres, "tags", ct))
        {
            var aggregate = storage.IsPostgres ? "string_agg(t.tag, ';' ORDER BY t.tag)" : "group_concat(t.tag, ';')";
            filled = await ExecuteAsync(c, tx,
                $"UPDATE journal SET tags = ';' || (SELECT {aggregate} FROM tags t WHERE t.ordering_id = journal.ordering) || ';' " +
                "WHERE EXISTS (SELECT 1 FROM tags t WHERE t.ordering_id = journal.ordering)", ct);
        }
        await tx.CommitAsync(ct);
        return filled;
    }

    private static async Task<bool> ColumnExistsAsync(DbConnection c, bool postgres, CancellationToken ct)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = postgres
            ? "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'journal' AND column_name = 'tags'"
            : "SELECT COUNT(*) FROM pragma_table_info('journal') WHERE name = 'tags'";
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct)) > 0;
    }

    private static async Task<int> ExecuteAsync(DbConnection c, DbTransaction tx, string sql, CancellationToken ct)
    {
        await using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.CommandTimeout = 0;
        return await cmd.ExecuteNonQueryAsync(ct);
    }
}
