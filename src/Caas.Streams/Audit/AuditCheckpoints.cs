using System.Data.Common;
using System.Security.Cryptography;
using Caas.Actors.Common;
using Caas.Actors.Hosting;
using Caas.Streams.ReadModel;
using Microsoft.Data.Sqlite;
using Prometheus;

namespace Caas.Streams.Audit;

/// <summary>One signed checkpoint: the digest of an entity's journal row (its head when signed) or of one of its snapshots.</summary>
public sealed record AuditCheckpoint(long N, string Kind, string PersistenceId, long Seq, string Digest, long CreatedAt, string PrevMac, string Mac);

/// <summary>
/// Signed checkpoints of the journal, in the table <c>audit_checkpoints</c> of the journal's database. Each run signs,
/// for every entity whose head moved since the last run, its head sequence number and the SHA-256 of that row's stored
/// bytes, and every snapshot not signed yet; the first run on a journal is its genesis checkpoint (history is not
/// rewritten). Rows are numbered and each MAC (HMAC-SHA256 under the <see cref="AuditKey"/>) covers the previous row's
/// MAC, so a checkpoint cannot be removed from the middle, edited or forged without the key.
/// The verifier (<see cref="JournalVerifier"/>) then names a journal cut back below a checkpoint, a deleted entity, a
/// chain recomputed over an edited event, and an edited snapshot. What happens after the last run (a tail cut after
/// the last checkpoint) cannot be told from a journal that never had it.
/// </summary>
public sealed class AuditCheckpoints(StorageOptions storage, AuditKey key)
{
    public const string Table = "audit_checkpoints";
    public const string JournalKind = "journal", SnapshotKind = "snapshot";

    private static readonly Counter Signed = Metrics.CreateCounter("caas_audit_checkpoints_total", "Audit checkpoints signed, by kind.", "kind");

