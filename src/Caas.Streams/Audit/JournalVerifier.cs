using System.Data.Common;
using System.Text.Json;
using Caas.Actors.Common;
using Caas.Actors.Hosting;
using Caas.Streams.ReadModel;

namespace Caas.Streams.Audit;

/// <summary>A link of the hash chain that does not hold: which event, and what is wrong with it.</summary>
public sealed record BrokenLink(string PersistenceId, long Seq, string Problem);

public sealed record VerifyReport(long Events, long Chained, long Unchained, long Entities, IReadOnlyList<BrokenLink> Broken)
{
    public bool Intact => Broken.Count == 0;

    /// <summary>Links written keyed (HMAC under the audit key); the rest of <see cref="Chained"/> are plain SHA-256 links from before.</summary>
    public long Keyed { get; init; }

    /// <summary>Signed checkpoints checked (journal heads and snapshots in scope).</summary>
    public long Checkpoints { get; init; }
}

/// <summary>
/// Walks the journal table itself, entity by entity in sequence order, and checks every event's stored bytes
/// against the hash chain (<see cref="HashChain"/>). It reads the rows with plain SQL, not through the serializer,
/// so an edited, unreadable, removed or reordered row is named, not skipped. Rows stream: memory stays constant
/// (apart from the signed checkpoints, one per entity head and snapshot).
/// With the <see cref="AuditKey"/> it also checks keyed links and the signed checkpoints (<see cref="AuditCheckpoints"/>):
/// a journal cut back below its checkpoint, a deleted entity, a chain recomputed over an edited event (plain SHA-256
/// after a keyed link, or a head that no longer matches its checkpoint), an edited or removed checkpoint, an edited
/// snapshot, and tags that no longer name the event's kind and tenant.
/// </summary>
public sealed class JournalVerifier(StorageOptions storage, AuditKey? key = null)
{
    /// <summary>Problems named in a report.</summary>
    public const string HashMismatch = "hash_mismatch", PrevHashMismatch = "prev_hash_mismatch", Gap = "sequence_gap",
        MissingHash = "missing_hash", Unreadable = "unreadable", UnkeyedLink = "unkeyed_link", CheckpointMismatch = "checkpoint_mismatch",
        Truncated = "truncated", EntityDeleted = "entity_deleted", CheckpointForged = "checkpoint_forged", CheckpointMissing = "checkpoint_missing",
        SnapshotMismatch = "snapshot_mismatch", TagMissing = "tag_missing", TagForeign = "tag_foreign";

    /// <summary>The tag every event of an entity kind carries, by persistence-id prefix (besides its tenant's tag).</summary>
    private static readonly Dictionary<string, string> KindTags = new()
    {
        ["conversation"] = Caas.Actors.Conversations.ConversationActor.KindTag,
        ["user-session"] = Caas.Actors.Sessions.UserSessionActor.KindTag,
        ["tenant"] = Caas.Actors.Tenants.TenantSettingsActor.KindTag,
    };

