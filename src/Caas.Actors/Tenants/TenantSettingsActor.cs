using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Caas.Actors.Common;

namespace Caas.Actors.Tenants;

public sealed class TenantSettingsActor : EntityActor
{
    public const string KindTag = "tenant";
    private TenantSettingsState _state = TenantSettingsState.Default;
    private string? _lastHash;

    public TenantSettingsActor(string tenantId, EntitySettings settings)
    {
        PersistenceId = "tenant|" + tenantId;
        Recover<SnapshotOffer>(o => { if (o.Snapshot is TenantSettingsState s) _state = s; });
        Recover<TenantSettingsChanged>(e => { _state = e.Settings; _lastHash = e.Meta.Hash ?? _lastHash; });
        Command<ITenantCommand>(c =>
        {
            var (evt, reply) = TenantSettingsDecider.Decide(_state, c, DateTimeOffset.UtcNow);
            if (evt is null) { Sender.Tell(reply); return; }
            var replyTo = Sender;
            var chained = HashChain.Seal(evt, _lastHash, o => Context.System.Serialization.FindSerializerFor(o).ToBinary(o), AuditKeySetup.Of(Context.System));
            Persist(new Tagged(chained, [KindTag, Ids.TenantTag(tenantId)]), _ => { _state = evt.Settings; _lastHash = chained.Meta.Hash; replyTo.Tell(reply); });
        });
        Command<StopEntity>(_ => Context.Stop(Self));
        Command<ReceiveTimeout>(_ => Context.Parent.Tell(new Passivate(StopEntity.Instance)));
        Context.SetReceiveTimeout(settings.PassivateAfter);
    }

    public override string PersistenceId { get; }

    public static Props PropsFor(string tenantId, EntitySettings settings) => Props.Create(() => new TenantSettingsActor(tenantId, settings));
}
