using System.Collections.Immutable;

namespace Caas.Actors.Calls;

public enum CallPresence
{
    Ringing,
    Joined,
    Declined,
    Left,
    Missed,
}

/// <summary>One member in the active call: their state and since when (the join, for durations).</summary>
public sealed record CallParticipant(string UserId, CallPresence Presence, DateTimeOffset Since, bool EverJoined);

/// <summary>The active call of a conversation.</summary>
public sealed record ActiveCall(string CallId, string StartedBy, string Media, DateTimeOffset StartedAt, DateTimeOffset? AnsweredAt,
    ImmutableDictionary<string, CallParticipant> Participants)
{
    /// <summary>The call's recording while it may still record (null: none asked for, or over).</summary>
    public ActiveRecording? Recording { get; init; }

    /// <summary>The quality reports' aggregates at the last checkpoint (the entity keeps newer ones in memory).</summary>
    public IReadOnlyList<ParticipantQuality>? Quality { get; init; }

    public IEnumerable<string> Joined => Participants.Values.Where(p => p.Presence == CallPresence.Joined).Select(p => p.UserId).Order(StringComparer.Ordinal);

    public IEnumerable<string> Ringing => Participants.Values.Where(p => p.Presence == CallPresence.Ringing).Select(p => p.UserId).Order(StringComparer.Ordinal);
}

/// <summary>A finished call, kept for the conversation's call list (and posted into the conversation as its summary).</summary>
public sealed record CallSummary(string CallId, string StartedBy, string Media, DateTimeOffset StartedAt, DateTimeOffset EndedAt,
    string Reason, double DurationSeconds, IReadOnlyList<string> Participants, string? EndedBy = null,
    IReadOnlyList<ParticipantQuality>? Quality = null);

/// <summary>A conversation's calls: at most one active, and the most recent finished ones.</summary>
public sealed record CallRoomState(ActiveCall? Active, ImmutableList<CallSummary> History)
{
    /// <remarks>A recording older than the conversation's last <see cref="RecordingsKept"/> is no longer known to the entity (it cannot be deleted through it; the read model still lists it).</remarks>
    public const int HistoryKept = 100, RecordingsKept = 1000;

    public static CallRoomState Empty { get; } = new(null, []);

    /// <summary>The conversation's recordings, oldest first (the last <see cref="RecordingsKept"/>; the read model keeps all).</summary>
    public ImmutableList<RecordingInfo> Recordings { get; init; } = [];

    public RecordingInfo? FindRecording(string recordingId) => Recordings.FirstOrDefault(r => r.RecordingId == recordingId);

    /// <summary>Finished calls whose summary message is not yet in the conversation (the entity sends it until it is).</summary>
    public ImmutableHashSet<string> SummariesPending { get; init; } = ImmutableHashSet<string>.Empty;

    public CallRoomState Apply(ICallEvent e) => e switch
    {
        CallRecordingRequested or CallRecordingConsented or CallRecordingStarted or CallRecordingStopped or CallRecordingDeclined
            or CallRecordingStored or CallRecordingDeleted => ApplyRecording(e),
        CallStarted s => this with
        {
            Active = new ActiveCall(s.CallId, s.StartedBy, s.Media, s.Meta.OccurredAt, null,
                s.Ringing.Where(u => u != s.StartedBy).Distinct()
                    .Select(u => new CallParticipant(u, CallPresence.Ringing, s.Meta.OccurredAt, false))
                    .Append(new CallParticipant(s.StartedBy, CallPresence.Joined, s.Meta.OccurredAt, true))
                    .ToImmutableDictionary(p => p.UserId)),
        },
        CallParticipantJoined j when Active is { } a => this with
        {
            Active = a with
            {
                AnsweredAt = a.AnsweredAt ?? (j.UserId != a.StartedBy ? j.Meta.OccurredAt : null),
                Participants = a.Participants.SetItem(j.UserId, new CallParticipant(j.UserId, CallPresence.Joined, j.Meta.OccurredAt, true)),
                // Joining while consents are awaited: the newcomer's consent is awaited too (unless they gave it).
                Recording = a.Recording is { Phase: not RecordingPhase.Recording } r && !Consented(r, j.UserId)
                    ? r with { Awaiting = r.Awaiting.Add(j.UserId) }
                    : a.Recording,
            },
        },
        CallParticipantDeclined d when Active is { } a => this with { Active = a with { Participants = a.Participants.SetItem(d.UserId, Set(a, d.UserId, CallPresence.Declined, d.Meta.OccurredAt)) } },
        CallParticipantLeft l when Active is { } a => this with
        {
            Active = a with
            {
                Participants = a.Participants.SetItem(l.UserId, Set(a, l.UserId, CallPresence.Left, l.Meta.OccurredAt)),
                Recording = a.Recording is { } r ? r with { Awaiting = r.Awaiting.Remove(l.UserId) } : null,
            },
        },
        CallMissed m when Active is { } a => this with
        {
            Active = a with { Participants = m.UserIds.Aggregate(a.Participants, (ps, u) => ps.SetItem(u, Set(a, u, CallPresence.Missed, m.Meta.OccurredAt))) },
        },
        CallEnded x when Active is { } a => End(a, x),
        CallQualityCheckpointed q when Active is { } a && a.CallId == q.CallId => this with { Active = a with { Quality = q.Quality } },
        CallSummaryPosted p => this with { SummariesPending = SummariesPending.Remove(p.CallId) },
        _ => this,
    };

