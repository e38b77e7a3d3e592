using Caas.Actors.Common;
using Caas.Streams.Operational;
using Caas.Streams.ReadModel;

namespace Caas.Streams.Pipeline;

/// <summary>
/// A claim on a message id: the conversation that holds it and, once a message with it is in the journal, that
/// message's seq, sender and time (<see cref="Persisted"/>).
/// </summary>
public sealed record MessageIdClaim(string ConversationId, long? Seq, string? SenderId, DateTimeOffset? CreatedAt)
{
    public bool Persisted => Seq is not null;
}

/// <summary>
/// A client's message_id is unique per tenant. Once a message is admitted (its sender may post there), its id is
/// claimed in one database row (first claim wins, atomically, whichever node asks). A claim whose message reaches the
/// journal becomes a permanent <c>(tenant, message_id) → (conversation, seq)</c> row, for server-generated ids too,
/// so an id can never be stored twice however old it is. A claim that never led to a message (its node crashed, the
/// entity refused it at the last moment) is purged once older than the tenant's idempotency horizon.
/// </summary>
public sealed class MessageIdClaims(OperationalStore store, TimeProvider? clock = null)
{
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;

    private long _commits;
    private long _lookups;

    /// <summary>
    /// Batches of new claims and of records written, one statement each however many ids it carries (lookups apart); on
    /// SQLite batches that wait together share one commit (<see cref="OperationalStore.GroupCommit"/>).
    /// </summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Lookups of ids that were already claimed (a batch of fresh ids needs none).</summary>
    public long Lookups => Interlocked.Read(ref _lookups);

    /// <summary>
    /// Claims the id for the conversation, or answers the claim that holds it (<c>Fresh</c>: this call took it). A
    /// pending claim of the same conversation is renewed, so a retry keeps it from the purge.
    /// </summary>
    public async Task<(MessageIdClaim Claim, bool Fresh)> ClaimAsync(string tenantId, string messageId, string conversationId,
        CancellationToken ct = default)
    {
        var (claim, fresh) = (await ClaimManyAsync([new ClaimRequest(tenantId, messageId, conversationId)], ct))[0];
        return (claim ?? throw new InvalidOperationException($"The claim on {messageId} vanished while it was read; retry."), fresh);
    }

    /// <summary>
    /// <see cref="ClaimAsync"/> for many ids in one commit: the new ids are claimed by one statement, and only the ids
    /// already claimed are looked up (and renewed), by one more. Answers in the order of <paramref name="requests"/>; an
    /// id asked for twice is fresh only for its first request. A null claim: it vanished while it was read (purged in
    /// between); that request may be retried.
    /// </summary>
    public async Task<IReadOnlyList<(MessageIdClaim? Claim, bool Fresh)>> ClaimManyAsync(IReadOnlyList<ClaimRequest> requests,
        CancellationToken ct = default)
    {
        var results = new (MessageIdClaim? Claim, bool Fresh)[requests.Count];
        if (requests.Count == 0) return results;
        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        // One request per id, in one order for every batch: concurrent batches then take the index's locks in the
        // same order and cannot deadlock.
        var first = new Dictionary<(string, string), int>();
        for (var i = 0; i < requests.Count; i++) first.TryAdd((requests[i].TenantId, requests[i].MessageId), i);
        var claimants = first.OrderBy(f => f.Key.Item1, StringComparer.Ordinal).ThenBy(f => f.Key.Item2, StringComparer.Ordinal)
            .Select(f => f.Value).ToList();
        // SQLite: no connection of this call's own; its statements go into the file's next group commit.
        await using var c = store.IsPostgres ? await store.OpenAsync(ct) : null;
        var fresh = store.IsPostgres
            ? await ClaimOnPostgresAsync(c!, requests, claimants, now, ct)
            : await ClaimOnSqliteAsync(requests, claimants, now, ct);
        var taken = new List<int>();
        for (var i = 0; i < requests.Count; i++)
        {
            if (fresh.Contains(i)) results[i] = (new MessageIdClaim(requests[i].ConversationId, null, null, null), true);
            else taken.Add(i);
        }
        if (taken.Count == 0) return results;
        var found = await LookUpAndRenewAsync(c, taken.Select(i => requests[i]).ToList(), now, ct);
        foreach (var i in taken) results[i] = (found.GetValueOrDefault((requests[i].TenantId, requests[i].MessageId)), false);
        return results;
    }

