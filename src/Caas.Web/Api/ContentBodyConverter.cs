using System.Text.Json;
using System.Text.Json.Serialization;
using Caas.Streams.Pipeline;

namespace Caas.Web.Api;

/// <summary>Reads a body's <c>content</c> as <see cref="MessageContentJson"/> does: a plain string or <c>{type, text}</c>.</summary>
public sealed class ContentBodyConverter : JsonConverter<ContentBody>
{
    public override ContentBody Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        using var document = JsonDocument.ParseValue(ref reader);
        var content = MessageContentJson.Read(document.RootElement) ?? throw new JsonException("content is a text or {type, text}.");
        return new ContentBody(content.Type, content.Text) { Attachment = content.Attachment };
    }

    public override void Write(Utf8JsonWriter writer, ContentBody value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        writer.WriteString("type", value.Type);
        if (value.Attachment is { } a)
        {
            writer.WriteString("media_id", a.MediaId);
            writer.WriteString("caption", value.Text);
        }
        else writer.WriteString("text", value.Text);
        writer.WriteEndObject();
    }
}
