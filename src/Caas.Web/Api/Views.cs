using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Streams.ReadModel;

namespace Caas.Web.Api;

/// <summary>Response shapes (snake_case on the wire, times RFC 3339 UTC).</summary>
public static class Views
{
    public static object Conversation(ConversationView v) => new
    {
        id = v.ConversationId,
        type = v.Type,
        title = v.Title,
        metadata = v.Metadata,
        members = v.Members.Select(m => new { user_id = m.UserId, role = m.Role.ToWire(), joined_at = Utc(m.JoinedAt) }),
        created_at = Utc(v.CreatedAt),
        created_by = v.CreatedBy,
        last_seq = v.LastSeq,
    };

    public static object Conversation(ConversationRow r) => new
    {
        id = r.ConversationId,
        type = r.Type,
        title = r.Title,
        metadata = r.Metadata,
        members = r.Members.Select(m => new { user_id = m.UserId, role = m.Role, joined_at = Utc(m.JoinedAt) }),
        created_at = Utc(r.CreatedAt),
        created_by = r.CreatedBy,
        last_seq = r.LastSeq,
        last_message_at = r.LastMessage is null ? null : Utc(r.LastActivityAt),
        last_message = r.LastMessage is { } m ? Preview(m) : null,
        unread_count = r.UnreadCount,
    };

    /// <summary>The list's preview of a conversation's last message: a deleted one is a tombstone without its text.</summary>
    private static object Preview(MessageRow m) => new
    {
        message_id = m.MessageId,
        seq = m.Seq,
        sender_id = m.SenderId,
        created_at = Utc(m.CreatedAt),
        deleted = m.Deleted,
        content = m.Deleted ? null : new { type = m.ContentType, text = m.Text is { Length: > PreviewChars } t ? t[..PreviewChars] : m.Text },
    };

    private const int PreviewChars = 200;

    public static object Ack(MessageAck a, MessageContent? content) => new
    {
        message_id = a.MessageId,
        conversation_id = a.ConversationId,
        seq = a.Seq,
        sender_id = a.SenderId,
        content = Content(content),
        created_at = Utc(a.CreatedAt),
        status = "persisted",
    };

    public static object Message(MessageRow r) => new
    {
        message_id = r.MessageId,
        conversation_id = r.ConversationId,
        seq = r.Seq,
        sender_id = r.SenderId,
        content = r.Deleted ? null : Content(r.Content),
        created_at = Utc(r.CreatedAt),
        edited_at = r.EditedAt is { } e ? Utc(e) : null,
        deleted = r.Deleted,
        reactions = r.Reactions,
        versions = r.Versions.Select(v => new { text = v.Text, replaced_at = Utc(v.ReplacedAt) }),
        enrichment = r.Enrichment,
        status = "persisted",
    };

    /// <summary>A message after a change, merged with what the read model knew of it.</summary>
    public static object Message(MessageChanged c, string conversationId, MessageRow? row) => new
    {
        message_id = c.MessageId,
        conversation_id = conversationId,
        seq = c.Seq,
        sender_id = c.AuthorId,
        content = c.Deleted ? null : Content(c.Content ?? row?.Content),
        created_at = Utc(c.CreatedAt),
        edited_at = c.EditedAt is { } e ? Utc(e) : row?.EditedAt is { } re ? Utc(re) : null,
        deleted = c.Deleted,
        reactions = c.Reactions.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray()),
        status = "persisted",
    };

    public static object? Content(MessageContent? c) => c switch
    {
        null => null,
        { Type: Caas.Actors.Calls.CallSummaryMessage.ContentType } when Caas.Actors.Calls.CallSummaryMessage.View(c.Type, c.Text) is { } call => call,
        { Attachment: { } a } => new
        {
            type = c.Type, media_id = a.MediaId, caption = c.Text,
            media = a.Media is { } m
                ? new
                {
                    file_name = m.FileName, content_type = m.ContentType, size = m.Size, sha256 = m.Sha256, width = m.Width, height = m.Height,
                    duration_ms = m.DurationMs, thumbnail_url = m.ThumbnailUrl,
                }
                : null,
        },
        _ => new { type = c.Type, text = c.Text },
    };

    public static string Utc(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);
}
