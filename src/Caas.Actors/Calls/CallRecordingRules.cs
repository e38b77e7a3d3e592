using Caas.Actors.Common;

namespace Caas.Actors.Calls;

/// <summary>
/// The rules of recording a call, pure (part of <see cref="CallDecider"/>): a joined participant asks (and so
/// consents); every other joined participant must consent before the consent timeout; one refusal, or the timeout,
/// declines it; a call of one is not recorded; one recording at a time. Someone joining a recorded call without
/// having consented stops it until they consent; anyone withdrawing consent ends it; the requester or a moderator+
/// stops it; the call's end ends it. Only the requester uploads its bytes, once, and only if something was recorded.
/// </summary>
public static class CallRecordingRules
{
    public static CallDecision Decide(CallRoomState s, ICallCommand command, EventMeta meta, TimeSpan timeout)
    {
        var now = meta.OccurredAt;
        switch (command)
        {
            case RequestRecording c:
            {
                if (Joined(s, c.CallId, c.UserId) is { } problem) return problem;
                var a = s.Active!;
                if (a.Joined.Count() < 2) return CallDecision.Refuse(Rejection.Conflict("A call of one is not recorded."));
                if (a.Recording is { } busy)
                    return CallDecision.Refuse(Rejection.Conflict($"The call already has a recording ({busy.RecordingId}); stop it first."));
                if (!RecordingIds.IsValid(c.RecordingId) || s.FindRecording(c.RecordingId) is not null)
                    return CallDecision.Refuse(Rejection.Invalid("recording_id", "A new recording id."));
                var awaiting = a.Joined.Where(u => u != c.UserId).ToList();
                return Reply(s, c.CallId, c.RecordingId, [new CallRecordingRequested(meta, c.CallId, c.RecordingId, c.UserId, awaiting, now + timeout)]);
            }
            case ConsentRecording c:
            {
                if (s.Active is { Recording: { } r } a && a.CallId == c.CallId && r.RecordingId == c.RecordingId)
                {
                    if (!a.Participants.ContainsKey(c.UserId)) return CallDecision.Refuse(Rejection.NotFound("recording"));
                    if (a.Participants[c.UserId].Presence != CallPresence.Joined)
                        return CallDecision.Refuse(Rejection.Forbidden("Join the call before answering its recording request."));
                    var awaited = r.Awaiting.Contains(c.UserId);
                    if (awaited && r.Phase != RecordingPhase.Recording && now > r.Deadline)
                    {
                        // Too late: the timeout has passed (its timer may not have fired yet). The request is declined.
                        var declined = new CallRecordingDeclined(meta, c.CallId, r.RecordingId, RecordingReasons.Timeout, [.. r.Awaiting]);
                        return new CallDecision(CallDecider.Reply(s, [declined]).Events, Rejection.Conflict("The recording's consent request has timed out."));
                    }
                    if (!awaited)
                    {
                        // A consent given again changes nothing; withdrawing it ends the recording.
                        if (c.Consent || !CallRoomState.Consented(r, c.UserId)) return new CallDecision([], View(c.CallId, r));
                        return Reply(s, c.CallId, r.RecordingId, [
                            new CallRecordingConsented(meta, c.CallId, r.RecordingId, c.UserId, false, ConsentMethods.Hub),
                            new CallRecordingDeclined(meta, c.CallId, r.RecordingId, RecordingReasons.Refused, [c.UserId])]);
                    }
                    var consented = new CallRecordingConsented(meta, c.CallId, r.RecordingId, c.UserId, c.Consent, ConsentMethods.Hub);
                    if (!c.Consent)
                        return Reply(s, c.CallId, r.RecordingId, [consented, new CallRecordingDeclined(meta, c.CallId, r.RecordingId, RecordingReasons.Refused, [c.UserId])]);
                    return r.Awaiting.Count == 1
                        ? Reply(s, c.CallId, r.RecordingId, [consented, new CallRecordingStarted(meta, c.CallId, r.RecordingId)])
                        : Reply(s, c.CallId, r.RecordingId, [consented]);
                }
                if (s.FindRecording(c.RecordingId) is { } over && over.CallId == c.CallId && Participated(s, over, c.UserId))
                    return CallDecision.Refuse(Rejection.Conflict(over.EndReason == RecordingReasons.Timeout
                        ? "The recording's consent request has timed out."
                        : "The recording is over."));
                return CallDecision.Refuse(Rejection.NotFound("recording"));
            }
            case StopRecording c:
            {
                if (s.Active is not { Recording: { } r } a || a.CallId != c.CallId || !a.Participants.ContainsKey(c.UserId))
                    return CallDecision.Refuse(Rejection.NotFound("recording"));
                if (c.UserId != r.RequestedBy && c.Role < Role.Moderator)
                    return CallDecision.Refuse(Rejection.Forbidden("Only who asked for the recording, or a moderator, stops it."));
                return Reply(s, c.CallId, r.RecordingId, [new CallRecordingStopped(meta, c.CallId, r.RecordingId, RecordingReasons.Stopped, c.UserId)]);
            }
            case RecordingConsentTimedOut c:
            {
                if (s.Active is not { Recording: { Phase: not RecordingPhase.Recording, Awaiting.Count: > 0 } r } a || a.CallId != c.CallId
                    || r.RecordingId != c.RecordingId || now < r.Deadline)
                    return new CallDecision([], new Done("recording-consent"));
                return Reply(s, c.CallId, r.RecordingId, [new CallRecordingDeclined(meta, c.CallId, r.RecordingId, RecordingReasons.Timeout, [.. r.Awaiting])]);
            }
            case CheckRecordingUpload c:
            {
                var info = s.FindRecording(c.RecordingId);
                return Uploadable(info, c.UserId) is { } problem ? problem : new CallDecision([], info!);
            }
            case AttachRecording c:
            {
                var info = s.FindRecording(c.RecordingId);
                if (info?.File is { } stored && stored.FileId == c.File.FileId && info.RequestedBy == c.UserId) return new CallDecision([], info);
                if (Uploadable(info, c.UserId) is { } problem) return problem;
                var e = new CallRecordingStored(meta, info!.CallId, c.RecordingId, c.File);
                return new CallDecision([e], s.Apply(e).FindRecording(c.RecordingId)!);
            }
            case DeleteRecording c:
            {
                if (s.FindRecording(c.RecordingId) is not { } info) return CallDecision.Refuse(Rejection.NotFound("recording"));
                if (info.Status == "deleted") return new CallDecision([], info);
                var events = new List<ICallEvent>();
                // Still recording (or asking): it stops first.
                if (s.Active is { Recording: { } r } && r.RecordingId == c.RecordingId)
                    events.Add(new CallRecordingStopped(meta, info.CallId, r.RecordingId, RecordingReasons.Stopped, c.UserId));
                events.Add(new CallRecordingDeleted(meta, info.CallId, c.RecordingId, c.UserId, c.Reason));
                return new CallDecision(events, events.Aggregate(s, (state, e) => state.Apply(e)).FindRecording(c.RecordingId)!);
            }
            case GetRecording c:
                return s.FindRecording(c.RecordingId) is { } found ? new CallDecision([], found) : CallDecision.Refuse(Rejection.NotFound("recording"));
            default:
                return CallDecision.Refuse(Rejection.Invalid("command", "Unknown command."));
        }
    }

