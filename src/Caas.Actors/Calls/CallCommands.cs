using Caas.Actors.Common;

namespace Caas.Actors.Calls;

/// <summary>
/// A command to a conversation's calls (the entity <c>tenant|conversation</c>). The edge checks membership with the
/// conversation entity first and passes what it found: the caller's role and the members to ring.
/// </summary>
public interface ICallCommand : IEntityMessage, ICaasMessage
{
    string TenantId { get; }
    string ConversationId { get; }
    string UserId { get; }
}

/// <summary>Routes a call command to its conversation's call entity (the same id as the conversation entity's).</summary>
public abstract record CallCommand(string TenantId, string ConversationId, string UserId) : ICallCommand
{
    [System.Text.Json.Serialization.JsonIgnore]
    public string EntityId => Ids.EntityId(TenantId, ConversationId);
}

/// <summary>
/// Starts a call; <paramref name="Members"/> are the conversation's members when it starts (each is rung but the
/// starter). <paramref name="Busy"/> are members already joined in another call (<see cref="CallPresenceActor"/>):
/// they are not rung but recorded as declined, reason <c>busy</c>.
/// </summary>
public sealed record StartCall(string TenantId, string ConversationId, string UserId, string CallId, string Media,
    IReadOnlyList<string> Members, IReadOnlyList<string>? Busy = null) : CallCommand(TenantId, ConversationId, UserId);

public sealed record AcceptCall(string TenantId, string ConversationId, string UserId, string CallId, string? ConnectionId = null) : CallCommand(TenantId, ConversationId, UserId);

public sealed record DeclineCall(string TenantId, string ConversationId, string UserId, string CallId) : CallCommand(TenantId, ConversationId, UserId);

public sealed record LeaveCall(string TenantId, string ConversationId, string UserId, string CallId, string Reason = CallReasons.Left) : CallCommand(TenantId, ConversationId, UserId);

/// <summary>Ends the call for everyone: the starter's or a moderator+'s right (<paramref name="Role"/> is the caller's conversation role).</summary>
public sealed record EndCall(string TenantId, string ConversationId, string UserId, string CallId, Role Role) : CallCommand(TenantId, ConversationId, UserId);

/// <summary>The ring timeout (the entity schedules it): members still ringing have missed the call.</summary>
public sealed record RingTimedOut(string TenantId, string ConversationId, string UserId, string CallId) : CallCommand(TenantId, ConversationId, UserId);

/// <summary>May <c>UserId</c> relay a signal to <paramref name="ToUserId"/> in this call? Persists nothing.</summary>
public sealed record CheckSignal(string TenantId, string ConversationId, string UserId, string CallId, string ToUserId) : CallCommand(TenantId, ConversationId, UserId);

/// <summary>A joined participant's quality report; the entity aggregates it in memory until the call ends (answered <see cref="Done"/>).</summary>
public sealed record ReportCallQuality(string TenantId, string ConversationId, string UserId, string CallId, CallQualitySample Sample)
    : CallCommand(TenantId, ConversationId, UserId);

/// <summary>
/// A hub node still holds connections of <paramref name="Users"/> in the call (sent by every node every
/// <c>caas.calls.heartbeat-every</c>, told, never answered). A joined participant no node has vouched for within
/// <c>liveness-timeout</c> has left (disconnected): so a call whose participants' node died ends, and a heartbeat
/// brings back a call entity whose own node died.
/// </summary>
public sealed record CallHeartbeat(string TenantId, string ConversationId, string UserId, string CallId, IReadOnlyList<string> Users)
    : CallCommand(TenantId, ConversationId, UserId);

/// <summary>The conversation's calls: the active one (if any) and the most recent finished ones, newest first.</summary>
public sealed record GetCallHistory(string TenantId, string ConversationId, string UserId, int Limit) : CallCommand(TenantId, ConversationId, UserId);

public static class CallMedia
{
    public const string Audio = "audio", Video = "video";

    public static bool IsKnown(string? media) => media is Audio or Video;
}

public static class CallReasons
{
    public const string Left = "left", Disconnected = "disconnected", Declined = "declined", Missed = "missed",
        Completed = "completed", EndedBy = "ended", NoAnswer = "no_answer", Busy = "busy";
}
