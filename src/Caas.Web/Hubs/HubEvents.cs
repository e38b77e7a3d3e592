using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Rooms;
using Caas.Actors.Sessions;
using Caas.Streams.ReadModel;
using Caas.Web.Api;

namespace Caas.Web.Hubs;

/// <summary>Server-to-client events: camelCase names, snake_case payloads (the REST shapes where one exists).</summary>
public static class HubEvents
{
    public const string NewMessage = "newMessage";
    public const string MessagePersisted = "messagePersisted";
    public const string MessagePersistFailed = "messagePersistFailed";
    public const string SessionExpired = "sessionExpired";
    public const string PresenceChanged = "presenceChanged";
    public const string RoomError = "roomError";
    public const string MessageEnrichedMethod = "messageEnriched";
    public const string CallUpdatedMethod = "callUpdated";

    /// <summary>A room's joins, leaves and presence changes of one tick (see <see cref="RoomActivity"/>).</summary>
    public const string RoomActivity = "roomActivity";

    /// <summary>
    /// Events a client can miss without missing state: live signals (typing, delivered, who is in the room, presence)
    /// and read receipts, whose marker is stored and read back over REST. A slow consumer loses these first; everything
    /// else (messages, edits, reactions, membership, moderation, replies to the client's own calls) is durable.
    /// </summary>
    public static bool IsEphemeral(string method) =>
        method is "typing" or "delivered" or "readReceipt" or "memberJoined" or "memberLeft" or PresenceChanged or RoomActivity;

    public static object Message(string conversationId, MessagePosted p) => new
    {
        message_id = p.MessageId,
        conversation_id = conversationId,
        seq = p.Seq,
        sender_id = p.Meta.ActorId,
        content = Views.Content(p.Content),
        created_at = Views.Utc(p.Meta.OccurredAt),
        status = "persisted",
    };

    public static object Message(MessageRow r) => Views.Message(r);

    /// <summary>The event a persisted conversation event becomes on the wire; null for those clients need not see.</summary>
    public static (string Method, object Payload)? Of(string conversationId, IConversationEvent e) => e switch
    {
        MessagePosted p => (NewMessage, Message(conversationId, p)),
        MessageEdited ed => ("messageEdited", new
        {
            conversation_id = conversationId, seq = ed.Seq, message_id = ed.MessageId, content = Views.Content(ed.Content),
            edited_at = Views.Utc(ed.Meta.OccurredAt), editor_id = ed.Meta.ActorId,
        }),
        MessageDeleted d => ("messageDeleted", new
        {
            conversation_id = conversationId, seq = d.Seq, message_id = d.MessageId, deleted_by = d.Meta.ActorId,
            deleted_at = Views.Utc(d.Meta.OccurredAt),
        }),
        // A deferred message's enrichment, recorded after the message (its results as the history shows them).
        MessageEnriched en => (MessageEnrichedMethod, new
        {
            conversation_id = conversationId, seq = en.Seq, message_id = en.MessageId,
            enrichment = en.Enrichment is null ? (System.Text.Json.JsonElement?)null
                : System.Text.Json.JsonSerializer.SerializeToElement(en.Enrichment, Caas.Actors.Serialization.CaasSerializer.Json),
        }),
        ReactionAdded ra => ("reactionChanged", Reaction(conversationId, ra.Seq, ra.MessageId, ra.Meta, ra.Reaction, added: true)),
        ReactionRemoved rr => ("reactionChanged", Reaction(conversationId, rr.Seq, rr.MessageId, rr.Meta, rr.Reaction, added: false)),
        MemberAdded a => ("memberAdded", new { conversation_id = conversationId, user_id = a.UserId, role = a.Role.ToWire(), by = a.Meta.ActorId }),
        MemberRemoved r => ("memberRemoved", new { conversation_id = conversationId, user_id = r.UserId, reason = r.Reason, by = r.Meta.ActorId }),
        MemberRoleChanged rc => ("memberRoleChanged", new { conversation_id = conversationId, user_id = rc.UserId, role = rc.Role.ToWire(), by = rc.Meta.ActorId }),
        UserMuted m => ("userMuted", Moderation(conversationId, m.UserId, m.Meta, m.Until, m.Reason)),
        UserUnmuted um => ("userUnmuted", Moderation(conversationId, um.UserId, um.Meta, null, um.Reason)),
        UserBanned b => ("userBanned", Moderation(conversationId, b.UserId, b.Meta, b.Until, b.Reason)),
        UserUnbanned ub => ("userUnbanned", Moderation(conversationId, ub.UserId, ub.Meta, null, ub.Reason)),
        UserKicked k => ("userKicked", Moderation(conversationId, k.UserId, k.Meta, k.Until, k.Reason)),
        ConversationUpdated u => ("conversationUpdated", new { conversation_id = conversationId, title = u.Title, metadata = u.Metadata }),
        // The call's lifecycle as the conversation recorded it (durable, with event_seq, replayed by Resume); the live
        // ringing and signaling events (CallNotices) go to the users' connections beside it.
        CallUpdated c => (CallUpdatedMethod, new
        {
            conversation_id = conversationId, call_id = c.CallId, change = c.Change, status = c.Status, media = c.Media, started_by = c.StartedBy,
            started_at = Views.Utc(c.StartedAt), joined = c.Joined, ringing = c.Ringing, user_ids = c.UserIds, reason = c.Reason,
            duration_seconds = c.DurationSeconds, by = c.Meta.ActorId, at = Views.Utc(c.Meta.OccurredAt),
        }),
        ConversationDeleted => (RoomError, new { conversation_id = conversationId, code = ErrorCodes.NotFound, message = "The conversation was deleted." }),
        _ => null,
    };

