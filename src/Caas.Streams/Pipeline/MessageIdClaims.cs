using Caas.Streams.ReadModel;

namespace Caas.Streams.Pipeline;

/// <summary>
/// A client's message_id is unique per tenant. Before a message goes to its conversation, its id is claimed in one
/// database row (first claim wins, atomically, whichever node asks); the answer is the conversation that owns it.
/// Server-generated ids need no claim.
/// </summary>
public sealed class MessageIdClaims(ReadModelStore store)
{
    public async Task<string> ClaimAsync(string tenantId, string messageId, string conversationId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = ReadModelWriter.Command(c, null,
            "INSERT INTO message_id_claims (tenant_id, message_id, conversation_id) VALUES (@t, @m, @c) " +
            "ON CONFLICT (tenant_id, message_id) DO UPDATE SET tenant_id = excluded.tenant_id RETURNING conversation_id",
            ("t", tenantId), ("m", messageId), ("c", conversationId));
        return (string)(await cmd.ExecuteScalarAsync(ct))!;
    }
}
