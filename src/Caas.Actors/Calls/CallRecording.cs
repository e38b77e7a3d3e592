using System.Collections.Immutable;
using Caas.Actors.Common;

namespace Caas.Actors.Calls;

// Recordings with consent (issue #16): a call is recorded only while every joined participant has consented. The call
// entity is the record of it (requests, consents, starts, stops, the stored file, deletion); the bytes are uploaded by
// the requester's client through the media API and linked by the recording id.

/// <summary>Recording ids: <c>rec_&lt;32 hex&gt;</c>, made by the edge.</summary>
public static class RecordingIds
{
    public static string New() => "rec_" + Guid.CreateVersion7().ToString("N");

    public static bool IsValid(string? id) =>
        id is { Length: 36 } && id.StartsWith("rec_", StringComparison.Ordinal) && id.AsSpan(4).ContainsOnlyLowerHex();

    private static bool ContainsOnlyLowerHex(this ReadOnlySpan<char> s)
    {
        foreach (var c in s) if (!char.IsAsciiHexDigitLower(c)) return false;
        return true;
    }
}

public static class RecordingReasons
{
    /// <summary>Declined: a participant refused. Stopped or declined: the consent timeout passed with someone not answering.</summary>
    public const string Refused = "refused", Timeout = "timeout";

    /// <summary>Stopped: someone joined who has not consented (it resumes when they do); the requester or a moderator stopped it; the call ended.</summary>
    public const string ConsentPending = "consent_pending", Stopped = "stopped", CallEnded = "call_ended";
}

/// <summary>How a consent was given: the request itself (the requester), or the participant's answer over the hub.</summary>
public static class ConsentMethods
{
    public const string Requested = "requested", Hub = "hub";
}

/// <summary>Asks every joined participant to consent to recording the call; asking is the requester's own consent.</summary>
public sealed record RequestRecording(string TenantId, string ConversationId, string UserId, string CallId, string RecordingId)
    : CallCommand(TenantId, ConversationId, UserId);

/// <summary>The caller's own answer to the recording's consent request (only their own: the edge passes the caller).</summary>
public sealed record ConsentRecording(string TenantId, string ConversationId, string UserId, string CallId, string RecordingId, bool Consent)
    : CallCommand(TenantId, ConversationId, UserId);

/// <summary>Stops the call's recording for good: the requester's or a moderator+'s right.</summary>
public sealed record StopRecording(string TenantId, string ConversationId, string UserId, string CallId, Role Role)
    : CallCommand(TenantId, ConversationId, UserId);

/// <summary>The consent timeout of a recording (the entity schedules it).</summary>
public sealed record RecordingConsentTimedOut(string TenantId, string ConversationId, string UserId, string CallId, string RecordingId)
    : CallCommand(TenantId, ConversationId, UserId);

/// <summary>The file a recording's upload produced, as the media API stored it.</summary>
public sealed record RecordingFile(string FileId, string FileName, string ContentType, long Size, string Sha256, string Storage);

/// <summary>May <c>UserId</c> upload this recording's bytes (the requester, while it exists and has none yet)? Persists nothing.</summary>
public sealed record CheckRecordingUpload(string TenantId, string ConversationId, string UserId, string RecordingId)
    : CallCommand(TenantId, ConversationId, UserId);

/// <summary>The recording's bytes are stored: links the file (from the upload that carried the recording id).</summary>
public sealed record AttachRecording(string TenantId, string ConversationId, string UserId, string RecordingId, RecordingFile File)
    : CallCommand(TenantId, ConversationId, UserId);

/// <summary>Deletes a recording (a tenant admin, or erasure of a participant): the metadata stays, marked deleted.</summary>
public sealed record DeleteRecording(string TenantId, string ConversationId, string UserId, string RecordingId, string Reason)
    : CallCommand(TenantId, ConversationId, UserId);

/// <summary>One recording of the conversation's calls, as the entity knows it.</summary>
public sealed record GetRecording(string TenantId, string ConversationId, string UserId, string RecordingId)
    : CallCommand(TenantId, ConversationId, UserId);

