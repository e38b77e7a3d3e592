using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using Caas.Actors.Sessions;
using Caas.Actors.Tenants;

namespace Caas.Actors.Common;

public sealed class UserSessionRegion;

public sealed class TenantSettingsRegion;

/// <summary>Starts the user-session and tenant-settings shard regions.</summary>
public static class EntitySharding
{
    public static ShardOptions Options(string? role) =>
        new() { Role = role, RememberEntities = false, StateStoreMode = StateStoreMode.DData, HandOffStopMessage = StopEntity.Instance };

    public static AkkaConfigurationBuilder AddUserSessionSharding(this AkkaConfigurationBuilder builder, string? role, int maxShards = 100) =>
        builder.WithShardRegion<UserSessionRegion>("user-session",
            (system, _) =>
            {
                var settings = EntitySettings.From(system.Settings.Config);
                return id => UserSessionActor.PropsFor(id, settings);
            },
            new Conversations.EntityMessageExtractor(maxShards), Options(role));

    public static AkkaConfigurationBuilder AddTenantSettingsSharding(this AkkaConfigurationBuilder builder, string? role, int maxShards = 20) =>
        builder.WithShardRegion<TenantSettingsRegion>("tenant-settings",
            (system, _) =>
            {
                var settings = EntitySettings.From(system.Settings.Config);
                return id => TenantSettingsActor.PropsFor(id, settings);
            },
            new Conversations.EntityMessageExtractor(maxShards), Options(role));
}
