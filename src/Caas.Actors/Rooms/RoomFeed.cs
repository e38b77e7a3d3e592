using System.Text.Json;
using System.Text.Json.Serialization;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Serialization;

namespace Caas.Actors.Rooms;

/// <summary>
/// Live fan-out of a conversation: one DistributedPubSub topic per conversation. The entity publishes every persisted
/// event on it (each write's events in one <see cref="ConversationEventsPublished"/>); web nodes publish the room's ephemeral signals (joined, left, typing, receipts) on it too.
/// </summary>
public static class RoomTopics
{
    public static string Of(string tenantId, string conversationId) => "room:" + Ids.EntityId(tenantId, conversationId);
}

/// <summary>
/// A conversation event, published after its journal write. <see cref="JournalSeq"/> is the entity's persistence
/// sequence number, gap-free across all of its events, so a subscriber can tell that it missed one.
/// </summary>
public sealed record ConversationEventPublished(string TenantId, string ConversationId, long JournalSeq,
    [property: JsonConverter(typeof(ConversationEventJsonConverter))] IConversationEvent Event) : ICaasMessage;

/// <summary>
/// The events of one journal write, in order, published at once (one publish per write, not per event). Subscribers
/// handle it as its <see cref="Events"/> one after another.
/// </summary>
public sealed record ConversationEventsPublished(System.Collections.Immutable.ImmutableArray<ConversationEventPublished> Events) : ICaasMessage;

/// <summary>Ephemeral room signals: never persisted, at most once.</summary>
public static class RoomSignalKinds
{
    public const string MemberJoined = "member_joined";
    public const string MemberLeft = "member_left";
    /// <summary>A node announces its live connections to a node it has just seen join the room.</summary>
    public const string Present = "present";
    public const string Typing = "typing";
    public const string ReadReceipt = "read_receipt";
    public const string Delivered = "delivered";
}

/// <summary>
/// A signal about one connection of one user in a room; <see cref="Seq"/> for receipts, <see cref="EventSeq"/> for a
/// delivered receipt by journal sequence number (cumulative: the user's clients have every event up to it).
/// </summary>
public sealed record RoomSignal(string TenantId, string ConversationId, string Kind, string UserId, string ConnectionId,
    string NodeAddress, long? Seq, DateTimeOffset At, long? EventSeq = null) : ICaasMessage;

/// <summary>Writes the event with its own manifest beside it, so the polymorphic payload reads back as its type.</summary>
public sealed class ConversationEventJsonConverter : JsonConverter<IConversationEvent>
{
    private static readonly Dictionary<string, Type> EventTypes = CaasSerializer.Manifests
        .Where(kv => typeof(IConversationEvent).IsAssignableFrom(kv.Key))
        .ToDictionary(kv => kv.Value, kv => kv.Key);

    public override IConversationEvent Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        using var doc = JsonDocument.ParseValue(ref reader);
        var manifest = doc.RootElement.GetProperty("manifest").GetString() ?? string.Empty;
        if (!EventTypes.TryGetValue(manifest, out var type) && !CaasSerializer.Legacy.TryGetValue(manifest, out type))
            throw new JsonException($"Unknown conversation event manifest '{manifest}'.");
        return (IConversationEvent)(doc.RootElement.GetProperty("payload").Deserialize(type, CaasSerializer.WireJson)
                                    ?? throw new JsonException($"Null payload for {manifest}."));
    }

    public override void Write(Utf8JsonWriter writer, IConversationEvent value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        writer.WriteString("manifest", CaasSerializer.Manifests[value.GetType()]);
        writer.WritePropertyName("payload");
        // Node to node, never stored: the plaintext travels (remoting), so no node needs the key to fan it out.
        JsonSerializer.Serialize(writer, value, value.GetType(), CaasSerializer.WireJson);
        writer.WriteEndObject();
    }
}
