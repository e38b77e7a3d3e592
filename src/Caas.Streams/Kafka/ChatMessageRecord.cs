using System.Text;
using System.Text.Json;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Streams.Pipeline;

namespace Caas.Streams.Kafka;

/// <summary>
/// A <c>chat.messages</c> record read: the message, or why it cannot be one (a dead letter's tenant, code, reason).
/// The value is JSON <c>{tenant_id, conversation_id, sender_id, message_id, content: {type, text} or a text, created_at?}</c>;
/// the key, when present, is the conversation id.
/// </summary>
public sealed record ChatMessageRecord(IngestMessage? Message, string? TenantId, string? Code, string? Reason)
{
    public static ChatMessageRecord Read(string topic, byte[]? key, byte[]? value, KafkaSettings settings)
    {
        try
        {
            return ReadValue(topic, key, value, settings);
        }
        catch (InvalidOperationException e)
        {
            // A string escape that is not valid UTF-16 (a lone surrogate) throws when the string is decoded.
            return Invalid(null, ErrorCodes.MalformedJson, "The record value holds text that is not valid Unicode: " + e.Message);
        }
    }

    private static ChatMessageRecord ReadValue(string topic, byte[]? key, byte[]? value, KafkaSettings settings)
    {
        if (value is null || value.Length == 0) return Invalid(null, ErrorCodes.MalformedJson, "The record has no value.");
        // System.Text.Json checks UTF-8 only where it decodes a string, and throws (not JsonException) there.
        if (!System.Text.Unicode.Utf8.IsValid(value)) return Invalid(null, ErrorCodes.MalformedJson, "The record value is not UTF-8.");
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(value);
            root = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            return Invalid(null, ErrorCodes.MalformedJson, "The record value is not JSON: " + e.Message);
        }
        if (root.ValueKind != JsonValueKind.Object) return Invalid(null, ErrorCodes.MalformedJson, "The record value is not a JSON object.");

        var tenant = Text(root, "tenant_id");
        var missing = new List<string>();
        var conversation = Text(root, "conversation_id");
        var sender = Text(root, "sender_id");
        var messageId = Text(root, "message_id");
        if (tenant is null) missing.Add("tenant_id");
        if (conversation is null) missing.Add("conversation_id");
        if (sender is null) missing.Add("sender_id");
        if (messageId is null) missing.Add("message_id");
        var parsed = root.TryGetProperty("content", out var content) ? MessageContentJson.Read(content) : null;
        if (parsed is null) missing.Add("content");
        else if (parsed.Type.Length == 0) missing.Add("content.type");
        if (missing.Count > 0) return Invalid(tenant, ErrorCodes.ValidationFailed, "Missing or not a string: " + string.Join(", ", missing));

        if (key is { Length: > 0 } && Encoding.UTF8.GetString(key) is var k && k != conversation)
            return Invalid(tenant, ErrorCodes.ValidationFailed, $"The record key '{k}' is not its conversation_id '{conversation}'.");
        if (!settings.TenantAllowed(topic, tenant!))
            return Invalid(tenant, ErrorCodes.Forbidden, $"Tenant '{tenant}' is not allowed on topic '{topic}'.");

        return new ChatMessageRecord(new IngestMessage(tenant!, conversation!, sender!, messageId, parsed!,
            IngestSource.Kafka), tenant, null, null);
    }

    private static ChatMessageRecord Invalid(string? tenant, string code, string reason) => new(null, tenant, code, reason);

    private static string? Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s ? s : null;
}
