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

/// <summary>A member declined; <paramref name="Reason"/> <c>busy</c>: they were in another call when this one started (null: they declined).</summary>
public sealed record CallParticipantDeclined(EventMeta Meta, string CallId, string UserId, string? Reason = null) : ICallEvent;

/// <summary>A participant left (<c>left</c>, <c>disconnected</c>); <paramref name="Seconds"/> they were in.</summary>
public sealed record CallParticipantLeft(EventMeta Meta, string CallId, string UserId, string Reason, double Seconds) : ICallEvent;

/// <summary>Members still ringing when the ring timed out.</summary>
public sealed record CallMissed(EventMeta Meta, string CallId, IReadOnlyList<string> UserIds) : ICallEvent;

/// <summary>
/// The call is over: why, how long (from the first answer; 0 if nobody answered), and who took part.
/// <paramref name="Quality"/>: the participants' quality reports, aggregated (added by the entity; null when none).
/// </summary>
public sealed record CallEnded(EventMeta Meta, string CallId, string Reason, string? EndedBy, double DurationSeconds,
    IReadOnlyList<string> Participants, IReadOnlyList<ParticipantQuality>? Quality = null) : ICallEvent;

/// <summary>
/// The call's summary is in the conversation as message <paramref name="MessageId"/> (<paramref name="Seq"/>; 0 when
/// the conversation was gone and nothing was posted): the entity stops (re)sending it.
/// </summary>
public sealed record CallSummaryPosted(EventMeta Meta, string CallId, string MessageId, long Seq) : ICallEvent;

/// <summary>
/// The active call's quality so far (every participant's aggregate), checkpointed so an entity restart mid-call loses at
/// most <see cref="CallSettings.QualityCheckpoint"/> of reports: the first report of a call is checkpointed at once,
/// later ones at most that often.
/// </summary>
public sealed record CallQualityCheckpointed(EventMeta Meta, string CallId, IReadOnlyList<ParticipantQuality> Quality) : ICallEvent;
