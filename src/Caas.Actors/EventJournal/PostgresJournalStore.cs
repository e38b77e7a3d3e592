using Npgsql;
using NpgsqlTypes;

namespace Caas.Actors.EventJournal;

/// <summary>
/// The journal on PostgreSQL: a batch is one prepared <c>INSERT … SELECT FROM unnest(…)</c> with binary array
/// parameters (no SQL text built per batch, no hex literals) and <c>ON CONFLICT DO NOTHING RETURNING</c>, so a taken
/// sequence number drops only its own write. The pool is capped (<c>max-pool-size</c>): more connections than the
/// cores can serve only queue inside the server.
/// </summary>
public sealed class PostgresJournalStore : IJournalStore
{
    // Rows enter in batch order (WITH ORDINALITY … ORDER BY), so the ordering column grows with the sequence numbers
    // of each persistence id, as events by tag and by persistence id expect.
    private const string InsertSql = """
        INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, tags, manifest, identifier, writer_uuid)
        SELECT u.c, false, u.p, u.s, u.m, u.t, u.mf, u.i, u.w
        FROM unnest(@c, @p, @s, @m, @t, @mf, @i, @w) WITH ORDINALITY AS u(c, p, s, m, t, mf, i, w, n)
        ORDER BY u.n
        ON CONFLICT (persistence_id, sequence_number) DO NOTHING
        RETURNING ordering, persistence_id, sequence_number
        """;

    // The plugin's DDL (linq2db, table-mapping default, Csv tags), so either writer can start on the other's database.
    private const string CreateSql = """
        CREATE TABLE IF NOT EXISTS journal (
            ordering bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT "PK_journal" PRIMARY KEY,
            created bigint NOT NULL,
            deleted boolean NOT NULL,
            persistence_id text NOT NULL,
            sequence_number bigint NOT NULL,
            message bytea NOT NULL,
            tags text,
            manifest text,
            identifier integer,
            writer_uuid text,
            CONSTRAINT journal_uq UNIQUE (persistence_id, sequence_number));
        CREATE INDEX IF NOT EXISTS journal_created_idx ON journal (created);
        CREATE INDEX IF NOT EXISTS journal_sequence_number_idx ON journal (sequence_number);
        """;

    private readonly NpgsqlDataSource _source;

