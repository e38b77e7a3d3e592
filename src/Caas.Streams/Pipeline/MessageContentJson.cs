using System.Text.Json;
using Caas.Actors.Conversations;

namespace Caas.Streams.Pipeline;

/// <summary>
/// The one reading of a message's <c>content</c> in JSON, for every way in (REST posts and edits, NDJSON lines, Kafka
/// records): a plain string, the form most chat APIs send, is text; an object is <c>{type, text}</c> (a missing or
/// non-string type reads as empty, which validation refuses). Anything else is no content (null).
/// </summary>
public static class MessageContentJson
{
    public static MessageContent? Read(JsonElement content) => content.ValueKind switch
    {
        JsonValueKind.String => new MessageContent("text", content.GetString()),
        JsonValueKind.Object => new MessageContent(
            content.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : string.Empty,
            content.TryGetProperty("text", out var x) && x.ValueKind == JsonValueKind.String ? x.GetString() : null),
        _ => null,
    };
}