    private async Task<HashSet<int>> ClaimOnPostgresAsync(System.Data.Common.DbConnection c, IReadOnlyList<ClaimRequest> requests,
        List<int> claimants, long now, CancellationToken ct)
    {
        await using var insert = ReadModelWriter.Command(c, null,
            "INSERT INTO message_id_claims (tenant_id, message_id, conversation_id, claimed_at) " +
            "SELECT u.t, u.m, u.c, @now FROM unnest(@t::text[], @m::text[], @c::text[]) WITH ORDINALITY AS u(t, m, c, o) ORDER BY u.o " +
            "ON CONFLICT (tenant_id, message_id) DO NOTHING RETURNING tenant_id, message_id",
            ("t", claimants.Select(i => requests[i].TenantId).ToArray()), ("m", claimants.Select(i => requests[i].MessageId).ToArray()),
            ("c", claimants.Select(i => requests[i].ConversationId).ToArray()), ("now", now));
        var claimed = new HashSet<(string, string)>();
        await using (var reader = await insert.ExecuteReaderAsync(ct))
            while (await reader.ReadAsync(ct)) claimed.Add((reader.GetString(0), reader.GetString(1)));
        Interlocked.Increment(ref _commits);
        return claimants.Where(i => claimed.Contains((requests[i].TenantId, requests[i].MessageId))).ToHashSet();
    }

    private async Task<HashSet<int>> ClaimOnSqliteAsync(IReadOnlyList<ClaimRequest> requests, List<int> claimants, long now,
        CancellationToken ct)
    {
        var fresh = await store.GroupCommit!.RunAsync((connection, _) =>
        {
            var taken = new HashSet<int>();
            using var insert = SqliteStatement.Prepare(connection,
                "INSERT INTO message_id_claims (tenant_id, message_id, conversation_id, claimed_at) VALUES (?1, ?2, ?3, ?4) " +
                "ON CONFLICT (tenant_id, message_id) DO NOTHING");
            foreach (var i in claimants)
                if (insert.Bind(1, requests[i].TenantId).Bind(2, requests[i].MessageId).Bind(3, requests[i].ConversationId).Bind(4, now).Run() == 1)
                    taken.Add(i);
            return taken;
        }, ct);
        Interlocked.Increment(ref _commits);
        return fresh;
    }

    /// <summary>The claims on ids already taken, renewing the pending ones of the same conversation.</summary>
    private async Task<Dictionary<(string, string), MessageIdClaim>> LookUpAndRenewAsync(System.Data.Common.DbConnection? c,
        List<ClaimRequest> taken, long now, CancellationToken ct)
    {
        Interlocked.Increment(ref _lookups);
        var found = new Dictionary<(string, string), MessageIdClaim>();
        if (store.IsPostgres)
        {
            await using var cmd = ReadModelWriter.Command(c!, null,
                "WITH u AS (SELECT * FROM unnest(@t::text[], @m::text[], @c::text[]) AS u(t, m, c)), " +
                "renewed AS (UPDATE message_id_claims SET claimed_at = @now FROM u WHERE message_id_claims.tenant_id = u.t " +
                "AND message_id_claims.message_id = u.m AND message_id_claims.conversation_id = u.c AND message_id_claims.seq IS NULL) " +
                "SELECT tenant_id, message_id, conversation_id, seq, sender_id, created_at FROM message_id_claims " +
                "WHERE (tenant_id, message_id) IN (SELECT t, m FROM u)",
                ("t", taken.Select(r => r.TenantId).ToArray()), ("m", taken.Select(r => r.MessageId).ToArray()),
                ("c", taken.Select(r => r.ConversationId).ToArray()), ("now", now));
            await ReadAllAsync(cmd, found, ct);
            return found;
        }
        return await store.GroupCommit!.RunAsync((connection, tx) =>
        {
            using var renew = ReadModelWriter.Command(connection, tx,
                "UPDATE message_id_claims SET claimed_at = @now WHERE tenant_id = @t AND message_id = @m AND conversation_id = @c AND seq IS NULL",
                ("t", ""), ("m", ""), ("c", ""), ("now", now));
            using var select = ReadModelWriter.Command(connection, tx,
                "SELECT tenant_id, message_id, conversation_id, seq, sender_id, created_at FROM message_id_claims WHERE tenant_id = @t AND message_id = @m",
                ("t", ""), ("m", ""));
            foreach (var r in taken)
            {
                renew.Parameters["t"].Value = r.TenantId;
                renew.Parameters["m"].Value = r.MessageId;
                renew.Parameters["c"].Value = r.ConversationId;
                renew.ExecuteNonQuery();
                select.Parameters["t"].Value = r.TenantId;
                select.Parameters["m"].Value = r.MessageId;
                using var reader = select.ExecuteReader();
                while (reader.Read()) Add(reader, found);
            }
            return found;
        }, ct);
    }

