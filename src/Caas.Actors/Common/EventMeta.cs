using System.Text.Json.Serialization;

namespace Caas.Actors.Common;

/// <summary>
/// The envelope every persisted event carries: who acted, for which tenant, and when. It is defined once here so
/// that audit concerns (hash chain, encryption) have one place to grow.
/// </summary>
/// <see cref="PrevHash"/> and <see cref="Hash"/> chain the entity's events (<see cref="HashChain"/>); the actor sets them just before persisting; absent (not null) in events written before the chain.
public sealed record EventMeta(string TenantId, string ActorId, DateTimeOffset OccurredAt, 
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? PrevHash = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Hash = null);

/// <summary>Every domain event carries the envelope.</summary>
public interface IDomainEvent
{
    EventMeta Meta { get; }
}

/// <summary>A message routed to a sharded entity names the entity it is for.</summary>
public interface IEntityMessage
{
    string EntityId { get; }
}

/// <summary>Marker for every type the CAAS serializer handles (events, commands, replies, state).</summary>
public interface ICaasMessage;
