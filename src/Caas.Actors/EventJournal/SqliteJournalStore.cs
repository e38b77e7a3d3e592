using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Caas.Actors.EventJournal;

/// <summary>
/// The journal on SQLite: one writer connection that stays open, one prepared INSERT reused for every row, a batch in
/// one <c>BEGIN IMMEDIATE</c> transaction (one fsync per batch instead of per row). A taken sequence number drops only
/// its own write: single-row writes skip it with <c>ON CONFLICT DO NOTHING</c>, larger writes run in a savepoint that
/// is rolled back. Reads use their own pooled connections (WAL: they do not wait for the writer).
/// <para>
/// The writer checkpoints the WAL into the database only every <paramref name="walAutocheckpointPages"/> pages (SQLite's
/// default is 1,000). A batch of a few hundred rows from many conversations touches a leaf page of the
/// (persistence_id, sequence_number) index per conversation, so each commit appended about 1,000 pages and nearly every
/// commit ran a checkpoint, copying into the database pages that the next commit would change again. Checkpointing
/// 20 times less often writes each of those pages once per checkpoint instead of once per commit: the journal bench
/// went from about 15,500 to 20,500 acked/s (README). Durability is the same (every commit still flushes the WAL);
/// the WAL file grows to about that many pages (80 MB at 4 KB) and stays that size.
/// </para>
/// </summary>
public sealed class SqliteJournalStore(string connectionString, int walAutocheckpointPages = SqliteJournalStore.DefaultWalAutocheckpointPages) : IJournalStore
{
    /// <summary>Pages in the WAL before the writer's commit checkpoints it (<c>sqlite-wal-autocheckpoint</c>).</summary>
    public const int DefaultWalAutocheckpointPages = 20_000;

    private const string InsertSql = """
        INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, tags, manifest, identifier, writer_uuid)
        VALUES ($c, 0, $p, $s, $m, $t, $mf, $i, $w)
        ON CONFLICT (persistence_id, sequence_number) DO NOTHING
        """;

    // The plugin's DDL (linq2db, table-mapping default, Csv tags), so either writer can start on the other's database.
    internal const string CreateSql = """
        CREATE TABLE IF NOT EXISTS [journal]
        (
            [ordering]        INTEGER        NOT NULL PRIMARY KEY AUTOINCREMENT,
            [created]         INTEGER        NOT NULL,
            [deleted]         Bit            NOT NULL,
            [persistence_id]  NVarChar(255)  NOT NULL,
            [sequence_number] INTEGER        NOT NULL,
            [message]         VarBinary      NOT NULL,
            [tags]            NVarChar(100)      NULL,
            [manifest]        NVarChar(500)      NULL,
            [identifier]      INTEGER            NULL,
            [writer_uuid]     NVarChar(128)      NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS journal_uq ON journal (persistence_id, sequence_number);
        CREATE INDEX IF NOT EXISTS journal_created_idx ON journal (created);
        CREATE INDEX IF NOT EXISTS journal_sequence_number_idx ON journal (sequence_number);
        """;

    private SqliteConnection? _writer;
    private SqliteCommand? _insert;

