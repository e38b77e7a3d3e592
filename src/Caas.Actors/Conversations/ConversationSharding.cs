using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using Caas.Actors.Common;

namespace Caas.Actors.Conversations;

/// <summary>Registry key for the conversation shard region.</summary>
public sealed class ConversationRegion;

/// <summary>Routes any <see cref="IEntityMessage"/> to its entity by id; shards by the id's hash.</summary>
public sealed class EntityMessageExtractor(int maxShards) : HashCodeMessageExtractor(maxShards)
{
    public override string? EntityId(object message) => message switch
    {
        IEntityMessage m => m.EntityId,
        _ => null,
    };
}

/// <summary>
/// The conversation region's extractor: conversation messages by their entity id, and the room-topic messages
/// (<see cref="Rooms.RoomTopicIds"/>) to the topic entity, in the shard of its conversation, so that the topic lives
/// on the conversation entity's node and moves with it.
/// </summary>
public sealed class ConversationMessageExtractor(int maxShards) : IMessageExtractor
{
    private readonly EntityMessageExtractor _entities = new(maxShards);

    public string? EntityId(object message) => message is IEntityMessage m ? m.EntityId : Rooms.RoomTopicIds.For(message);

    public object? EntityMessage(object message) => message;

    public string? ShardId(object message) => EntityId(message) is { } id ? ShardId(id, message) : null;

    public string ShardId(string entityId, object? messageHint = null) => _entities.ShardId(Rooms.RoomTopicIds.Conversation(entityId), messageHint);
}

public static class ConversationSharding
{
    public const string TypeName = "conversation";

    /// <summary>Starts the conversation shard region on nodes with <paramref name="role"/> (null: every node).</summary>
    public static AkkaConfigurationBuilder AddConversationSharding(this AkkaConfigurationBuilder builder, string? role,
        int maxShards = 100) =>
        builder.WithShardRegion<ConversationRegion>(TypeName,
            (system, _) =>
            {
                var settings = EntitySettings.From(system.Settings.Config);
                return entityId => Rooms.RoomTopicIds.IsTopic(entityId)
                    ? Rooms.RoomTopicActor.PropsFor(settings)
                    : ConversationActor.PropsFor(entityId, settings);
            },
            new ConversationMessageExtractor(maxShards),
            EntitySharding.Options(role));
}