    public async Task<VerifyReport> VerifyAsync(string? tenantId = null, Action<long>? progress = null, CancellationToken ct = default)
    {
        await using var connection = await JournalDb.OpenAsync(storage, ct);
        var broken = new List<BrokenLink>();
        bool InScope(string pid) => tenantId is null || TenantOf(pid) == tenantId;

        // The signed checkpoints: the newest journal head per entity, the first (from where links must be keyed), snapshot digests.
        var checkpoints = key is null ? [] : await AuditCheckpoints.LoadAsync(connection, storage.IsPostgres, ct);
        var signer = key is null ? null : new AuditCheckpoints(storage, key);
        var heads = new Dictionary<string, AuditCheckpoint>();
        var firstSigned = new Dictionary<string, long>();
        var snapshotMarks = new Dictionary<(string, long), string>();
        var signedRows = new Dictionary<(string, long), string>();
        long checkpointsInScope = 0;
        var expectedN = 1L;
        var prevMac = string.Empty;
        foreach (var cp in checkpoints)
        {
            if (cp.N != expectedN && tenantId is null) broken.Add(new BrokenLink(AuditCheckpoints.Table, expectedN, $"{CheckpointMissing}: next is {cp.N}"));
            expectedN = cp.N + 1;
            var valid = signer!.MacOf(cp.N, cp.Kind, cp.PersistenceId, cp.Seq, cp.Digest, cp.CreatedAt, cp.PrevMac) == cp.Mac;
            // A row removed from the middle shows as a MAC that covers another predecessor.
            if (cp.PrevMac != prevMac && tenantId is null && valid) broken.Add(new BrokenLink(AuditCheckpoints.Table, cp.N, $"{CheckpointMissing}: before {cp.N}"));
            prevMac = cp.Mac;
            if (!InScope(cp.PersistenceId)) continue;
            if (!valid)
            {
                broken.Add(new BrokenLink(cp.PersistenceId, cp.Seq, CheckpointForged));
                continue;
            }
            checkpointsInScope++;
            if (cp.Kind == AuditCheckpoints.SnapshotKind)
            {
                snapshotMarks[(cp.PersistenceId, cp.Seq)] = cp.Digest;
                continue;
            }
            signedRows[(cp.PersistenceId, cp.Seq)] = cp.Digest;
            if (!heads.TryGetValue(cp.PersistenceId, out var head) || cp.Seq >= head.Seq) heads[cp.PersistenceId] = cp;
            firstSigned.TryAdd(cp.PersistenceId, cp.Seq);
        }
        var seen = new HashSet<string>();

        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT persistence_id, sequence_number, message, tags FROM journal"
                          + (tenantId is null ? "" : " WHERE persistence_id LIKE @entities ESCAPE '\\' OR persistence_id = @tenant")
                          + " ORDER BY persistence_id, sequence_number";
        if (tenantId is not null)
        {
            JournalDb.Parameter(cmd, "@entities", "%|" + tenantId.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "|%");
            JournalDb.Parameter(cmd, "@tenant", "tenant|" + tenantId);
        }

        long events = 0, chained = 0, unchained = 0, entities = 0, keyed = 0;
        string? entity = null;
        string? lastHash = null;
        long lastSeq = 0;
        var sawKeyed = false;
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var pid = reader.GetString(0);
            // The LIKE prefilter is loose ('|t|' anywhere); the tenant is the persistence id's second part.
            if (tenantId is not null && TenantOf(pid) != tenantId) continue;
            var seq = reader.GetInt64(1);
            var stored = (byte[])reader.GetValue(2);
            if (pid != entity)
            {
                if (entity is not null) EndOfEntity(entity, lastSeq);
                entity = pid;
                lastHash = null;
                lastSeq = 0;
                sawKeyed = false;
                entities++;
                seen.Add(pid);
            }
            if (++events % 10_000 == 0) progress?.Invoke(events);
            if (seq != lastSeq + 1) broken.Add(new BrokenLink(pid, seq, $"{Gap}: after {lastSeq}"));
            lastSeq = seq;
            CheckTags(pid, seq, reader.IsDBNull(3) ? null : reader.GetString(3));
            if (signedRows.TryGetValue((pid, seq), out var signedDigest) && AuditCheckpoints.Digest(stored) != signedDigest)
                broken.Add(new BrokenLink(pid, seq, CheckpointMismatch));

            string? prevHash, hash;
            try
            {
                using var doc = JsonDocument.Parse(stored);
                var meta = doc.RootElement.GetProperty("meta");
                prevHash = meta.TryGetProperty("prev_hash", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
                hash = meta.TryGetProperty("hash", out var h) && h.ValueKind == JsonValueKind.String ? h.GetString() : null;
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
            {
                broken.Add(new BrokenLink(pid, seq, Unreadable));
                lastHash = null;
                continue;
            }
            if (hash is null)
            {
                // Events written before the chain carry no hash; after the first chained event, every one must.
                if (lastHash is not null) broken.Add(new BrokenLink(pid, seq, MissingHash));
                unchained++;
                continue;
            }
            chained++;
            if (!HashChain.TryOpen(stored, out var open, out var found) || found != hash)
            {
                broken.Add(new BrokenLink(pid, seq, Unreadable));
                lastHash = hash;
                continue;
            }
            if (prevHash != lastHash) broken.Add(new BrokenLink(pid, seq, PrevHashMismatch));
            if (HashChain.IsKeyed(hash))
            {
                keyed++;
                sawKeyed = true;
            }
            else if (key is not null && (sawKeyed || (firstSigned.TryGetValue(pid, out var genesis) && seq > genesis)))
            {
                // Once an entity is keyed (or signed), a plain SHA-256 link can only be a chain recomputed without the key.
                broken.Add(new BrokenLink(pid, seq, UnkeyedLink));
            }
            if (!HashChain.IsKeyed(hash) || key is not null)
                if (!HashChain.Holds(prevHash, open, hash, key)) broken.Add(new BrokenLink(pid, seq, HashMismatch));
            lastHash = hash;
        }
        if (entity is not null) EndOfEntity(entity, lastSeq);
        await reader.CloseAsync(); // the connection is needed for the snapshots
        progress?.Invoke(events);

        // An entity signed at a checkpoint and now without a single row was deleted.
        foreach (var (pid, head) in heads)
            if (!seen.Contains(pid)) broken.Add(new BrokenLink(pid, head.Seq, EntityDeleted));
        if (snapshotMarks.Count > 0) await CheckSnapshotsAsync(connection, snapshotMarks, broken, ct);
        return new VerifyReport(events, chained, unchained, entities, broken) { Keyed = keyed, Checkpoints = checkpointsInScope };

        void EndOfEntity(string pid, long last)
        {
            if (heads.TryGetValue(pid, out var head) && head.Seq > last)
                broken.Add(new BrokenLink(pid, head.Seq, $"{Truncated}: journal ends at {last}"));
        }

        void CheckTags(string pid, long seq, string? tags)
        {
            var kind = pid.Split('|')[0];
            if (!KindTags.TryGetValue(kind, out var kindTag)) return;
            var present = (tags ?? string.Empty).Split(';', StringSplitOptions.RemoveEmptyEntries);
            var tenantTag = Ids.TenantTag(TenantOf(pid));
            foreach (var expected in new[] { kindTag, tenantTag })
                if (!present.Contains(expected)) broken.Add(new BrokenLink(pid, seq, $"{TagMissing}: {expected}"));
            foreach (var other in present.Where(t => t.StartsWith("tenant:", StringComparison.Ordinal) && t != tenantTag))
                broken.Add(new BrokenLink(pid, seq, $"{TagForeign}: {other}"));
        }
    }

    private async Task CheckSnapshotsAsync(System.Data.Common.DbConnection connection, Dictionary<(string, long), string> marks,
        List<BrokenLink> broken, CancellationToken ct)
    {
        if (!await JournalDb.TableExistsAsync(connection, storage.IsPostgres, "snapshot", ct)) return;
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT persistence_id, sequence_number, snapshot FROM snapshot";
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            var at = (r.GetString(0), r.GetInt64(1));
            if (marks.TryGetValue(at, out var digest) && AuditCheckpoints.Digest((byte[])r.GetValue(2)) != digest)
                broken.Add(new BrokenLink(at.Item1, at.Item2, SnapshotMismatch));
        }
    }

    private static string TenantOf(string persistenceId)
    {
        var parts = persistenceId.Split('|');
        return parts.Length >= 2 ? parts[1] : string.Empty;
    }
}
