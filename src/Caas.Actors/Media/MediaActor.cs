using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Caas.Actors.Common;

namespace Caas.Actors.Media;

/// <summary>
/// One file's entity (<c>media|tenant|file id</c>): decides, persists (hash-chained, tagged <c>media</c> and the
/// tenant), replies after the journal write, snapshots never (a file has three events at most), passivates when idle.
/// </summary>
public sealed class MediaActor : EntityActor
{
    public const string KindTag = "media";
    private MediaState _state = MediaState.Empty;
    private string? _lastHash;

    public MediaActor(string entityId, EntitySettings settings)
    {
        PersistenceId = "media|" + entityId;
        var (tenantId, _) = Ids.SplitEntityId(entityId);
        Recover<IMediaEvent>(e => { _state = _state.Apply(e); _lastHash = e.Meta.Hash ?? _lastHash; });
        Command<IMediaCommand>(c =>
        {
            var (evt, reply) = MediaDecider.Decide(_state, c, DateTimeOffset.UtcNow);
            if (evt is null) { Sender.Tell(reply); return; }
            var replyTo = Sender;
            var chained = HashChain.Seal(evt, _lastHash, o => Context.System.Serialization.FindSerializerFor(o).ToBinary(o), AuditKeySetup.Of(Context.System));
            Persist(new Tagged(chained, [KindTag, Ids.TenantTag(tenantId)]), _ =>
            {
                _state = _state.Apply(chained);
                _lastHash = chained.Meta.Hash;
                replyTo.Tell(reply);
            });
        });
        Command<StopEntity>(_ => Context.Stop(Self));
        Command<ReceiveTimeout>(_ => Context.Parent.Tell(new Passivate(StopEntity.Instance)));
        Context.SetReceiveTimeout(settings.PassivateAfter);
    }

    public override string PersistenceId { get; }

    public static Props PropsFor(string entityId, EntitySettings settings) => Props.Create(() => new MediaActor(entityId, settings));
}

public sealed class MediaRegion;

public static class MediaSharding
{
    public static AkkaConfigurationBuilder AddMediaSharding(this AkkaConfigurationBuilder builder, string? role, int maxShards = 100) =>
        builder.WithShardRegion<MediaRegion>("media",
            (system, _) =>
            {
                var settings = EntitySettings.From(system.Settings.Config);
                return id => MediaActor.PropsFor(id, settings);
            },
            new Conversations.EntityMessageExtractor(maxShards), EntitySharding.Options(role));
}