    /// <summary>The user an event takes out of the room (kick, ban, removal, leaving), if any.</summary>
    public static string? Removes(IConversationEvent e) => e switch
    {
        MemberRemoved r => r.UserId,
        UserKicked k => k.UserId,
        UserBanned b => b.UserId,
        _ => null,
    };

    public static (string Method, object Payload)? Of(RoomSignal s) => s.Kind switch
    {
        RoomSignalKinds.MemberJoined => ("memberJoined", new { conversation_id = s.ConversationId, user_id = s.UserId }),
        RoomSignalKinds.MemberLeft => ("memberLeft", new { conversation_id = s.ConversationId, user_id = s.UserId }),
        RoomSignalKinds.Typing => ("typing", new { conversation_id = s.ConversationId, user_id = s.UserId, at = Views.Utc(s.At) }),
        RoomSignalKinds.ReadReceipt => ("readReceipt", new { conversation_id = s.ConversationId, user_id = s.UserId, seq = s.Seq, at = Views.Utc(s.At) }),
        RoomSignalKinds.Delivered => ("delivered", new { conversation_id = s.ConversationId, user_id = s.UserId, seq = s.Seq, event_seq = s.EventSeq, at = Views.Utc(s.At) }),
        _ => null,
    };

    public static object Presence(PresenceView p) => new
    {
        user_id = p.UserId,
        status = p.Status,
        last_seen = p.LastSeen is { } t ? Views.Utc(t) : null,
    };

    public static object Online(string userId) => new { user_id = userId, status = "online", last_seen = (string?)null };

    private static object Reaction(string conversationId, long seq, string messageId, EventMeta meta, string reaction, bool added) => new
    {
        conversation_id = conversationId, seq, message_id = messageId, user_id = meta.ActorId, reaction, added,
    };

    private static object Moderation(string conversationId, string userId, EventMeta meta, DateTimeOffset? until, string? reason) => new
    {
        conversation_id = conversationId, user_id = userId, by = meta.ActorId, until = until is { } u ? Views.Utc(u) : null, reason,
    };
}
