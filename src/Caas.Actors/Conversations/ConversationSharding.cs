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
                return entityId => ConversationActor.PropsFor(entityId, settings);
            },
            new EntityMessageExtractor(maxShards),
            EntitySharding.Options(role));
}
