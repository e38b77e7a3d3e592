using Caas.Actors.Common;

namespace Caas.Actors.Sessions;

public interface IUserSessionEvent : IDomainEvent, ICaasMessage;

public static class PresenceStatus
{
    public const string Online = "online";
    public const string Away = "away";
    public const string Offline = "offline";
}

/// <summary>Persisted presence transitions: <c>online</c> or <c>offline</c>; <c>away</c> is derived from idleness.</summary>
public sealed record PresenceChanged(EventMeta Meta, string Status) : IUserSessionEvent;

public sealed record ReadMarked(EventMeta Meta, string ConversationId, long Seq) : IUserSessionEvent;

/// <summary>
/// The user's clients have every event of the conversation up to <see cref="EventSeq"/> (its journal sequence number):
/// cumulative, saved at most about once a second per user and conversation by each node (the hub coalesces).
/// </summary>
public sealed record DeliveredMarked(EventMeta Meta, string ConversationId, long EventSeq) : IUserSessionEvent;

public sealed record ProfileUpdated(EventMeta Meta, string? DisplayName, string? TimeZone, string? Locale) : IUserSessionEvent;

/// <summary>The user was erased (GDPR): <see cref="KeyIds"/> were destroyed; the actor in <see cref="Meta"/> is the admin.</summary>
public sealed record UserErased(EventMeta Meta, string UserId, System.Collections.Immutable.ImmutableArray<string> KeyIds) : IUserSessionEvent;
