using System.Text.Json;
using Caas.Actors.Conversations;

namespace Caas.Streams.Pipeline;

/// <summary>
/// The one reading of a message's <c>content</c> in JSON, for every way in (REST posts and edits, NDJSON lines, Kafka
/// records): a plain string, the form most chat APIs send, is text; an object is <c>{type, text}</c> (a missing or
/// non-string type reads as empty, which validation refuses), or an attachment <c>{type, media_id, caption?}</c>. Anything else is no content (null).
/// </summary>
public static class MessageContentJson
{
    public static MessageContent? Read(JsonElement content) => content.ValueKind switch
    {
        JsonValueKind.String => new MessageContent("text", content.GetString()),
        JsonValueKind.Object => ReadObject(content,
            content.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : string.Empty),
        _ => null,
    };

    /// <summary>
    /// An object's content of the given type: text reads <c>text</c>; an attachment type (image, file, audio, video) reads
    /// <c>{media_id, caption?}</c>, the caption as the content's text (a missing or non-string media id reads as empty,
    /// which validation refuses).
    /// </summary>
    public static MessageContent ReadObject(JsonElement content, string type)
    {
        if (!MessageContent.IsAttachmentType(type))
            return new MessageContent(type, content.TryGetProperty("text", out var x) && x.ValueKind == JsonValueKind.String ? x.GetString() : null);
        var mediaId = content.TryGetProperty("media_id", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : string.Empty;
        var caption = content.TryGetProperty("caption", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
        return new MessageContent(type, caption) { Attachment = new MessageAttachment(mediaId) };
    }
}
