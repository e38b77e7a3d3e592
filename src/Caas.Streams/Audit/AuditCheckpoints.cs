using System.Data.Common;
using System.Security.Cryptography;
using Caas.Actors.Common;
using Caas.Actors.Hosting;
using Caas.Streams.ReadModel;
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
        await using var c = await JournalDb.OpenAsync(storage, ct);
        if (!await JournalDb.TableExistsAsync(c, storage.IsPostgres, "journal", ct)) return 0;
        await EnsureTableAsync(c, storage.IsPostgres, ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        var existing = await LoadAsync(c, storage.IsPostgres, ct);
        // What is signed stays signed: a row or snapshot that changed since is for the verifier to report, never re-signed.
        var heads = new Dictionary<string, long>();
        var snapshots = new HashSet<(string, long)>();
        foreach (var cp in existing)
            if (cp.Kind == JournalKind) heads[cp.PersistenceId] = Math.Max(cp.Seq, heads.GetValueOrDefault(cp.PersistenceId));
            else snapshots.Add((cp.PersistenceId, cp.Seq));

        var pending = new List<(string Kind, string Pid, long Seq, string Digest)>();
        long journalMax = _journalSeen;
        await using (var cmd = c.CreateCommand())
        {
            cmd.Transaction = tx;
            // The head row of every entity written to since the last run (all of them on the first run: the genesis).
            cmd.CommandText = "SELECT j.persistence_id, j.sequence_number, j.message, h.o FROM journal j JOIN " +
                              "(SELECT persistence_id, MAX(sequence_number) AS s, MAX(ordering) AS o FROM journal WHERE ordering > @since GROUP BY persistence_id) h " +
                              "ON j.persistence_id = h.persistence_id AND j.sequence_number = h.s ORDER BY j.persistence_id";
            JournalDb.Parameter(cmd, "@since", _journalSeen);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                var pid = r.GetString(0);
                var seq = r.GetInt64(1);
                var digest = Digest((byte[])r.GetValue(2));
                journalMax = Math.Max(journalMax, r.GetInt64(3));
                if (heads.TryGetValue(pid, out var signedSeq) && seq <= signedSeq) continue;
                pending.Add((JournalKind, pid, seq, digest));
            }
        }

        long snapshotMax = _snapshotSeen;
        if (await JournalDb.TableExistsAsync(c, storage.IsPostgres, "snapshot", ct))
        {
            await using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "SELECT persistence_id, sequence_number, snapshot, created FROM snapshot WHERE created > @since";
            JournalDb.Parameter(cmd, "@since", _snapshotSeen);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                var pid = r.GetString(0);
                var seq = r.GetInt64(1);
                var digest = Digest((byte[])r.GetValue(2));
                snapshotMax = Math.Max(snapshotMax, r.GetInt64(3));
                if (!snapshots.Contains((pid, seq))) pending.Add((SnapshotKind, pid, seq, digest));
            }
        }

        var n = existing.Count == 0 ? 0 : existing[^1].N;
        var prevMac = existing.Count == 0 ? string.Empty : existing[^1].Mac;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await using (var insert = c.CreateCommand())
        {
            insert.Transaction = tx;
            insert.CommandText = $"INSERT INTO {Table} (n, kind, persistence_id, seq, digest, created_at, prev_mac, mac) VALUES (@n, @k, @p, @s, @d, @at, @prev, @mac)";
            var pn = JournalDb.Parameter(insert, "@n", 0L);
            var pk = JournalDb.Parameter(insert, "@k", "");
            var pp = JournalDb.Parameter(insert, "@p", "");
            var ps = JournalDb.Parameter(insert, "@s", 0L);
            var pd = JournalDb.Parameter(insert, "@d", "");
            JournalDb.Parameter(insert, "@at", now);
            var pprev = JournalDb.Parameter(insert, "@prev", "");
            var pmac = JournalDb.Parameter(insert, "@mac", "");
            foreach (var (kind, pid, seq, digest) in pending)
            {
                n++;
                var mac = MacOf(n, kind, pid, seq, digest, now, prevMac);
                (pn.Value, pk.Value, pp.Value, ps.Value, pd.Value, pprev.Value, pmac.Value) = (n, kind, pid, seq, digest, prevMac, mac);
                await insert.ExecuteNonQueryAsync(ct);
                prevMac = mac;
                Signed.WithLabels(kind).Inc();
            }
        }
        await tx.CommitAsync(ct);
        _journalSeen = journalMax;
        _snapshotSeen = snapshotMax;
        return pending.Count;
    }
}
