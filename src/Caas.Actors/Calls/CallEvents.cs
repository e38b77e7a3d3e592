using Caas.Actors.Common;

namespace Caas.Actors.Calls;

/// <summary>An event of a conversation's calls; every one names its call.</summary>
public interface ICallEvent : IDomainEvent, ICaasMessage
{
    string CallId { get; }
}

/// <summary>A call started: the starter is in it, <paramref name="Ringing"/> are rung.</summary>
public sealed record CallStarted(EventMeta Meta, string CallId, string ConversationId, string StartedBy, string Media,
    IReadOnlyList<string> Ringing) : ICallEvent;

/// <summary>A participant joined (answered, or came back after a reload or an ICE restart).</summary>
public sealed record CallParticipantJoined(EventMeta Meta, string CallId, string UserId) : ICallEvent;

public sealed record CallParticipantDeclined(EventMeta Meta, string CallId, string UserId) : ICallEvent;

/// <summary>A participant left (<c>left</c>, <c>disconnected</c>); <paramref name="Seconds"/> they were in.</summary>
public sealed record CallParticipantLeft(EventMeta Meta, string CallId, string UserId, string Reason, double Seconds) : ICallEvent;

/// <summary>Members still ringing when the ring timed out.</summary>
public sealed record CallMissed(EventMeta Meta, string CallId, IReadOnlyList<string> UserIds) : ICallEvent;

/// <summary>The call is over: why, how long (from the first answer; 0 if nobody answered), and who took part.</summary>
public sealed record CallEnded(EventMeta Meta, string CallId, string Reason, string? EndedBy, double DurationSeconds,
    IReadOnlyList<string> Participants) : ICallEvent;