    /// <summary>The recording as a reply: its status, whose consent is awaited, and the consents so far.</summary>
    public static RecordingReply View(string callId, ActiveRecording r) => new(callId, r.RecordingId, r.Phase switch
    {
        RecordingPhase.Pending => "pending",
        RecordingPhase.Recording => "recording",
        _ => "paused",
    }, [.. r.Awaiting], [.. r.Consents.Values.OrderBy(c => c.At).ThenBy(c => c.UserId, StringComparer.Ordinal)]);

    /// <summary>The active call is this one and the user is joined in it; else not_found (not in it) or forbidden (ringing).</summary>
    private static CallDecision? Joined(CallRoomState s, string callId, string userId)
    {
        if (s.Active is not { } a || a.CallId != callId || !a.Participants.TryGetValue(userId, out var p)) return CallDecision.Refuse(Rejection.NotFound("call"));
        return p.Presence == CallPresence.Joined ? null : CallDecision.Refuse(Rejection.Forbidden("Join the call before asking to record it."));
    }

    private static bool Participated(CallRoomState s, RecordingInfo info, string user) =>
        info.Consents.Any(c => c.UserId == user) || s.Active is { } a && a.CallId == info.CallId && a.Participants.ContainsKey(user)
        || s.History.Any(h => h.CallId == info.CallId && h.Participants.Contains(user));

    private static CallDecision? Uploadable(RecordingInfo? info, string user)
    {
        if (info is null) return CallDecision.Refuse(Rejection.NotFound("recording"));
        if (info.RequestedBy != user) return CallDecision.Refuse(Rejection.Forbidden("Only the participant who asked for the recording uploads it."));
        if (info.Status == "deleted") return CallDecision.Refuse(Rejection.Conflict("The recording was deleted."));
        if (info.File is not null) return CallDecision.Refuse(Rejection.Conflict("The recording's file is already stored."));
        if (info.StartedAt is null) return CallDecision.Refuse(Rejection.Conflict("Nothing was recorded: not every participant consented."));
        return null;
    }

    /// <summary>The events (the call's end added by <see cref="CallDecider"/>), answered with the recording as it is after them.</summary>
    private static CallDecision Reply(CallRoomState s, string callId, string recordingId, IReadOnlyList<ICallEvent> events)
    {
        var decided = CallDecider.Reply(s, events);
        var after = decided.Events.Aggregate(s, (state, e) => state.Apply(e));
        if (after.Active is { Recording: { } r } && r.RecordingId == recordingId) return new CallDecision(decided.Events, View(callId, r));
        var info = after.FindRecording(recordingId)!;
        return new CallDecision(decided.Events, new RecordingReply(callId, recordingId, info.Status, [], info.Consents));
    }
}
