using Caas.Actors.Common;

namespace Caas.Actors.Calls;

/// <summary>What a call command decided: the events to persist (none for a query or a repeat) and the reply.</summary>
public sealed record CallDecision(IReadOnlyList<ICallEvent> Events, object Reply)
{
    public static CallDecision Refuse(Rejection r) => new([], r);
}

/// <summary>The reply to a call command that was carried out: the call as it is after it.</summary>
/// <remarks><paramref name="Recording"/>: the call's recording while it may record (a joiner learns of it before any media flows).</remarks>
public sealed record CallReply(string CallId, string Status, IReadOnlyList<string> Joined, IReadOnlyList<string> Ringing, string? EndReason = null,
    RecordingReply? Recording = null) : ICaasMessage;

/// <summary>A conversation's calls: the active one and the finished ones, newest first.</summary>
/// <remarks><paramref name="ActiveQuality"/>: the active call's quality so far (the entity adds it from memory).</remarks>
public sealed record CallHistory(CallReply? Active, string? ActiveMedia, string? ActiveStartedBy, DateTimeOffset? ActiveStartedAt,
    IReadOnlyList<CallSummary> Items, IReadOnlyList<ParticipantQuality>? ActiveQuality = null) : ICaasMessage;

/// <summary>
/// The rules of a conversation's calls, pure: one active call per conversation; at most
/// <see cref="MaxParticipants"/> joined (a mesh); only the starter or a moderator+ ends a call for everyone; a
/// participant may join again (a reload, an ICE restart); the call ends when its last participant leaves, or when
/// nobody answered before the ring timed out or everyone declined.
/// </summary>
public static class CallDecider
{
    public const int MaxParticipants = 8;

    /// <summary>How long participants have to consent to a recording, unless the entity says otherwise (<c>caas.calls.recording-consent-timeout</c>).</summary>
    public static readonly TimeSpan DefaultConsentTimeout = TimeSpan.FromSeconds(30);

