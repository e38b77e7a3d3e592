using Caas.Actors.Common;

namespace Caas.Actors.Sessions;

public interface IUserSessionCommand : IEntityMessage, ICaasMessage
{
    string TenantId { get; }
    string UserId { get; }
}

public abstract record UserSessionCommand(string TenantId, string UserId) : IUserSessionCommand
{
    [System.Text.Json.Serialization.JsonIgnore]
    public string EntityId => Ids.EntityId(TenantId, UserId);
}

/// <summary>A live connection (a socket) opened on a node. Connections are memory, not events.</summary>
public sealed record ConnectionOpened(string TenantId, string UserId, string ConnectionId, string NodeAddress)
    : UserSessionCommand(TenantId, UserId);

public sealed record ConnectionClosed(string TenantId, string UserId, string ConnectionId) : UserSessionCommand(TenantId, UserId);

public sealed record GetPresence(string TenantId, string UserId) : UserSessionCommand(TenantId, UserId);

public sealed record MarkRead(string TenantId, string UserId, string ConversationId, long Seq) : UserSessionCommand(TenantId, UserId);

/// <summary>Moves the user's delivered marker in a conversation forward (answered <see cref="DeliveredMarker"/>); never back.</summary>
public sealed record MarkDelivered(string TenantId, string UserId, string ConversationId, long EventSeq) : UserSessionCommand(TenantId, UserId);

/// <summary>The user's delivered marker in one conversation (answered <see cref="DeliveredMarker"/>, 0 when none).</summary>
public sealed record GetDeliveredMarker(string TenantId, string UserId, string ConversationId) : UserSessionCommand(TenantId, UserId);

public sealed record GetProfile(string TenantId, string UserId) : UserSessionCommand(TenantId, UserId);

/// <summary>The user's read markers (answered <see cref="ReadMarkers"/>): the conversation list counts unread from them.</summary>
public sealed record GetReadMarkers(string TenantId, string UserId) : UserSessionCommand(TenantId, UserId);

/// <summary>Null fields stay as they are.</summary>
public sealed record UpdateProfile(string TenantId, string UserId, string? DisplayName, string? TimeZone, string? Locale)
    : UserSessionCommand(TenantId, UserId);

/// <summary>
/// Asks for one message slot in the user's sliding one-minute window and sliding one-hour window. The windows live
/// in this entity (one writer per user across the cluster), so the limits hold whichever node the user talks to.
/// </summary>
public sealed record AcquireMessageSlot(string TenantId, string UserId, int LimitPerMinute, int LimitPerHour = int.MaxValue)
    : UserSessionCommand(TenantId, UserId);

/// <summary>
/// Counts one rejected message attempt (not a member, banned, invalid) in the user's own sliding one-minute budget,
/// apart from the message rate: answered <see cref="Done"/> while within it, else <c>rate_limited</c> with Retry-After.
/// </summary>
public sealed record CountRejectedAttempt(string TenantId, string UserId, int LimitPerMinute) : UserSessionCommand(TenantId, UserId);

/// <summary>Gives a slot back when the message it was taken for was not accepted (a repeat or a rejection).</summary>
public sealed record ReleaseMessageSlot(string TenantId, string UserId, long SlotTicks) : UserSessionCommand(TenantId, UserId);

/// <summary>
/// GDPR erasure of the user, recorded as an audited event: <paramref name="ActorId"/> (an admin) destroyed the data keys
/// <paramref name="KeyIds"/>, so the user's message content reads as erased everywhere from now on.
/// </summary>
public sealed record EraseUser(string TenantId, string UserId, string ActorId, System.Collections.Immutable.ImmutableArray<string> KeyIds)
    : UserSessionCommand(TenantId, UserId);

/// <summary>
/// A pipeline (the <paramref name="Holder"/>, an actor path) settles its lease of the user's message slots and asks
/// for a new block of up to <paramref name="Wanted"/> (zero: settle only). <paramref name="SpentAgo"/> are the slots
/// whose messages were accepted since the last settle, each as how long ago it was spent (a duration, so the two
/// nodes' clocks never meet); <paramref name="Pending"/> are spent slots whose message is still on its way (they stay
/// counted). Every other slot of lease <paramref name="LeaseId"/> goes back. Answered <see cref="MessageSlotsLeased"/>,
/// or <c>rate_limited</c> with Retry-After once no other holder has a slot left to give back.
/// </summary>
public sealed record LeaseMessageSlots(string TenantId, string UserId, string Holder, string? LeaseId,
    System.Collections.Immutable.ImmutableArray<long> SpentAgo, int Pending, int Wanted, int LimitPerMinute, int LimitPerHour)
    : UserSessionCommand(TenantId, UserId);

/// <summary>
/// The session entity asks a holder to settle its lease of the user's slots at once (another pipeline of the user
/// needs them): the holder answers with a <see cref="LeaseMessageSlots"/> that wants nothing.
/// </summary>
public sealed record RecallMessageSlots(string TenantId, string UserId) : ICaasMessage;
