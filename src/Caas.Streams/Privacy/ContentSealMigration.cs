using System.Data.Common;
using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Actors.Privacy;
using Caas.Streams.Audit;
using Caas.Streams.ReadModel;

namespace Caas.Streams.Privacy;

/// <summary>What the migration found and did.</summary>
public sealed record SealMigrationReport(long Entities, long Events, long Sealed, long Rechained, long SnapshotsDropped,
    VerifyReport Before, VerifyReport After);

/// <summary>
/// The one-time migration of message events written before content was sealed (<c>caas migrate seal-content</c>),
/// so that they too can be erased. For each conversation, in sequence order, it seals every plaintext message and edit
/// under its author's data key and re-computes the hash chain from that event on (each later event's
/// <c>prev_hash</c> and <c>hash</c>), rewrites only the rows that changed, and drops the entity's snapshots (they hold
/// the last hash; the entity recovers from the journal). It refuses to start on a journal whose chain is already
/// broken (that evidence must not be overwritten), and verifies the whole chain again when done. Run it with the
/// nodes stopped: a live entity would chain onto the hash it had in memory. Idempotent: a second run changes nothing.
/// </summary>
public static class ContentSealMigration
{
    public static async Task<SealMigrationReport> RunAsync(StorageOptions storage, ActorSystem system, IContentVault vault,
        Action<long>? progress = null, CancellationToken ct = default)
    {
        var verifier = new JournalVerifier(storage);
        var before = await verifier.VerifyAsync(ct: ct);
        if (!before.Intact)
            throw new InvalidOperationException(
                $"The journal's hash chain is already broken in {before.Broken.Count} places (first: {before.Broken[0].PersistenceId} seq {before.Broken[0].Seq}); " +
                "run `caas audit verify`, and keep that evidence: nothing was migrated.");

        var serialization = system.Serialization;
        byte[] ToBytes(object o) => serialization.FindSerializerFor(o).ToBinary(o);
        long entities = 0, events = 0, sealedCount = 0, rechained = 0, snapshots = 0;

        await using var reader = await JournalDb.OpenAsync(storage, ct);
        await using var writer = await JournalDb.OpenAsync(storage, ct);
        await using var select = reader.CreateCommand();
        select.CommandText = "SELECT ordering, persistence_id, sequence_number, message, manifest, identifier FROM journal " +
                             "WHERE persistence_id LIKE 'conversation|%' ORDER BY persistence_id, sequence_number";
        await using var rows = await select.ExecuteReaderAsync(ct);

        string? entity = null;
        string? prevHash = null;
        var changes = new List<(long Ordering, byte[] Bytes)>();
        var changedEntity = false;
        while (await rows.ReadAsync(ct))
        {
            var pid = rows.GetString(1);
            if (pid != entity)
            {
                if (entity is not null) snapshots += await CommitAsync(writer, storage, entity, changes, changedEntity, ct);
                entity = pid;
                prevHash = null;
                changedEntity = false;
                entities++;
            }
            if (++events % 10_000 == 0) progress?.Invoke(events);
            var stored = (byte[])rows.GetValue(3);
            var e = (IConversationEvent)serialization.Deserialize(stored, rows.GetInt32(5), rows.GetString(4));
            var next = ContentSealing.Seal(e, vault, Ids.SplitEntityId(pid["conversation|".Length..]).LocalId);
            var sealedNow = !ReferenceEquals(next, e);
            if (sealedNow) sealedCount++;
            if (e.Meta.Hash is not null)
            {
                // Chained: re-seal onto the (possibly new) previous hash; unchanged input gives the same bytes back.
                next = HashChain.Seal(next, prevHash, ToBytes);
                prevHash = next.Meta.Hash;
            }
            var bytes = ToBytes(next);
            if (bytes.AsSpan().SequenceEqual(stored)) continue;
            if (!sealedNow) rechained++;
            changes.Add((rows.GetInt64(0), bytes));
            changedEntity = true;
            if (changes.Count >= 500) await FlushAsync(writer, changes, ct);
        }
        if (entity is not null) snapshots += await CommitAsync(writer, storage, entity, changes, changedEntity, ct);
        progress?.Invoke(events);

        var after = await verifier.VerifyAsync(ct: ct);
        return new SealMigrationReport(entities, events, sealedCount, rechained, snapshots, before, after);
    }

    private static async Task<long> CommitAsync(DbConnection writer, StorageOptions storage, string pid,
        List<(long Ordering, byte[] Bytes)> changes, bool changed, CancellationToken ct)
    {
        await FlushAsync(writer, changes, ct);
        if (!changed) return 0;
        if (!await SnapshotTableExistsAsync(writer, storage, ct)) return 0;
        await using var drop = writer.CreateCommand();
        drop.CommandText = "DELETE FROM snapshot WHERE persistence_id = @pid";
        JournalDb.Parameter(drop, "@pid", pid);
        return await drop.ExecuteNonQueryAsync(ct);
    }

    private static async Task FlushAsync(DbConnection writer, List<(long Ordering, byte[] Bytes)> changes, CancellationToken ct)
    {
        if (changes.Count == 0) return;
        await using var tx = await writer.BeginTransactionAsync(ct);
        await using var update = writer.CreateCommand();
        update.Transaction = tx;
        update.CommandText = "UPDATE journal SET message = @m WHERE ordering = @o";
        var m = JournalDb.Parameter(update, "@m", Array.Empty<byte>());
        var o = JournalDb.Parameter(update, "@o", 0L);
        foreach (var (ordering, bytes) in changes)
        {
            m.Value = bytes;
            o.Value = ordering;
            await update.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        changes.Clear();
    }

    private static async Task<bool> SnapshotTableExistsAsync(DbConnection c, StorageOptions storage, CancellationToken ct)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = storage.IsPostgres
            ? "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'snapshot'"
            : "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'snapshot'";
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct)) > 0;
    }
}