    public static CallDecision Decide(CallRoomState s, ICallCommand command, DateTimeOffset now, TimeSpan? consentTimeout = null)
    {
        var meta = new EventMeta(command.TenantId, command.UserId, now);
        var timeout = consentTimeout ?? DefaultConsentTimeout;
        switch (command)
        {
            case RequestRecording or ConsentRecording or StopRecording or RecordingConsentTimedOut or CheckRecordingUpload or AttachRecording
                or DeleteRecording or GetRecording:
                return CallRecordingRules.Decide(s, command, meta, timeout);
            case StartCall c:
            {
                if (!CallMedia.IsKnown(c.Media)) return CallDecision.Refuse(Rejection.Invalid("media", "audio or video."));
                if (!c.Members.Contains(c.UserId)) return CallDecision.Refuse(Rejection.NotFound());
                if (s.Active is { } busy)
                    return CallDecision.Refuse(new Rejection(ErrorCodes.Conflict, $"A call is already in progress in this conversation ({busy.CallId}); accept it instead."));
                // Members already joined in another call are not rung: they are declined as busy at once.
                var busyUsers = (c.Busy ?? []).Where(u => u != c.UserId && c.Members.Contains(u)).ToHashSet(StringComparer.Ordinal);
                var ringing = c.Members.Where(m => m != c.UserId && !busyUsers.Contains(m)).Distinct().Order(StringComparer.Ordinal).ToList();
                var started = new CallStarted(meta, c.CallId, c.ConversationId, c.UserId, c.Media, ringing);
                if (busyUsers.Count == 0) return Reply(s, [started]);
                var events = new List<ICallEvent> { started };
                events.AddRange(busyUsers.Order(StringComparer.Ordinal).Select(u => new CallParticipantDeclined(meta, c.CallId, u, CallReasons.Busy)));
                // Everyone it would ring is busy: the call is over before it rang.
                if (ringing.Count == 0)
                    events.Add(Ended(events.Aggregate(s, (state, e) => state.Apply(e)).Active!, meta, CallReasons.Busy, null));
                return Reply(s, events);
            }
            case AcceptCall c:
            {
                if (Find(s, c.CallId, c.UserId) is { } missing) return missing;
                var a = s.Active!;
                if (a.Participants.TryGetValue(c.UserId, out var p) && p.Presence == CallPresence.Joined)
                    return Reply(s, [new CallParticipantJoined(meta, c.CallId, c.UserId)]); // a rejoin: told to the others again
                if (a.Joined.Count() >= MaxParticipants)
                    return CallDecision.Refuse(Rejection.Conflict($"The call is full ({MaxParticipants} participants)."));
                // Joining a call being recorded without having consented stops the recording until the joiner consents.
                if (a.Recording is { Phase: RecordingPhase.Recording } r && !CallRoomState.Consented(r, c.UserId))
                    return Reply(s, [new CallParticipantJoined(meta, c.CallId, c.UserId),
                        new CallRecordingStopped(meta, c.CallId, r.RecordingId, RecordingReasons.ConsentPending, null, [c.UserId], now + timeout)]);
                return Reply(s, [new CallParticipantJoined(meta, c.CallId, c.UserId)]);
            }
            case DeclineCall c:
            {
                if (Find(s, c.CallId, c.UserId) is { } missing) return missing;
                var a = s.Active!;
                if (!a.Participants.TryGetValue(c.UserId, out var p) || p.Presence != CallPresence.Ringing)
                    return CallDecision.Refuse(Rejection.Conflict("Only a ringing call can be declined; leave it instead."));
                var declined = new CallParticipantDeclined(meta, c.CallId, c.UserId);
                var after = s.Apply(declined).Active!;
                // Nobody left to answer and nobody but the starter in it: the call is over.
                return after.Ringing.Any() || after.Joined.Count() > 1 || after.AnsweredAt is not null
                    ? Reply(s, [declined])
                    : Reply(s, [declined, Ended(after, meta, CallReasons.Declined, null)]);
            }
            case LeaveCall c:
            {
                if (Find(s, c.CallId, c.UserId) is { } missing) return missing;
                var a = s.Active!;
                if (!a.Participants.TryGetValue(c.UserId, out var p) || p.Presence != CallPresence.Joined)
                    return CallDecision.Refuse(Rejection.Conflict("You are not in this call."));
                var left = new CallParticipantLeft(meta, c.CallId, c.UserId, c.Reason, Math.Max(0, (now - p.Since).TotalSeconds));
                var after = s.Apply(left).Active!;
                // One alone stays (the other may be reloading the page); the last one out ends it.
                if (after.Joined.Any())
                    // The one whose consent was awaited left: everyone still in has consented.
                    return after.Recording is { Phase: not RecordingPhase.Recording, Awaiting.Count: 0 } r
                        ? Reply(s, [left, new CallRecordingStarted(meta, c.CallId, r.RecordingId)])
                        : Reply(s, [left]);
                return Reply(s, [left, Ended(after, meta, after.AnsweredAt is null ? CallReasons.NoAnswer : CallReasons.Completed, null)]);
            }
            case EndCall c:
            {
                if (Find(s, c.CallId, c.UserId) is { } missing) return missing;
                var a = s.Active!;
                if (c.UserId != a.StartedBy && c.Role < Role.Moderator)
                    return CallDecision.Refuse(Rejection.Forbidden("Only the caller or a moderator ends a call for everyone; leave it instead."));
                return Reply(s, [Ended(a, meta, CallReasons.EndedBy, c.UserId)]);
            }
            case RingTimedOut c:
            {
                if (s.Active is not { } a || a.CallId != c.CallId || !a.Ringing.Any()) return new CallDecision([], new Done("ring"));
                var missed = new CallMissed(meta, c.CallId, [.. a.Ringing]);
                var after = s.Apply(missed).Active!;
                return after.AnsweredAt is null
                    ? Reply(s, [missed, Ended(after, meta, CallReasons.Missed, null)])
                    : Reply(s, [missed]);
            }
            case CheckSignal c:
            {
                if (Find(s, c.CallId, c.UserId) is { } missing) return missing;
                var a = s.Active!;
                if (!a.Participants.TryGetValue(c.UserId, out var from) || from.Presence != CallPresence.Joined)
                    return CallDecision.Refuse(Rejection.Forbidden("Join the call before signalling in it."));
                if (c.ToUserId == c.UserId || !a.Participants.TryGetValue(c.ToUserId, out var to) || to.Presence != CallPresence.Joined)
                    return CallDecision.Refuse(Rejection.NotFound("participant"));
                return new CallDecision([], Status(a));
            }
            case ReportCallQuality c:
            {
                if (CallQuality.Validate(c.Sample) is { } invalid) return CallDecision.Refuse(invalid);
                if (Find(s, c.CallId, c.UserId) is { } missing) return missing;
                if (!s.Active!.Participants.TryGetValue(c.UserId, out var p) || p.Presence != CallPresence.Joined)
                    return CallDecision.Refuse(Rejection.Forbidden("Join the call before reporting its quality."));
                return new CallDecision([], new Done("quality"));
            }
            case GetCallHistory q:
            {
                var items = s.History.AsEnumerable().Reverse().Take(Math.Clamp(q.Limit, 1, CallRoomState.HistoryKept)).ToList();
                return new CallDecision([], new CallHistory(s.Active is { } a ? Status(a) : null, s.Active?.Media, s.Active?.StartedBy,
                    s.Active?.StartedAt, items));
            }
            default:
                return CallDecision.Refuse(Rejection.Invalid("command", "Unknown command."));
        }
    }

