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
}

/// <summary>
/// Walks the journal table itself, entity by entity in sequence order, and checks every event's stored bytes
/// against the hash chain (<see cref="HashChain"/>). It reads the rows with plain SQL, not through the serializer,
/// so an edited, unreadable, removed or reordered row is named, not skipped. Rows stream: memory stays constant.
/// </summary>
public sealed class JournalVerifier(StorageOptions storage)
{
    /// <summary>Problems named in a report.</summary>
    public const string HashMismatch = "hash_mismatch", PrevHashMismatch = "prev_hash_mismatch", Gap = "sequence_gap",
        MissingHash = "missing_hash", Unreadable = "unreadable";

    public async Task<VerifyReport> VerifyAsync(string? tenantId = null, Action<long>? progress = null, CancellationToken ct = default)
    {
        await using var connection = await JournalDb.OpenAsync(storage, ct);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT persistence_id, sequence_number, message FROM journal"
                          + (tenantId is null ? "" : " WHERE persistence_id LIKE @entities ESCAPE '\\' OR persistence_id = @tenant")
                          + " ORDER BY persistence_id, sequence_number";
        if (tenantId is not null)
        {
            JournalDb.Parameter(cmd, "@entities", "%|" + tenantId.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "|%");
            JournalDb.Parameter(cmd, "@tenant", "tenant|" + tenantId);
        }

        var broken = new List<BrokenLink>();
        long events = 0, chained = 0, unchained = 0, entities = 0;
        string? entity = null;
        string? lastHash = null;
        long lastSeq = 0;
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
                entity = pid;
                lastHash = null;
                lastSeq = 0;
                entities++;
            }
            if (++events % 10_000 == 0) progress?.Invoke(events);
            if (seq != lastSeq + 1) broken.Add(new BrokenLink(pid, seq, $"{Gap}: after {lastSeq}"));
            lastSeq = seq;

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
            if (HashChain.Compute(prevHash, open) != hash) broken.Add(new BrokenLink(pid, seq, HashMismatch));
            lastHash = hash;
        }
        progress?.Invoke(events);
        return new VerifyReport(events, chained, unchained, entities, broken);
    }

    private static string TenantOf(string persistenceId)
    {
        var parts = persistenceId.Split('|');
        return parts.Length >= 2 ? parts[1] : string.Empty;
    }
}
