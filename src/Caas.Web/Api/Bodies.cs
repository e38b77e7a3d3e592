using System.Text.Json;
using Caas.Actors.Common;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Http;

namespace Caas.Web.Api;

[System.Text.Json.Serialization.JsonConverter(typeof(ContentBodyConverter))]
public sealed record ContentBody(string? Type, string? Text)
{
    /// <summary>The file of an attachment (<c>{type, media_id, caption?}</c>; the caption is <see cref="Text"/>).</summary>
    public Caas.Actors.Conversations.MessageAttachment? Attachment { get; init; }

    public Caas.Actors.Conversations.MessageContent ToContent() => new(Type ?? string.Empty, Text) { Attachment = Attachment };
}
public sealed record CreateConversationBody(string? Type, string? Title, string[]? Members, Dictionary<string, string>? Metadata);
public sealed record UpdateConversationBody(string? Title, Dictionary<string, string>? Metadata);
public sealed record AddMemberBody(string? UserId, string? Role);
public sealed record RoleBody(string? Role);
public sealed record PostMessageBody(string? ConversationId, ContentBody? Content, string? MessageId);
public sealed record EditMessageBody(ContentBody? Content);
public sealed record ReactionBody(string? Reaction);
public sealed record ModerationBody(string? UserId, long? DurationSeconds, string? Reason);
public sealed record MarkReadBody(long? Seq);
public sealed record ProfileBody(string? DisplayName, string? TimeZone, string? Locale);
public sealed record TenantSettingsBody(int? MessageRatePerMinute, int? IdempotencyHorizonSeconds, string? DefaultPhoneRegion, int? MaxMessageChars,
    int? RejectedAttemptsPerMinute = null, int? MessageCapPerHour = null, string? DefaultLanguage = null);

/// <summary>Reads a JSON body: not JSON → 400 malformed_json; a field of the wrong type → 400 validation_failed naming it.</summary>
public static class Body
{
    public static async Task<(T? Value, IResult? Error)> ReadAsync<T>(HttpRequest request) where T : class
    {
        byte[] bytes;
        try
        {
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer, request.HttpContext.RequestAborted);
            bytes = buffer.ToArray();
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, Problems.Of(ErrorCodes.PayloadTooLarge, "The request body is over its limit."));
        }
        catch (BadHttpRequestException)
        {
            // The body ended before its Content-Length, or arrived too slowly: the client's fault, not ours.
            return (null, Problems.Of(ErrorCodes.MalformedJson, "The request body could not be read in full."));
        }

        // System.Text.Json checks UTF-8 only in the strings it decodes, so invalid bytes inside a key the target type
        // ignores would pass as an empty update: the whole body must be UTF-8.
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            return (null, Problems.Of(ErrorCodes.MalformedJson, "The body is not valid UTF-8."));

        try
        {
            using var _ = JsonDocument.Parse(bytes);
        }
        catch (JsonException)
        {
            return (null, Problems.Of(ErrorCodes.MalformedJson, "The body is not valid JSON."));
        }

        try
        {
            var value = JsonSerializer.Deserialize<T>(bytes, Json.Options);
            return value is null
                ? (null, Problems.Of(ErrorCodes.ValidationFailed, "The body must be a JSON object.",
                    new Dictionary<string, string[]> { ["$"] = ["Expected an object."] }))
                : (value, null);
        }
        catch (JsonException e)
        {
            var field = (e.Path ?? "$").TrimStart('$', '.');
            return (null, Problems.Of(ErrorCodes.ValidationFailed, "A field has the wrong type.",
                new Dictionary<string, string[]> { [field.Length == 0 ? "$" : field] = ["Has the wrong type."] }));
        }
    }
}

/// <summary>Opaque cursors: the position they encode is not part of the contract.</summary>
public static class Cursor
{
    public static string Encode(string kind, string value) =>
        Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(kind + ":" + value)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static bool TryDecode(string? cursor, string kind, out string value)
    {
        value = string.Empty;
        if (string.IsNullOrEmpty(cursor)) return false;
        try
        {
            var b64 = cursor.Replace('-', '+').Replace('_', '/');
            b64 = b64.PadRight(b64.Length + (4 - b64.Length % 4) % 4, '=');
            var text = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(b64));
            if (!text.StartsWith(kind + ":", StringComparison.Ordinal)) return false;
            value = text[(kind.Length + 1)..];
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