    private static readonly Histogram WriteHeld = Metrics.CreateHistogram("caas_audit_checkpoint_write_seconds",
        "How long a checkpoint run held its write transaction (on SQLite the journal's write lock, which every persist waits for).",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 12) });

    private static readonly Histogram RunTime = Metrics.CreateHistogram("caas_audit_checkpoint_run_seconds",
        "How long a checkpoint run took, reading and hashing the heads written since the last one included.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 14) });

    private long _journalSeen = -1;
    private long _snapshotSeen = -1;

    public static string Digest(byte[] stored) => Convert.ToHexStringLower(SHA256.HashData(stored));

    public string MacOf(long n, string kind, string pid, long seq, string digest, long createdAt, string prevMac) =>
        key.Mac($"caas.checkpoint.v1\n{n}\n{kind}\n{pid}\n{seq}\n{digest}\n{createdAt}\n{prevMac}");

    public static async Task EnsureTableAsync(DbConnection c, bool postgres, CancellationToken ct)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = $"CREATE TABLE IF NOT EXISTS {Table} (n BIGINT PRIMARY KEY, kind VARCHAR(16) NOT NULL, persistence_id VARCHAR(255) NOT NULL, " +
                          "seq BIGINT NOT NULL, digest VARCHAR(64) NOT NULL, created_at BIGINT NOT NULL, prev_mac VARCHAR(64) NOT NULL, mac VARCHAR(64) NOT NULL)";
        await cmd.ExecuteNonQueryAsync(ct);
        // A run looks up, for each entity written since the last one, what was signed for it.
        cmd.CommandText = $"CREATE INDEX IF NOT EXISTS {Table}_entity ON {Table} (persistence_id, kind, seq)";
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Every checkpoint in order (none when the table does not exist yet).</summary>
    public static async Task<List<AuditCheckpoint>> LoadAsync(DbConnection c, bool postgres, CancellationToken ct)
    {
        var all = new List<AuditCheckpoint>();
        if (!await JournalDb.TableExistsAsync(c, postgres, Table, ct)) return all;
        await using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT n, kind, persistence_id, seq, digest, created_at, prev_mac, mac FROM {Table} ORDER BY n";
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            all.Add(new AuditCheckpoint(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetInt64(3), r.GetString(4), r.GetInt64(5), r.GetString(6), r.GetString(7)));
        return all;
    }

    /// <summary>
    /// Signs what changed since the last run; returns the number of checkpoints written. Two nodes running at once
    /// collide on the row number: the loser's transaction rolls back and its next run signs what is still unsigned.
    /// </summary>
    public async Task<int> RunAsync(CancellationToken ct = default)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            return await SignAsync(ct);
        }
        finally
        {
            RunTime.Observe(started.Elapsed.TotalSeconds);
        }
    }

    private async Task<int> SignAsync(CancellationToken ct)
    {
        await using var c = await JournalDb.OpenAsync(storage, ct);
        if (!await JournalDb.TableExistsAsync(c, storage.IsPostgres, "journal", ct)) return 0;
        await EnsureTableAsync(c, storage.IsPostgres, ct);
        // What to sign is read in a read transaction: on SQLite a plain BEGIN IMMEDIATE here held the journal's write
        // lock while every checkpoint so far was loaded and the new heads read and hashed, and the journal's writer (every
        // message's persist) waited that out: 1.7-2.2 s a run once the table held 1,000,000 links (README). The write
        // lock is taken only for the inserts below, and only when there is something to sign.
        await using var read = c is SqliteConnection sqlite ? sqlite.BeginTransaction(deferred: true) : await c.BeginTransactionAsync(ct);
        // The chain's last link. Runs used to load every checkpoint signed so far, a table that grows by one row per entity
        // written every interval; what was signed is now looked up per head (below) through the table's index.
        var (n, prevMac) = (0L, string.Empty);
        await using (var last = c.CreateCommand())
        {
            last.Transaction = read;
            last.CommandText = $"SELECT n, mac FROM {Table} ORDER BY n DESC LIMIT 1";
            await using var r = await last.ExecuteReaderAsync(ct);
            if (await r.ReadAsync(ct)) (n, prevMac) = (r.GetInt64(0), r.GetString(1));
        }
        // What is signed stays signed: a row or snapshot that changed since is for the verifier to report, never re-signed.

        var pending = new List<(string Kind, string Pid, long Seq, string Digest)>();
        long journalMax = _journalSeen;
        await using (var cmd = c.CreateCommand())
        {
            cmd.Transaction = read;
            // The head row of every entity written to since the last run (all of them on the first run: the genesis).
            cmd.CommandText = "SELECT j.persistence_id, j.sequence_number, j.message, h.o, " +
                              $"CASE WHEN EXISTS (SELECT 1 FROM {Table} a WHERE a.persistence_id = j.persistence_id AND a.kind = '{JournalKind}' " +
                              "AND a.seq >= j.sequence_number) THEN 1 ELSE 0 END FROM journal j JOIN " +
                              "(SELECT persistence_id, MAX(sequence_number) AS s, MAX(ordering) AS o FROM journal WHERE ordering > @since GROUP BY persistence_id) h " +
                              "ON j.persistence_id = h.persistence_id AND j.sequence_number = h.s ORDER BY j.persistence_id";
            JournalDb.Parameter(cmd, "@since", _journalSeen);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                journalMax = Math.Max(journalMax, r.GetInt64(3));
                if (r.GetInt32(4) == 1) continue;
                pending.Add((JournalKind, r.GetString(0), r.GetInt64(1), Digest((byte[])r.GetValue(2))));
            }
        }

        long snapshotMax = _snapshotSeen;
        if (await JournalDb.TableExistsAsync(c, storage.IsPostgres, "snapshot", ct))
        {
            await using var cmd = c.CreateCommand();
            cmd.Transaction = read;
            cmd.CommandText = "SELECT s.persistence_id, s.sequence_number, s.snapshot, s.created, " +
                              $"CASE WHEN EXISTS (SELECT 1 FROM {Table} a WHERE a.persistence_id = s.persistence_id AND a.kind = '{SnapshotKind}' " +
                              "AND a.seq = s.sequence_number) THEN 1 ELSE 0 END FROM snapshot s WHERE s.created > @since";
            JournalDb.Parameter(cmd, "@since", _snapshotSeen);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                snapshotMax = Math.Max(snapshotMax, r.GetInt64(3));
                if (r.GetInt32(4) == 0) pending.Add((SnapshotKind, r.GetString(0), r.GetInt64(1), Digest((byte[])r.GetValue(2))));
            }
        }

        await read.CommitAsync(ct);
        if (pending.Count == 0)
        {
            (_journalSeen, _snapshotSeen) = (journalMax, snapshotMax);
            return 0;
        }
        // The links are computed before the write lock is taken, so the lock covers only the inserts.
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var links = new List<(long N, string Kind, string Pid, long Seq, string Digest, string PrevMac, string Mac)>(pending.Count);
        var (link, linkMac) = (n, prevMac);
        foreach (var (kind, pid, seq, digest) in pending)
        {
            link++;
            var mac = MacOf(link, kind, pid, seq, digest, now, linkMac);
            links.Add((link, kind, pid, seq, digest, linkMac, mac));
            linkMac = mac;
        }
        var held = System.Diagnostics.Stopwatch.StartNew();
        await using var write = await c.BeginTransactionAsync(ct);
        // Another run may have signed between the read and the write lock: its chain is the one to extend, so this run
        // signs nothing and the next one starts over from what it read (nothing is marked seen).
        await using (var last = c.CreateCommand())
        {
            last.Transaction = write;
            last.CommandText = $"SELECT COALESCE(MAX(n), 0) FROM {Table}";
            if (Convert.ToInt64(await last.ExecuteScalarAsync(ct)) != n) return 0;
        }
        await using (var insert = c.CreateCommand())
        {
            insert.Transaction = write;
            insert.CommandText = $"INSERT INTO {Table} (n, kind, persistence_id, seq, digest, created_at, prev_mac, mac) VALUES (@n, @k, @p, @s, @d, @at, @prev, @mac)";
            var pn = JournalDb.Parameter(insert, "@n", 0L);
            var pk = JournalDb.Parameter(insert, "@k", "");
            var pp = JournalDb.Parameter(insert, "@p", "");
            var ps = JournalDb.Parameter(insert, "@s", 0L);
            var pd = JournalDb.Parameter(insert, "@d", "");
            JournalDb.Parameter(insert, "@at", now);
            var pprev = JournalDb.Parameter(insert, "@prev", "");
            var pmac = JournalDb.Parameter(insert, "@mac", "");
            await insert.PrepareAsync(ct);
            foreach (var l in links)
            {
                (pn.Value, pk.Value, pp.Value, ps.Value, pd.Value, pprev.Value, pmac.Value) = (l.N, l.Kind, l.Pid, l.Seq, l.Digest, l.PrevMac, l.Mac);
                await insert.ExecuteNonQueryAsync(ct);
            }
        }
        await write.CommitAsync(ct);
        WriteHeld.Observe(held.Elapsed.TotalSeconds);
        foreach (var l in links) Signed.WithLabels(l.Kind).Inc();
        _journalSeen = journalMax;
        _snapshotSeen = snapshotMax;
        return pending.Count;
    }
}
