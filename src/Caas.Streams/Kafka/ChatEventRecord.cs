using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Persistence.Query;
using Caas.Actors.Conversations;
using Caas.Actors.Serialization;

namespace Caas.Streams.Kafka;

/// <summary>
/// One <c>chat.events</c> record: key <c>tenant|conversation|seq</c>, value JSON with tenant_id, conversation_id,
/// type (the event's manifest), seq, message_seq (message events) and payload. <c>seq</c> is the event's sequence
/// in its conversation's journal: unique per event, so a consumer dedupes on the key. (A message's own seq is not:
/// an edit carries the seq of the message it edits.) Records of one conversation go to one partition, in order.
/// </summary>
public sealed record ChatEventRecord(
    [property: JsonPropertyName("tenant_id")] string TenantId,
    [property: JsonPropertyName("conversation_id")] string ConversationId,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("seq")] long Seq,
    [property: JsonPropertyName("message_seq")] long? MessageSeq,
    [property: JsonPropertyName("payload")] JsonElement Payload)
{
    public string Key => $"{TenantId}|{ConversationId}|{Seq}";

    /// <summary>The partition key: every record of a conversation on one partition.</summary>
    public string PartitionKey => $"{TenantId}|{ConversationId}";

    public static ChatEventRecord? From(EventEnvelope envelope)
    {
        if (envelope.Event is not IConversationEvent e) return null;
        // persistence id: conversation|{tenant}|{conversation}
        var parts = envelope.PersistenceId.Split('|');
        if (parts.Length != 3) return null;
        var type = CaasSerializer.Manifests.TryGetValue(e.GetType(), out var manifest) ? manifest : e.GetType().Name;
        long? messageSeq = e switch
        {
            MessagePosted p => p.Seq,
            MessageEdited p => p.Seq,
            MessageDeleted p => p.Seq,
            MessageEnriched p => p.Seq,
            _ => null,
        };
        return new ChatEventRecord(parts[1], parts[2], type, envelope.SequenceNr, messageSeq,
            JsonSerializer.SerializeToElement(e, e.GetType(), CaasSerializer.Json));
    }

    public string ToJson() => JsonSerializer.Serialize(this, CaasSerializer.Json);

    /// <summary>The record as UTF-8 JSON, the bytes <see cref="ToJson"/> would encode to.</summary>
    public byte[] ToUtf8Json() => JsonSerializer.SerializeToUtf8Bytes(this, CaasSerializer.Json);

    /// <summary>A stable partition for <paramref name="key"/> (FNV-1a; the same on every node and run).</summary>
    public static int PartitionFor(string key, int partitions)
    {
        var hash = 2166136261u;
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(key))
        {
            hash ^= b;
            hash *= 16777619u;
        }
        return (int)(hash % (uint)partitions);
    }
}