    /// <summary>The active call when it is <paramref name="callId"/>; else not_found (also for a user the call never rang).</summary>
    private static CallDecision? Find(CallRoomState s, string callId, string userId) =>
        s.Active is { } a && a.CallId == callId && a.Participants.ContainsKey(userId) ? null : CallDecision.Refuse(Rejection.NotFound("call"));

    private static CallEnded Ended(ActiveCall a, EventMeta meta, string reason, string? by) => new(meta, a.CallId, reason, by,
        a.AnsweredAt is { } answered ? Math.Max(0, (meta.OccurredAt - answered).TotalSeconds) : 0,
        [.. a.Participants.Values.Where(p => p.EverJoined).Select(p => p.UserId).Order(StringComparer.Ordinal)]);

    internal static CallDecision Reply(CallRoomState s, IReadOnlyList<ICallEvent> events)
    {
        events = WithRecordingEnd(s, events);
        var after = events.Aggregate(s, (state, e) => state.Apply(e));
        if (after.Active is { } a) return new CallDecision(events, Status(a));
        var ended = events.OfType<CallEnded>().Last();
        return new CallDecision(events, new CallReply(ended.CallId, "ended", [], [], ended.Reason));
    }

    internal static CallReply Status(ActiveCall a) => new(a.CallId, a.AnsweredAt is null ? "ringing" : "active", [.. a.Joined], [.. a.Ringing], null,
        a.Recording is { } r ? CallRecordingRules.View(a.CallId, r) : null);

    /// <summary>A call that ends while it has a recording ends the recording first (stopped if anything was recorded, else declined).</summary>
    private static IReadOnlyList<ICallEvent> WithRecordingEnd(CallRoomState s, IReadOnlyList<ICallEvent> events)
    {
        if (!events.Any(e => e is CallEnded)) return events;
        var result = new List<ICallEvent>(events.Count + 1);
        var state = s;
        foreach (var e in events)
        {
            if (e is CallEnded x && state.Active?.Recording is { } r)
            {
                ICallEvent end = r.StartedAt is null
                    ? new CallRecordingDeclined(x.Meta, x.CallId, r.RecordingId, RecordingReasons.CallEnded, [.. r.Awaiting])
                    : new CallRecordingStopped(x.Meta, x.CallId, r.RecordingId, RecordingReasons.CallEnded);
                result.Add(end);
                state = state.Apply(end);
            }
            result.Add(e);
            state = state.Apply(e);
        }
        return result;
    }
}
