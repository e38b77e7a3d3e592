using Caas.Actors.Common;

namespace Caas.Actors.Calls;

/// <summary>
/// A command to a conversation's calls (the entity <c>tenant|conversation</c>). The edge checks membership with the
/// conversation entity first and passes what it found: the caller's role and the members to ring.
/// </summary>
public interface ICallCommand
{
    string TenantId { get; }
    string ConversationId { get; }
    string UserId { get; }
}

/// <summary>Starts a call; <paramref name="Members"/> are the conversation's members when it starts (each is rung but the starter).</summary>
public sealed record StartCall(string TenantId, string ConversationId, string UserId, string CallId, string Media,
    IReadOnlyList<string> Members) : ICallCommand;

public sealed record AcceptCall(string TenantId, string ConversationId, string UserId, string CallId) : ICallCommand;

public sealed record DeclineCall(string TenantId, string ConversationId, string UserId, string CallId) : ICallCommand;

public sealed record LeaveCall(string TenantId, string ConversationId, string UserId, string CallId, string Reason = CallReasons.Left) : ICallCommand;

/// <summary>Ends the call for everyone: the starter's or a moderator+'s right (<paramref name="Role"/> is the caller's conversation role).</summary>
public sealed record EndCall(string TenantId, string ConversationId, string UserId, string CallId, Role Role) : ICallCommand;

/// <summary>The ring timeout (the entity schedules it): members still ringing have missed the call.</summary>
public sealed record RingTimedOut(string TenantId, string ConversationId, string UserId, string CallId) : ICallCommand;

/// <summary>May <c>UserId</c> relay a signal to <paramref name="ToUserId"/> in this call? Persists nothing.</summary>
public sealed record CheckSignal(string TenantId, string ConversationId, string UserId, string CallId, string ToUserId) : ICallCommand;

public static class CallMedia
{
    public const string Audio = "audio", Video = "video";

    public static bool IsKnown(string? media) => media is Audio or Video;
}

public static class CallReasons
{
    public const string Left = "left", Disconnected = "disconnected", Declined = "declined", Missed = "missed",
        Completed = "completed", EndedBy = "ended", NoAnswer = "no_answer";
}