    public PostgresJournalStore(string connectionString, int maxPoolSize)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = maxPoolSize };
        _source = NpgsqlDataSource.Create(builder.ConnectionString);
    }

    public async Task InitializeAsync(CancellationToken ct)
    {
        await using var c = await _source.OpenConnectionAsync(ct);
        // Nodes of a cluster start together: one creates, the others wait and then find the table.
        await using var tx = await c.BeginTransactionAsync(ct);
        await using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(7303757411)", c, tx)) await lockCmd.ExecuteNonQueryAsync(ct);
        await using (var cmd = new NpgsqlCommand(CreateSql, c, tx)) await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    public async Task WriteAsync(IReadOnlyList<PendingWrite> batch, CancellationToken ct)
    {
        // Two writes of one batch that share a sequence number: the later one is a duplicate of the earlier (the
        // database would keep only the first, and RETURNING could not tell the two apart).
        var duplicates = new HashSet<PendingWrite>();
        var keys = new HashSet<(string, long)>();
        foreach (var w in batch)
        {
            var mine = w.Rows.Select(r => (r.PersistenceId, r.SequenceNr)).ToList();
            if (mine.Any(keys.Contains) || mine.Distinct().Count() != mine.Count) duplicates.Add(w);
            else keys.UnionWith(mine);
        }
        var writes = batch.Where(w => !duplicates.Contains(w)).ToList();

        var count = writes.Sum(w => w.Rows.Count);
        var created = new long[count];
        var pids = new string[count];
        var seqs = new long[count];
        var messages = new byte[count][];
        var tags = new string?[count];
        var manifests = new string[count];
        var identifiers = new int[count];
        var writers = new string[count];
        var n = 0;
        foreach (var w in writes)
            foreach (var r in w.Rows)
            {
                created[n] = r.Created;
                pids[n] = r.PersistenceId;
                seqs[n] = r.SequenceNr;
                messages[n] = r.Message;
                tags[n] = r.Tags;
                manifests[n] = r.Manifest;
                identifiers[n] = r.Identifier;
                writers[n] = r.WriterUuid;
                n++;
            }

        await using var c = await _source.OpenConnectionAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        var stored = new Dictionary<(string, long), long>(count);
        await using (var cmd = new NpgsqlCommand(InsertSql, c, tx))
        {
            cmd.Parameters.Add(new NpgsqlParameter<long[]>("c", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { TypedValue = created });
            cmd.Parameters.Add(new NpgsqlParameter<string[]>("p", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = pids });
            cmd.Parameters.Add(new NpgsqlParameter<long[]>("s", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { TypedValue = seqs });
            cmd.Parameters.Add(new NpgsqlParameter<byte[][]>("m", NpgsqlDbType.Array | NpgsqlDbType.Bytea) { TypedValue = messages });
            cmd.Parameters.Add(new NpgsqlParameter<string?[]>("t", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = tags });
            cmd.Parameters.Add(new NpgsqlParameter<string[]>("mf", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = manifests });
            cmd.Parameters.Add(new NpgsqlParameter<int[]>("i", NpgsqlDbType.Array | NpgsqlDbType.Integer) { TypedValue = identifiers });
            cmd.Parameters.Add(new NpgsqlParameter<string[]>("w", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = writers });
            await cmd.PrepareAsync(ct);
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) stored[(reader.GetString(1), reader.GetInt64(2))] = reader.GetInt64(0);
        }

        // A write with some rows taken: the rows of it that went in come out again, in the same transaction.
        var undo = new List<long>();
        foreach (var w in writes)
        {
            var mine = w.Rows.Select(r => stored.TryGetValue((r.PersistenceId, r.SequenceNr), out var o) ? o : (long?)null).ToList();
            if (mine.All(o => o is not null)) continue;
            duplicates.Add(w);
            undo.AddRange(mine.OfType<long>());
        }
        if (undo.Count > 0)
        {
            await using var del = new NpgsqlCommand("DELETE FROM journal WHERE ordering = ANY(@o)", c, tx);
            del.Parameters.Add(new NpgsqlParameter<long[]>("o", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { TypedValue = undo.ToArray() });
            await del.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        foreach (var w in batch)
            if (duplicates.Contains(w)) w.Duplicate();
            else w.Stored();
    }

    // A recovery's read, planned the same way whatever the table's statistics say: a walk of journal_uq in its order,
    // which streams from the first row. Found on a journal filling faster than autovacuum analyzes it (the recovery bench):
    // the planner took a conversation's 100,000 rows for 6, chose a bitmap scan and sorted all of them on disk (68 MB,
    // 155 ms before the first row); once analyzed, with one conversation a third of the table, it walked the
    // sequence_number index over every row instead. Here the range is a row comparison on (persistence_id,
    // sequence_number), which only journal_uq serves in that order, and the transaction turns off the plans that are
    // not that walk (SET LOCAL: the settings end with the transaction, so the pooled connection keeps its own).
    private const string ReplayPlanSql = "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off";

    private const string ReplaySql = """
        SELECT sequence_number, created, message, manifest, identifier, writer_uuid FROM journal
        WHERE (persistence_id, sequence_number) >= (@p, @f) AND (persistence_id, sequence_number) <= (@p, @t) AND deleted = false
        ORDER BY persistence_id, sequence_number LIMIT @n
        """;

    /// <summary>The replay's statement in <paramref name="tx"/>, after the settings that leave it one plan (its tests EXPLAIN it).</summary>
    internal static async Task<NpgsqlCommand> ReplayCommandAsync(NpgsqlConnection c, NpgsqlTransaction tx, string persistenceId, long from,
        long to, long max, CancellationToken ct)
    {
        await using (var plan = new NpgsqlCommand(ReplayPlanSql, c, tx)) await plan.ExecuteNonQueryAsync(ct);
        var cmd = new NpgsqlCommand(ReplaySql, c, tx);
        cmd.Parameters.AddWithValue("p", persistenceId);
        cmd.Parameters.AddWithValue("f", from);
        cmd.Parameters.AddWithValue("t", to);
        cmd.Parameters.AddWithValue("n", max);
        return cmd;
    }

    public async Task ReplayAsync(string persistenceId, long from, long to, long max, Action<StoredRow> onRow, CancellationToken ct)
    {
        if (max <= 0) return;
        await using var c = await _source.OpenConnectionAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        await using var cmd = await ReplayCommandAsync(c, tx, persistenceId, from, to, max, ct);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        // Each row's message is copied into one buffer that grows as needed (the row is handed over only for the call),
        // not into an array of its own.
        var buffer = new byte[4096];
        while (await reader.ReadAsync(ct))
        {
            var length = (int)reader.GetBytes(2, 0, null, 0, 0);
            if (length > buffer.Length) buffer = new byte[Math.Max(length, buffer.Length * 2)];
            var read = (int)reader.GetBytes(2, 0, buffer, 0, length);
            onRow(new StoredRow(persistenceId, reader.GetInt64(0), reader.GetInt64(1), buffer.AsSpan(0, read),
                reader.IsDBNull(3) ? null : reader.GetString(3), reader.IsDBNull(4) ? null : reader.GetInt32(4),
                reader.IsDBNull(5) ? null : reader.GetString(5)));
        }
        await reader.CloseAsync();
        await tx.CommitAsync(ct);
    }

    public async Task<long> HighestSequenceNrAsync(string persistenceId, long from, CancellationToken ct)
    {
        await using var c = await _source.OpenConnectionAsync(ct);
        await using var cmd = new NpgsqlCommand(
            "SELECT COALESCE(MAX(sequence_number), 0) FROM journal WHERE persistence_id = @p AND sequence_number >= @f", c);
        cmd.Parameters.AddWithValue("p", persistenceId);
        cmd.Parameters.AddWithValue("f", from);
        return (long)(await cmd.ExecuteScalarAsync(ct))!;
    }

    public async Task DeleteToAsync(string persistenceId, long to, CancellationToken ct)
    {
        await using var c = await _source.OpenConnectionAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        await using (var mark = new NpgsqlCommand(
                         "UPDATE journal SET deleted = true WHERE persistence_id = @p AND sequence_number <= @t", c, tx))
        {
            mark.Parameters.AddWithValue("p", persistenceId);
            mark.Parameters.AddWithValue("t", to);
            await mark.ExecuteNonQueryAsync(ct);
        }
        await using (var remove = new NpgsqlCommand("""
                         DELETE FROM journal WHERE persistence_id = @p AND sequence_number <= @t
                         AND sequence_number < (SELECT MAX(sequence_number) FROM journal WHERE persistence_id = @p AND deleted)
                         """, c, tx))
        {
            remove.Parameters.AddWithValue("p", persistenceId);
            remove.Parameters.AddWithValue("t", to);
            await remove.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
    }

    public ValueTask DisposeAsync() => _source.DisposeAsync();
}