    /// <summary>The claim on an id, if any (a read: it claims nothing).</summary>
    public async Task<MessageIdClaim?> FindAsync(string tenantId, string messageId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = ReadModelWriter.Command(c, null,
            "SELECT tenant_id, message_id, conversation_id, seq, sender_id, created_at FROM message_id_claims WHERE tenant_id = @t AND message_id = @m",
            ("t", tenantId), ("m", messageId));
        var found = new Dictionary<(string, string), MessageIdClaim>();
        await ReadAllAsync(cmd, found, ct);
        return found.GetValueOrDefault((tenantId, messageId));
    }

    /// <summary>
    /// Makes the claim permanent once its message is in the journal. False when another conversation holds the id
    /// (which admission and the claim make impossible; the caller logs it).
    /// </summary>
    public async Task<bool> RecordAsync(string tenantId, string messageId, string conversationId, long seq, string senderId,
        DateTimeOffset createdAt, CancellationToken ct = default) =>
        (await RecordManyAsync([new ClaimRecord(tenantId, messageId, conversationId, seq, senderId, createdAt)], ct))[0];

    /// <summary>
    /// <see cref="RecordAsync"/> for many stored messages in one commit (one statement on PostgreSQL, one prepared
    /// statement in one transaction on SQLite). Answers in the order of <paramref name="records"/>.
    /// </summary>
    public async Task<IReadOnlyList<bool>> RecordManyAsync(IReadOnlyList<ClaimRecord> records, CancellationToken ct = default)
    {
        var results = new bool[records.Count];
        if (records.Count == 0) return results;
        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        // One row per id (an upsert may not touch a row twice), in the same order for every batch (no deadlocks).
        var first = new Dictionary<(string, string), int>();
        for (var i = 0; i < records.Count; i++) first.TryAdd((records[i].TenantId, records[i].MessageId), i);
        var rows = first.OrderBy(f => f.Key.Item1, StringComparer.Ordinal).ThenBy(f => f.Key.Item2, StringComparer.Ordinal)
            .Select(f => records[f.Value]).ToList();
        const string Upsert = "ON CONFLICT (tenant_id, message_id) DO UPDATE SET seq = excluded.seq, sender_id = excluded.sender_id, " +
                              "created_at = excluded.created_at WHERE message_id_claims.conversation_id = excluded.conversation_id";
        var recorded = new HashSet<(string, string)>();
        if (store.IsPostgres)
        {
            await using var c = await store.OpenAsync(ct);
            await using var cmd = ReadModelWriter.Command(c, null,
                "INSERT INTO message_id_claims (tenant_id, message_id, conversation_id, claimed_at, seq, sender_id, created_at) " +
                "SELECT u.t, u.m, u.c, @now, u.s, u.u, u.a " +
                "FROM unnest(@t::text[], @m::text[], @c::text[], @s::bigint[], @u::text[], @a::bigint[]) WITH ORDINALITY AS u(t, m, c, s, u, a, o) " +
                $"ORDER BY u.o {Upsert} RETURNING tenant_id, message_id",
                ("t", rows.Select(r => r.TenantId).ToArray()), ("m", rows.Select(r => r.MessageId).ToArray()),
                ("c", rows.Select(r => r.ConversationId).ToArray()), ("s", rows.Select(r => r.Seq).ToArray()),
                ("u", rows.Select(r => r.SenderId).ToArray()), ("a", rows.Select(r => r.CreatedAt.ToUnixTimeMilliseconds()).ToArray()),
                ("now", now));
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) recorded.Add((reader.GetString(0), reader.GetString(1)));
        }
        else
        {
            // In the file's next group commit, with whatever claims and records wait beside it.
            recorded = await store.GroupCommit!.RunAsync((connection, _) =>
            {
                var done = new HashSet<(string, string)>();
                using var upsert = SqliteStatement.Prepare(connection,
                    "INSERT INTO message_id_claims (tenant_id, message_id, conversation_id, claimed_at, seq, sender_id, created_at) " +
                    $"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) {Upsert}");
                foreach (var r in rows)
                    if (upsert.Bind(1, r.TenantId).Bind(2, r.MessageId).Bind(3, r.ConversationId).Bind(4, now).Bind(5, r.Seq).Bind(6, r.SenderId)
                            .Bind(7, r.CreatedAt.ToUnixTimeMilliseconds()).Run() > 0)
                        done.Add((r.TenantId, r.MessageId));
                return done;
            }, ct);
        }
        Interlocked.Increment(ref _commits);
        for (var i = 0; i < records.Count; i++) results[i] = recorded.Contains((records[i].TenantId, records[i].MessageId));
        return results;
    }

    /// <summary>The tenants that hold claims not (yet) known to have led to a message.</summary>
    public async Task<IReadOnlyList<string>> TenantsWithPendingClaimsAsync(CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = ReadModelWriter.Command(c, null, "SELECT DISTINCT tenant_id FROM message_id_claims WHERE seq IS NULL");
        var tenants = new List<string>();
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) tenants.Add(reader.GetString(0));
        return tenants;
    }

    /// <summary>
    /// Purges a tenant's claims older than <paramref name="horizon"/> that never led to a message. A pending claim
    /// whose message the read model holds (its node stopped between the journal write and the claim's record, or it
    /// predates permanent rows) is made permanent instead. Returns the number purged.
    /// </summary>
    public async Task<int> PurgeAsync(string tenantId, TimeSpan horizon, CancellationToken ct = default)
    {
        var cutoff = (_clock.GetUtcNow() - horizon).ToUnixTimeMilliseconds();
        const string Stale = "message_id_claims.tenant_id = @t AND message_id_claims.seq IS NULL " +
                             "AND (message_id_claims.claimed_at IS NULL OR message_id_claims.claimed_at < @cutoff)";
        const string Message = "FROM rm_messages m WHERE m.tenant_id = message_id_claims.tenant_id AND m.message_id = message_id_claims.message_id";
        await using var c = await store.OpenWithReadModelAsync(ct);
        await using (var backfill = ReadModelWriter.Command(c, null,
                         $"UPDATE message_id_claims SET seq = (SELECT m.seq {Message}), sender_id = (SELECT m.sender_id {Message}), " +
                         $"created_at = (SELECT m.created_at {Message}) WHERE {Stale} AND EXISTS (SELECT 1 {Message} " +
                         "AND m.conversation_id = message_id_claims.conversation_id)",
                         ("t", tenantId), ("cutoff", cutoff)))
            await backfill.ExecuteNonQueryAsync(ct);
        await using var purge = ReadModelWriter.Command(c, null,
            $"DELETE FROM message_id_claims WHERE {Stale} AND NOT EXISTS (SELECT 1 {Message})", ("t", tenantId), ("cutoff", cutoff));
        return await purge.ExecuteNonQueryAsync(ct);
    }

    private static async Task ReadAllAsync(System.Data.Common.DbCommand cmd, Dictionary<(string, string), MessageIdClaim> into,
        CancellationToken ct)
    {
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) Add(reader, into);
    }

    private static void Add(System.Data.Common.DbDataReader reader, Dictionary<(string, string), MessageIdClaim> into) =>
        into[(reader.GetString(0), reader.GetString(1))] = new MessageIdClaim(reader.GetString(2),
            reader.IsDBNull(3) ? null : reader.GetInt64(3),
            reader.IsDBNull(4) ? null : reader.GetString(4),
            reader.IsDBNull(5) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5)));
}

/// <summary>One message's claim on its id, for <see cref="MessageIdClaims.ClaimManyAsync"/>.</summary>
public sealed record ClaimRequest(string TenantId, string MessageId, string ConversationId);

/// <summary>A stored message whose id becomes permanently taken, for <see cref="MessageIdClaims.RecordManyAsync"/>.</summary>
public sealed record ClaimRecord(string TenantId, string MessageId, string ConversationId, long Seq, string SenderId, DateTimeOffset CreatedAt);
