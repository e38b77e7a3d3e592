using System.Text.Json;
using System.Text.Json.Nodes;
using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Actors.Calls;

/// <summary>
/// A finished call's summary as a message of its conversation: content type <c>call</c>, written by the call's starter
/// (sealed under their key like any of their messages). The stored content keeps the summary as JSON in its text; the
/// API and the hub show it as the fields of <c>content</c> (<see cref="View"/>). Its message id comes from the call id,
/// so a summary sent again (a retry, the call entity recovering) is recognised by the conversation and posted once.
/// </summary>
public static class CallSummaryMessage
{
    public const string ContentType = "call";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary><c>call_&lt;32 hex&gt;</c>: the call id without its conversation (unique within the conversation).</summary>
    public static string MessageIdOf(string callId) => callId.Length >= 37 ? callId[..37] : callId;

    /// <summary>
    /// A message id of the summaries' form (<c>call_</c> and 32 lower-case hex digits): reserved, so a member can neither
    /// take a call's summary id before the summary comes (it would then never be posted) nor post something in its place.
    /// </summary>
    public static bool IsSummaryId(string messageId) =>
        messageId.Length == 37 && messageId.StartsWith("call_", StringComparison.Ordinal) && messageId.AsSpan(5).IndexOfAnyExcept("0123456789abcdef") < 0;

    public static MessageContent Content(CallSummary s) => new(ContentType, JsonSerializer.Serialize(new
    {
        call_id = s.CallId,
        media = s.Media,
        started_by = s.StartedBy,
        started_at = s.StartedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture),
        ended_at = s.EndedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture),
        ended_by = s.EndedBy,
        reason = s.Reason,
        duration_seconds = Math.Round(s.DurationSeconds, 3),
        participants = s.Participants,
        quality = CallQuality.View(s.Quality),
    }, Json));

    /// <summary>
    /// The content as clients see it: <c>{type: "call", call_id, media, started_by, started_at, ended_at, ended_by,
    /// reason, duration_seconds, participants, quality}</c>; null when <paramref name="type"/> is not <c>call</c> or
    /// the stored text is not a summary (erased content keeps its own type).
    /// </summary>
    public static JsonElement? View(string? type, string? text)
    {
        if (type != ContentType || string.IsNullOrEmpty(text)) return null;
        try
        {
            if (JsonNode.Parse(text) is not JsonObject fields) return null;
            var content = new JsonObject { ["type"] = ContentType };
            foreach (var (name, value) in fields.ToList())
            {
                fields.Remove(name);
                content[name] = value;
            }
            return JsonSerializer.SerializeToElement(content);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