    private CallRoomState End(ActiveCall a, CallEnded x)
    {
        var history = History.Add(new CallSummary(a.CallId, a.StartedBy, a.Media, a.StartedAt, x.Meta.OccurredAt, x.Reason, x.DurationSeconds,
            x.Participants, x.EndedBy, x.Quality));
        var pending = SummariesPending.Add(a.CallId);
        if (history.Count > HistoryKept)
        {
            pending = pending.Remove(history[0].CallId);
            history = history.RemoveAt(0);
        }
        return new CallRoomState(null, history) { SummariesPending = pending, Recordings = Recordings };
    }

    /// <summary>True when the user has consented to the recording (and not withdrawn it).</summary>
    public static bool Consented(ActiveRecording r, string user) => r.Consents.TryGetValue(user, out var c) && c.Consent;

    private CallRoomState ApplyRecording(ICallEvent e)
    {
        var at = e.Meta.OccurredAt;
        switch (e)
        {
            case CallRecordingRequested q when Active is { } a:
            {
                var recording = new ActiveRecording(q.RecordingId, q.RequestedBy, at, q.Deadline, RecordingPhase.Pending,
                    ImmutableDictionary<string, RecordingConsent>.Empty.Add(q.RequestedBy, new RecordingConsent(q.RequestedBy, true, at, ConsentMethods.Requested)),
                    [.. q.Awaiting], null, null, 0);
                var info = new RecordingInfo(q.RecordingId, q.CallId, q.RequestedBy, at, "pending", [.. recording.Consents.Values], null, null, 0, null, null);
                var recordings = Recordings.Add(info);
                while (recordings.Count > RecordingsKept) recordings = recordings.RemoveAt(0);
                return this with { Active = a with { Recording = recording }, Recordings = recordings };
            }
            case CallRecordingConsented c when Active is { Recording: { } r } a && r.RecordingId == c.RecordingId:
            {
                var next = r with
                {
                    Consents = r.Consents.SetItem(c.UserId, new RecordingConsent(c.UserId, c.Consent, at, c.How)),
                    Awaiting = r.Awaiting.Remove(c.UserId),
                };
                return WithRecording(a, next, i => i with { Consents = Ordered(next.Consents) });
            }
            case CallRecordingStarted s when Active is { Recording: { } r } a && r.RecordingId == s.RecordingId:
            {
                var next = r with { Phase = RecordingPhase.Recording, StartedAt = r.StartedAt ?? at, RecordingSince = at, Awaiting = [] };
                return WithRecording(a, next, i => i with { Status = "recording", StartedAt = next.StartedAt });
            }
            case CallRecordingStopped { Reason: RecordingReasons.ConsentPending } p when Active is { Recording: { } r } a && r.RecordingId == p.RecordingId:
            {
                var next = r with
                {
                    Phase = RecordingPhase.Paused, RecordedSeconds = Recorded(r, at), RecordingSince = null,
                    Awaiting = r.Awaiting.Union(p.Awaiting ?? []), Deadline = p.Deadline ?? r.Deadline,
                };
                return WithRecording(a, next, i => i with { Status = "paused" });
            }
            case CallRecordingStopped p when Active is { Recording: { } r } a && r.RecordingId == p.RecordingId:
                return Over(a, r, at, p.Reason);
            case CallRecordingDeclined d when Active is { Recording: { } r } a && r.RecordingId == d.RecordingId:
                return Over(a, r, at, d.Reason);
            case CallRecordingStored st:
                return Update(st.RecordingId, i => i with { File = st.File });
            case CallRecordingDeleted del:
                return Update(del.RecordingId, i => i with { Status = "deleted", DeletedAt = at, DeletedBy = del.By, DeleteReason = del.Reason });
            default:
                return this;
        }
    }

    /// <summary>The recording is over: recorded if anything was, else declined.</summary>
    private CallRoomState Over(ActiveCall a, ActiveRecording r, DateTimeOffset at, string reason)
    {
        var seconds = Recorded(r, at);
        return (this with { Active = a with { Recording = null } }).Update(r.RecordingId, i => i with
        {
            Status = r.StartedAt is null ? "declined" : "recorded", EndedAt = at, DurationSeconds = seconds, EndReason = reason,
            Consents = Ordered(r.Consents),
        });
    }

    private static double Recorded(ActiveRecording r, DateTimeOffset at) =>
        r.RecordedSeconds + (r.RecordingSince is { } since ? Math.Max(0, (at - since).TotalSeconds) : 0);

    private static IReadOnlyList<RecordingConsent> Ordered(ImmutableDictionary<string, RecordingConsent> consents) =>
        [.. consents.Values.OrderBy(c => c.At).ThenBy(c => c.UserId, StringComparer.Ordinal)];

    private CallRoomState WithRecording(ActiveCall a, ActiveRecording next, Func<RecordingInfo, RecordingInfo> info) =>
        (this with { Active = a with { Recording = next } }).Update(next.RecordingId, info);

    private CallRoomState Update(string recordingId, Func<RecordingInfo, RecordingInfo> change)
    {
        var index = Recordings.FindIndex(r => r.RecordingId == recordingId);
        return index < 0 ? this : this with { Recordings = Recordings.SetItem(index, change(Recordings[index])) };
    }

    private static CallParticipant Set(ActiveCall a, string user, CallPresence presence, DateTimeOffset at) =>
        a.Participants.TryGetValue(user, out var p) ? p with { Presence = presence, Since = at } : new CallParticipant(user, presence, at, false);
}
