namespace Caas.Actors.Common;

/// <summary>
/// Stable error codes shared by the domain, the REST edge (problem+json <c>code</c>) and the hub.
/// The table in DESIGN.md is the authority; add a code there first.
/// </summary>
public static class ErrorCodes
{
    public const string ValidationFailed = "validation_failed";
    public const string MalformedJson = "malformed_json";
    public const string Unauthenticated = "unauthenticated";
    public const string Forbidden = "forbidden";
    public const string Banned = "banned";
    public const string Muted = "muted";
    public const string NotFound = "not_found";
    public const string Conflict = "conflict";
    public const string MessageIdConflict = "message_id_conflict";
    public const string MessageTooOld = "message_too_old";
    public const string LastOwner = "last_owner";
    public const string PayloadTooLarge = "payload_too_large";
    public const string RateLimited = "rate_limited";
    public const string Overloaded = "overloaded";
    public const string PersistTimeout = "persist_timeout";
    /// <summary>A store (the database) is down or its breaker is open: 503 with Retry-After; nothing was changed.</summary>
    public const string Unavailable = "unavailable";
    /// <summary>A tenant's or user's media storage quota (413, with used and limit bytes and files).</summary>
    public const string QuotaExceeded = "quota_exceeded";
    /// <summary>A file type the route does not take: sniffed from the bytes, not matching the declared type, or not allowed.</summary>
    public const string UnsupportedMediaType = "unsupported_media_type";
    /// <summary>An upload's bytes do not match its declared SHA-256 (or size).</summary>
    public const string ChecksumMismatch = "checksum_mismatch";
    /// <summary>The hub's <c>Hello</c>: none of the protocol versions the client offered is one this server speaks.</summary>
    public const string UnsupportedProtocol = "unsupported_protocol";
}

/// <summary>A command the entity refused, as a value. <see cref="Errors"/> names each bad field for validation.</summary>
public sealed record Rejection(string Code, string Message, IReadOnlyDictionary<string, string[]>? Errors = null,
    double? RetryAfterSeconds = null) : ICaasMessage
{
    public static Rejection NotFound(string what = "conversation") => new(ErrorCodes.NotFound, $"The {what} does not exist.");
    public static Rejection Forbidden(string why) => new(ErrorCodes.Forbidden, why);
    public static Rejection Conflict(string why) => new(ErrorCodes.Conflict, why);
    public static Rejection Banned() => new(ErrorCodes.Banned, "You are banned from this conversation.");
    public static Rejection Muted() => new(ErrorCodes.Muted, "You are muted in this conversation.");
    public static Rejection Invalid(string field, string problem) =>
        new(ErrorCodes.ValidationFailed, "The request is not valid.", new Dictionary<string, string[]> { [field] = [problem] });
}

/// <summary>The command was carried out; nothing more to say.</summary>
public sealed record Done(string What) : ICaasMessage, IJournalStamped
{
    public long JournalSeq { get; init; }
    public IJournalStamped At(long journalSeq) => this with { JournalSeq = journalSeq };
}

/// <summary>
/// A reply that carries the entity's journal sequence number after the command (its last event's): a reader of the
/// read model waits until the projection's progress mark for that entity reaches it (read-your-writes).
/// </summary>
public interface IJournalStamped
{
    long JournalSeq { get; }

    IJournalStamped At(long journalSeq);
}

/// <summary>
/// How a sharded entity is asked to stop (hand-off and passivation). Unlike a PoisonPill it is a command: it waits
/// behind a write in progress, so nothing queued behind that write is lost.
/// </summary>
public sealed record StopEntity : ICaasMessage
{
    public static StopEntity Instance { get; } = new();
}
