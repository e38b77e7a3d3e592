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
    public const int HistoryKept = 100;

    public static CallRoomState Empty { get; } = new(null, []);

    /// <summary>Finished calls whose summary message is not yet in the conversation (the entity sends it until it is).</summary>
    public ImmutableHashSet<string> SummariesPending { get; init; } = ImmutableHashSet<string>.Empty;

    public CallRoomState Apply(ICallEvent e) => e switch
    {
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
            },
        },
        CallParticipantDeclined d when Active is { } a => this with { Active = a with { Participants = a.Participants.SetItem(d.UserId, Set(a, d.UserId, CallPresence.Declined, d.Meta.OccurredAt)) } },
        CallParticipantLeft l when Active is { } a => this with { Active = a with { Participants = a.Participants.SetItem(l.UserId, Set(a, l.UserId, CallPresence.Left, l.Meta.OccurredAt)) } },
        CallMissed m when Active is { } a => this with
        {
            Active = a with { Participants = m.UserIds.Aggregate(a.Participants, (ps, u) => ps.SetItem(u, Set(a, u, CallPresence.Missed, m.Meta.OccurredAt))) },
        },
        CallEnded x when Active is { } a => End(a, x),
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
        return new CallRoomState(null, history) { SummariesPending = pending };
    }

    private static CallParticipant Set(ActiveCall a, string user, CallPresence presence, DateTimeOffset at) =>
        a.Participants.TryGetValue(user, out var p) ? p with { Presence = presence, Since = at } : new CallParticipant(user, presence, at, false);
}