/// <summary>A recording was asked for: <paramref name="Awaiting"/> must consent by <paramref name="Deadline"/> (the requester has).</summary>
public sealed record CallRecordingRequested(EventMeta Meta, string CallId, string RecordingId, string RequestedBy, IReadOnlyList<string> Awaiting,
    DateTimeOffset Deadline) : ICallEvent;

/// <summary>A participant answered the consent request (<paramref name="How"/>: <see cref="ConsentMethods"/>).</summary>
public sealed record CallRecordingConsented(EventMeta Meta, string CallId, string RecordingId, string UserId, bool Consent, string How) : ICallEvent;

/// <summary>Every joined participant has consented: recording (again, after a consent_pending stop).</summary>
public sealed record CallRecordingStarted(EventMeta Meta, string CallId, string RecordingId) : ICallEvent;

/// <summary>
/// Recording stopped. <see cref="RecordingReasons.ConsentPending"/>: <paramref name="Awaiting"/> joined and must consent
/// by <paramref name="Deadline"/> before it resumes; any other reason ends the recording.
/// </summary>
public sealed record CallRecordingStopped(EventMeta Meta, string CallId, string RecordingId, string Reason, string? By = null,
    IReadOnlyList<string>? Awaiting = null, DateTimeOffset? Deadline = null) : ICallEvent;

/// <summary>The recording will not go on: <paramref name="UserIds"/> refused (<c>refused</c>) or did not answer in time (<c>timeout</c>), or the call ended first.</summary>
public sealed record CallRecordingDeclined(EventMeta Meta, string CallId, string RecordingId, string Reason, IReadOnlyList<string> UserIds) : ICallEvent;

/// <summary>The recording's bytes are stored (the file the requester's client uploaded with the recording id).</summary>
public sealed record CallRecordingStored(EventMeta Meta, string CallId, string RecordingId, RecordingFile File) : ICallEvent;

/// <summary>The recording was deleted (its bytes purged by the edge; this metadata stays).</summary>
public sealed record CallRecordingDeleted(EventMeta Meta, string CallId, string RecordingId, string By, string Reason) : ICallEvent;

public enum RecordingPhase
{
    /// <summary>Waiting for consents; nothing recorded yet.</summary>
    Pending,
    /// <summary>Every joined participant consented: the requester's client records.</summary>
    Recording,
    /// <summary>Stopped until someone who joined consents.</summary>
    Paused,
}

/// <summary>A participant's consent: yes or no, when, how.</summary>
public sealed record RecordingConsent(string UserId, bool Consent, DateTimeOffset At, string How);

/// <summary>The active call's recording while it may still record.</summary>
public sealed record ActiveRecording(string RecordingId, string RequestedBy, DateTimeOffset RequestedAt, DateTimeOffset Deadline, RecordingPhase Phase,
    ImmutableDictionary<string, RecordingConsent> Consents, ImmutableSortedSet<string> Awaiting, DateTimeOffset? StartedAt, DateTimeOffset? RecordingSince,
    double RecordedSeconds);

/// <summary>
/// A recording as the entity keeps it (the last <see cref="CallRoomState.RecordingsKept"/> of the conversation):
/// <paramref name="Status"/> <c>pending</c>, <c>recording</c>, <c>paused</c>, <c>declined</c> (never recorded),
/// <c>recorded</c> (over, with or without its file yet), <c>deleted</c>.
/// </summary>
public sealed record RecordingInfo(string RecordingId, string CallId, string RequestedBy, DateTimeOffset RequestedAt, string Status,
    IReadOnlyList<RecordingConsent> Consents, DateTimeOffset? StartedAt, DateTimeOffset? EndedAt, double DurationSeconds, string? EndReason,
    RecordingFile? File, DateTimeOffset? DeletedAt = null, string? DeletedBy = null, string? DeleteReason = null) : ICaasMessage;

/// <summary>The reply to a recording command: the recording as it is after it.</summary>
public sealed record RecordingReply(string CallId, string RecordingId, string Status, IReadOnlyList<string> Awaiting, IReadOnlyList<RecordingConsent> Consents)
    : ICaasMessage;