    public async Task InitializeAsync(CancellationToken ct)
    {
        await using var c = await OpenAsync(ct);
        await using var cmd = c.CreateCommand();
        // WAL lets recovery and the read journal read while a batch is being written; it stays set in the file.
        cmd.CommandText = "PRAGMA journal_mode=WAL;" + CreateSql;
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Called by the single writer only (SQLite takes one writer at a time anyway).</summary>
    public Task WriteAsync(IReadOnlyList<PendingWrite> batch, CancellationToken ct)
    {
        try
        {
            Write(batch);
            return Task.CompletedTask;
        }
        catch
        {
            // The connection's state is unknown after a failure: the next batch starts on a fresh one.
            DropWriter();
            throw;
        }
    }

    private void Write(IReadOnlyList<PendingWrite> batch)
    {
        if (_writer is null)
        {
            _writer = new SqliteConnection(connectionString);
            _writer.Open();
            using var pragma = _writer.CreateCommand();
            pragma.CommandText = $"PRAGMA wal_autocheckpoint = {Math.Max(1, walAutocheckpointPages)}";
            pragma.ExecuteNonQuery();
        }
        using var tx = _writer.BeginTransaction(deferred: false);
        if (_insert is null)
        {
            _insert = _writer.CreateCommand();
            _insert.CommandText = InsertSql;
            foreach (var name in (string[])["$c", "$p", "$s", "$m", "$t", "$mf", "$i", "$w"]) _insert.Parameters.Add(new SqliteParameter { ParameterName = name });
            _insert.Prepare();
        }
        _insert.Transaction = tx;
        var duplicates = new HashSet<PendingWrite>();
        foreach (var w in batch)
        {
            if (w.Rows.Count == 1)
            {
                if (Insert(w.Rows[0]) == 0) duplicates.Add(w);
                continue;
            }
            Execute(tx, "SAVEPOINT aw");
            var complete = true;
            foreach (var r in w.Rows)
                if (Insert(r) == 0) { complete = false; break; }
            if (!complete)
            {
                Execute(tx, "ROLLBACK TO aw");
                duplicates.Add(w);
            }
            Execute(tx, "RELEASE aw");
        }
        tx.Commit();
        foreach (var w in batch)
            if (duplicates.Contains(w)) w.Duplicate();
            else w.Stored();
    }

    private int Insert(JournalRow r)
    {
        var p = _insert!.Parameters;
        p[0].Value = r.Created;
        p[1].Value = r.PersistenceId;
        p[2].Value = r.SequenceNr;
        p[3].Value = r.Message;
        p[4].Value = r.Tags;
        p[5].Value = r.Manifest;
        p[6].Value = r.Identifier;
        p[7].Value = r.WriterUuid;
        return _insert.ExecuteNonQuery();
    }

    private void Execute(SqliteTransaction tx, string sql)
    {
        using var cmd = _writer!.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private void DropWriter()
    {
        _insert?.Dispose();
        _insert = null;
        _writer?.Dispose();
        _writer = null;
    }

    private const string ReplaySql = """
        SELECT sequence_number, created, message, manifest, identifier, writer_uuid FROM journal
        WHERE persistence_id = ?1 AND sequence_number >= ?2 AND sequence_number <= ?3 AND deleted = 0
        ORDER BY sequence_number LIMIT ?4
        """;

    public async Task ReplayAsync(string persistenceId, long from, long to, long max, Action<StoredRow> onRow, CancellationToken ct)
    {
        if (max <= 0) return;
        await using var c = await OpenAsync(ct);
        ReadRows(c.Handle!, persistenceId, from, to, max, onRow, ct);
    }

    /// <summary>
    /// The replay through SQLite's own statement API rather than the ADO.NET reader (profiled: its per-column calls were a
    /// quarter of a recovery's reading thread): each row's message is handed over in place, without a copy, and the
    /// manifest and writer are the previous row's strings whenever their bytes are the same (they nearly always are).
    /// </summary>
    private static void ReadRows(sqlite3 db, string persistenceId, long from, long to, long max, Action<StoredRow> onRow, CancellationToken ct)
    {
        Check(db, raw.sqlite3_prepare_v2(db, ReplaySql, out var stmt));
        // A reader of a WAL database is busy at most while it opens its snapshot: SQLite waits that out itself, for as long
        // as Microsoft.Data.Sqlite's command timeout (the pooled connection gets its setting back afterwards).
        raw.sqlite3_busy_timeout(db, 30_000);
        try
        {
            using (stmt)
            {
                Check(db, raw.sqlite3_bind_text(stmt, 1, persistenceId));
                Check(db, raw.sqlite3_bind_int64(stmt, 2, from));
                Check(db, raw.sqlite3_bind_int64(stmt, 3, to));
                Check(db, raw.sqlite3_bind_int64(stmt, 4, max));
                var manifest = new Utf8Strings();
                var writer = new Utf8Strings();
                for (var n = 0L; ; n++)
                {
                    var rc = raw.sqlite3_step(stmt);
                    if (rc == raw.SQLITE_DONE) return;
                    if (rc != raw.SQLITE_ROW) Check(db, rc);
                    if ((n & 1023) == 0) ct.ThrowIfCancellationRequested();
                    onRow(new StoredRow(persistenceId, raw.sqlite3_column_int64(stmt, 0), raw.sqlite3_column_int64(stmt, 1),
                        raw.sqlite3_column_blob(stmt, 2), manifest.Of(stmt, 3),
                        raw.sqlite3_column_type(stmt, 4) == raw.SQLITE_NULL ? null : raw.sqlite3_column_int(stmt, 4), writer.Of(stmt, 5)));
                }
            }
        }
        finally
        {
            raw.sqlite3_busy_timeout(db, 0);
        }
    }

    /// <summary>Throws SQLite's error for a result code that is not OK, ROW or DONE (the statement API's readers share it).</summary>
    internal static void Check(sqlite3 db, int rc)
    {
        if (rc is not (raw.SQLITE_OK or raw.SQLITE_ROW or raw.SQLITE_DONE)) SqliteException.ThrowExceptionForRC(rc, db);
    }

    /// <summary>A text column's values as strings, the last one reused while the bytes repeat.</summary>
    internal sealed class Utf8Strings
    {
        private byte[] _bytes = [];
        private string? _text;

        public string? Of(sqlite3_stmt stmt, int column)
        {
            if (raw.sqlite3_column_type(stmt, column) == raw.SQLITE_NULL) return null;
            // A text value's bytes, UTF-8 (SQLite converts nothing: the database's encoding is UTF-8).
            var bytes = raw.sqlite3_column_blob(stmt, column);
            if (_text is not null && bytes.SequenceEqual(_bytes)) return _text;
            _bytes = bytes.ToArray();
            return _text = System.Text.Encoding.UTF8.GetString(bytes);
        }
    }

    public async Task<long> HighestSequenceNrAsync(string persistenceId, long from, CancellationToken ct)
    {
        await using var c = await OpenAsync(ct);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COALESCE(MAX(sequence_number), 0) FROM journal WHERE persistence_id = $p AND sequence_number >= $f";
        cmd.Parameters.AddWithValue("$p", persistenceId);
        cmd.Parameters.AddWithValue("$f", from);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct));
    }

    public async Task DeleteToAsync(string persistenceId, long to, CancellationToken ct)
    {
        await using var c = await OpenAsync(ct);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        await using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = """
            UPDATE journal SET deleted = 1 WHERE persistence_id = $p AND sequence_number <= $t;
            DELETE FROM journal WHERE persistence_id = $p AND sequence_number <= $t
            AND sequence_number < (SELECT MAX(sequence_number) FROM journal WHERE persistence_id = $p AND deleted = 1);
            """;
        cmd.Parameters.AddWithValue("$p", persistenceId);
        cmd.Parameters.AddWithValue("$t", to);
        await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    private async Task<SqliteConnection> OpenAsync(CancellationToken ct)
    {
        var c = new SqliteConnection(connectionString);
        await c.OpenAsync(ct);
        return c;
    }

    public ValueTask DisposeAsync()
    {
        DropWriter();
        return ValueTask.CompletedTask;
    }
}
