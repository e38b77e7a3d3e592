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

    /// <summary>
    /// Claims the id for the conversation, or answers the claim that holds it (<c>Fresh</c>: this call took it). A
    /// pending claim of the same conversation is renewed, so a retry keeps it from the purge.
    /// </summary>
    public async Task<(MessageIdClaim Claim, bool Fresh)> ClaimAsync(string tenantId, string messageId, string conversationId,
        CancellationToken ct = default)
    {
        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        await using var c = await store.OpenAsync(ct);
        // The common case, a new id, is one statement; only an id already claimed needs the second.
        await using (var insert = ReadModelWriter.Command(c, null,
                         "INSERT INTO message_id_claims (tenant_id, message_id, conversation_id, claimed_at) VALUES (@t, @m, @c, @now) " +
                         "ON CONFLICT (tenant_id, message_id) DO NOTHING",
                         ("t", tenantId), ("m", messageId), ("c", conversationId), ("now", now)))
            if (await insert.ExecuteNonQueryAsync(ct) == 1) return (new MessageIdClaim(conversationId, null, null, null), true);
        await using var renew = ReadModelWriter.Command(c, null,
            "UPDATE message_id_claims SET claimed_at = @now WHERE tenant_id = @t AND message_id = @m AND conversation_id = @c AND seq IS NULL",
            ("t", tenantId), ("m", messageId), ("c", conversationId), ("now", now));
        await renew.ExecuteNonQueryAsync(ct);
        return (await FindAsync(tenantId, messageId, ct)
                ?? throw new InvalidOperationException($"The claim on {messageId} vanished while it was read; retry."), false);
    }

    /// <summary>The claim on an id, if any (a read: it claims nothing).</summary>
    public async Task<MessageIdClaim?> FindAsync(string tenantId, string messageId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = ReadModelWriter.Command(c, null,
            "SELECT conversation_id, seq, sender_id, created_at FROM message_id_claims WHERE tenant_id = @t AND message_id = @m",
            ("t", tenantId), ("m", messageId));
        return await ReadAsync(cmd, ct);
    }

    /// <summary>
    /// Makes the claim permanent once its message is in the journal. False when another conversation holds the id
    /// (which admission and the claim make impossible; the caller logs it).
    /// </summary>
    public async Task<bool> RecordAsync(string tenantId, string messageId, string conversationId, long seq, string senderId,
        DateTimeOffset createdAt, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = ReadModelWriter.Command(c, null,
            "INSERT INTO message_id_claims (tenant_id, message_id, conversation_id, claimed_at, seq, sender_id, created_at) " +
            "VALUES (@t, @m, @c, @now, @seq, @u, @at) " +
            "ON CONFLICT (tenant_id, message_id) DO UPDATE SET seq = excluded.seq, sender_id = excluded.sender_id, created_at = excluded.created_at " +
            "WHERE message_id_claims.conversation_id = excluded.conversation_id",
            ("t", tenantId), ("m", messageId), ("c", conversationId), ("now", _clock.GetUtcNow().ToUnixTimeMilliseconds()), ("seq", seq),
            ("u", senderId), ("at", createdAt.ToUnixTimeMilliseconds()));
        return await cmd.ExecuteNonQueryAsync(ct) > 0;
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

    private static async Task<MessageIdClaim?> ReadAsync(System.Data.Common.DbCommand cmd, CancellationToken ct)
    {
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct)) return null;
        return new MessageIdClaim(reader.GetString(0),
            reader.IsDBNull(1) ? null : reader.GetInt64(1),
            reader.IsDBNull(2) ? null : reader.GetString(2),
            reader.IsDBNull(3) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3)));
    }
}
