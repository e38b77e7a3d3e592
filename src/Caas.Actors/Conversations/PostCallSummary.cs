using System.Collections.Immutable;
using Caas.Actors.Common;

namespace Caas.Actors.Conversations;

/// <summary>
/// Posts a finished call's summary into the conversation (sent by the call entity, <c>Calls.CallRoomActor</c>):
/// <see cref="ConversationCommand.ActorId"/> is the call's starter, who need not be a member any more. Idempotent by
/// <see cref="MessageId"/>: a summary already posted is answered with its acknowledgement (<c>Repeat</c>), nothing
/// written. Clients cannot post this content type (only <c>text</c> passes the message rules).
/// </summary>
public sealed record PostCallSummary(string TenantId, string ConversationId, string ActorId, string MessageId, MessageContent Content)
    : ConversationCommand(TenantId, ConversationId, ActorId);

public static class CallSummaryPosting
{
    public static Decision Decide(ConversationState s, PostCallSummary p, EventMeta meta)
    {
        if (!s.IsLive) return Rejection.NotFound();
        if (!Ids.IsValid(p.MessageId)) return Rejection.Invalid("message_id", "Not a valid message id.");
        if (s.MessageIds.TryGetValue(p.MessageId, out var seq))
        {
            var facts = s.Messages[seq];
            return Decision.Answer(new MessageAck(p.MessageId, p.ConversationId, seq, facts.AuthorId, null, facts.CreatedAt, Repeat: true));
        }
        return Decision.Persist(new MessagePosted(meta, s.LastSeq + 1, p.MessageId, p.Content));
    }

    public static object Reply(PostCallSummary p, ImmutableArray<IConversationEvent> events)
    {
        var posted = (MessagePosted)events[0];
        return new MessageAck(p.MessageId, p.ConversationId, posted.Seq, p.ActorId, p.Content, posted.Meta.OccurredAt, Repeat: false);
    }
}

/// <summary>
/// Records a change of the conversation's call (<see cref="CallUpdated"/>; sent by the call entity until answered).
/// Idempotent by <see cref="CallUpdated.CallSeq"/>: a change at or below the last one recorded is answered
/// <c>Done</c>, nothing written. A conversation that is gone answers <c>not_found</c> (the call entity gives up).
/// </summary>
public sealed record RecordCallUpdate(string TenantId, string ConversationId, string ActorId, CallUpdated Update)
    : ConversationCommand(TenantId, ConversationId, ActorId);

public static class CallUpdateRecording
{
    public static Decision Decide(ConversationState s, RecordCallUpdate r, EventMeta meta)
    {
        if (!s.IsLive) return Rejection.NotFound();
        if (r.Update.CallSeq <= s.LastCallSeq) return Decision.Answer(new Done(nameof(RecordCallUpdate)));
        return Decision.Persist(r.Update with { Meta = meta with { OccurredAt = r.Update.Meta.OccurredAt } });
    }
}
