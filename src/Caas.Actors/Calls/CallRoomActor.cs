using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Sharding;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Actors.Calls;

/// <summary>Call settings (<c>caas.calls</c> in hocon/sharding.conf).</summary>
public sealed record CallSettings(TimeSpan RingTimeout)
{
    public static CallSettings From(Config config) =>
        new(config.GetTimeSpan("caas.calls.ring-timeout", TimeSpan.FromSeconds(45)));
}

/// <summary>
/// A conversation's calls (<c>calls|tenant|conversation</c>): decides with <see cref="CallDecider"/>, persists, then
/// replies and publishes the hub events (<see cref="CallNotices"/>). It times the ring itself and does not passivate
/// while a call is active, so the ring timeout is never lost to passivation.
/// </summary>
public sealed class CallRoomActor : ReceivePersistentActor
{
    public const string KindTag = "call";
    private readonly EntitySettings _settings;
    private readonly CallSettings _calls;
    private readonly string _tenantId;
    private readonly string _conversationId;
    private CallRoomState _state = CallRoomState.Empty;
    private string? _lastHash;
    private ICancelable? _ringTimer;

    public CallRoomActor(string entityId, EntitySettings settings, CallSettings calls)
    {
        _settings = settings;
        _calls = calls;
        var bar = entityId.IndexOf('|');
        _tenantId = entityId[..bar];
        _conversationId = entityId[(bar + 1)..];
        PersistenceId = "calls|" + entityId;
        Recover<ICallEvent>(e => { _state = _state.Apply(e); _lastHash = e.Meta.Hash ?? _lastHash; });
        Recover<RecoveryCompleted>(_ => AfterChange());
        Command<ICallCommand>(Handle);
        Command<StopEntity>(_ => Context.Stop(Self));
        Command<ReceiveTimeout>(_ => { if (_state.Active is null) Context.Parent.Tell(new Passivate(StopEntity.Instance)); });
    }

    public override string PersistenceId { get; }

    public static Props PropsFor(string entityId, EntitySettings settings, CallSettings calls) =>
        Props.Create(() => new CallRoomActor(entityId, settings, calls));

    private void Handle(ICallCommand command)
    {
        var decision = CallDecider.Decide(_state, command, DateTimeOffset.UtcNow);
        if (decision.Events.Count == 0)
        {
            Sender.Tell(decision.Reply);
            return;
        }
        var replyTo = Sender;
        var toBytes = (Func<object, byte[]>)(o => Context.System.Serialization.FindSerializerFor(o).ToBinary(o));
        var chained = HashChain.SealAll(decision.Events, _lastHash, toBytes, AuditKeySetup.Of(Context.System));
        var tags = new[] { KindTag, Ids.TenantTag(_tenantId) };
        var connection = (command as AcceptCall)?.ConnectionId;
        var remaining = chained.Count;
        PersistAll(chained.Select(e => new Tagged(e, tags)), tagged =>
        {
            var e = (ICallEvent)tagged.Payload;
            var before = _state;
            _state = _state.Apply(e);
            _lastHash = e.Meta.Hash;
            var mediator = DistributedPubSub.Get(Context.System).Mediator;
            foreach (var notice in CallNotices.For(e, before, _conversationId, connection))
                if (notice.Recipients.Count > 0) mediator.Tell(new Publish(CallNotices.Topic, notice));
            if (--remaining == 0)
            {
                replyTo.Tell(decision.Reply);
                AfterChange();
            }
        });
    }

    /// <summary>Times the ring of an active call (again after recovery); idles out only with no call active.</summary>
    private void AfterChange()
    {
        _ringTimer?.Cancel();
        _ringTimer = null;
        if (_state.Active is { } a && a.Ringing.Any())
        {
            var due = a.StartedAt + _calls.RingTimeout - DateTimeOffset.UtcNow;
            _ringTimer = Context.System.Scheduler.ScheduleTellOnceCancelable(due < TimeSpan.Zero ? TimeSpan.Zero : due, Self,
                new RingTimedOut(_tenantId, _conversationId, "system", a.CallId), Self);
        }
        Context.SetReceiveTimeout(_state.Active is null ? _settings.PassivateAfter : null);
    }

    protected override void PostStop()
    {
        _ringTimer?.Cancel();
        base.PostStop();
    }
}

public sealed class CallRoomRegion;

public static class CallSharding
{
    public const string TypeName = "call-room";

    public static AkkaConfigurationBuilder AddCallRoomSharding(this AkkaConfigurationBuilder builder, string? role, int maxShards = 100) =>
        builder.WithShardRegion<CallRoomRegion>(TypeName,
            (system, _) =>
            {
                var settings = EntitySettings.From(system.Settings.Config);
                var calls = CallSettings.From(system.Settings.Config);
                return id => CallRoomActor.PropsFor(id, settings, calls);
            },
            new EntityMessageExtractor(maxShards), EntitySharding.Options(role));
}
