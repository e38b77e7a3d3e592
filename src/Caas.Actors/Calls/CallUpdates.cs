using Caas.Actors.Conversations;

namespace Caas.Actors.Calls;

/// <summary>
/// What a call's event becomes in its conversation's journal (<see cref="CallUpdated"/>): the lifecycle only (start,
/// answers, declines, leaving, missing, the end), each with the call's whole state after it. Recordings, quality
/// checkpoints and summaries stay the call entity's own; signals are never stored.
/// </summary>
public static class CallUpdates
{
    public const string Started = "started", Joined = "joined", Declined = "declined", Busy = "busy", Left = "left", Missed = "missed",
        Ended = "ended";

    /// <param name="callSeq">The call entity's sequence number of <paramref name="e"/>.</param>
    public static CallUpdated? Of(ICallEvent e, CallRoomState before, CallRoomState after, long callSeq)
    {
        IReadOnlyList<string> users = [];
        string? reason = null;
        double? duration = null;
        string change;
        switch (e)
        {
            case CallStarted:
                change = Started;
                break;
            case CallParticipantJoined j:
                change = Joined;
                users = [j.UserId];
                break;
            case CallParticipantDeclined d:
                change = d.Reason == CallReasons.Busy ? Busy : Declined;
                users = [d.UserId];
                break;
            case CallParticipantLeft l:
                change = Left;
                users = [l.UserId];
                reason = l.Reason;
                break;
            case CallMissed m:
                change = Missed;
                users = [.. m.UserIds];
                break;
            case CallEnded x:
                change = Ended;
                users = [.. x.Participants];
                reason = x.Reason;
                duration = x.DurationSeconds;
                break;
            default:
                return null;
        }
        var call = after.Active ?? before.Active;
        if (call is null || call.CallId != e.CallId) return null;
        var over = after.Active is null;
        return new CallUpdated(e.Meta with { PrevHash = null, Hash = null }, call.CallId, change,
            over ? Ended : call.AnsweredAt is null ? "ringing" : "active", call.Media, call.StartedBy, call.StartedAt,
            over ? [] : [.. call.Joined], over ? [] : [.. call.Ringing], users, reason, duration, callSeq);
    }
}
