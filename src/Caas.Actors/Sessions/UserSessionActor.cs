using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Caas.Actors.Common;

namespace Caas.Actors.Sessions;

/// <summary>
/// One writer per user across the cluster. Persisted: presence transitions, read markers, profile.
/// In memory only: live connections (a node that leaves takes its connections with it), the message-rate and hourly-cap
/// windows and the rejected-attempt budget.
/// </summary>
public sealed class UserSessionActor : ReceivePersistentActor, IWithTimers
{
    public const string KindTag = "user-session";

    private readonly EntitySettings _settings;
    private readonly string _tenantId;
    private readonly string _userId;
    private readonly Dictionary<string, string> _connections = new(); // connection id -> node address
    private readonly List<long> _slots = new(); // accepted-message times (UTC ticks) of the last minute, oldest first
    private readonly List<long> _hourSlots = new(); // the same, for the hourly cap
    private readonly List<long> _rejected = new(); // rejected-attempt times (UTC ticks) of the last minute, oldest first
    private UserSessionState _state = UserSessionState.Empty;
    private DateTimeOffset _lastActivity = DateTimeOffset.MinValue;
    private bool _watchingCluster;

    private sealed record OfflineCheck;

    public UserSessionActor(string entityId, EntitySettings settings)
    {
        _settings = settings;
        (_tenantId, _userId) = Ids.SplitEntityId(entityId);
        PersistenceId = PersistenceIdOf(entityId);

        Recover<SnapshotOffer>(o => { if (o.Snapshot is UserSessionState s) _state = s; });
        Recover<IUserSessionEvent>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            // Connections do not survive the entity: whatever it last said, nobody is connected now.
            if (_state.Status != PresenceStatus.Offline) Persist(Tag(new PresenceChanged(Meta(), PresenceStatus.Offline)), ApplyTagged);
        });

        Command<ConnectionOpened>(Opened);
        Command<ConnectionClosed>(c => { if (_connections.Remove(c.ConnectionId)) ScheduleOfflineCheck(); Sender.Tell(Presence()); });
        Command<OfflineCheck>(_ => GoOfflineIfIdle());
        Command<ClusterEvent.MemberRemoved>(m => NodeGone(m.Member.Address.ToString()));
        Command<ClusterEvent.IMemberEvent>(_ => { });
        Command<ClusterEvent.CurrentClusterState>(_ => { });
        Command<GetPresence>(_ => Sender.Tell(Presence()));
        Command<AcquireMessageSlot>(Acquire);
        Command<ReleaseMessageSlot>(r =>
        {
            _slots.Remove(r.SlotTicks);
            _hourSlots.Remove(r.SlotTicks);
            Sender.Tell(new Done("released"));
        });
        Command<CountRejectedAttempt>(CountRejected);
        Command<IUserSessionCommand>(Decide);
        Command<SaveSnapshotSuccess>(ok => DeleteSnapshots(new SnapshotSelectionCriteria(ok.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(_ => { });
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
        Command<StopEntity>(_ => Context.Stop(Self));
        Command<ReceiveTimeout>(_ =>
        {
            // Stay while anything lives only in memory: open connections or a rate window still in force.
            PruneSlots(DateTimeOffset.UtcNow);
            if (_connections.Count == 0 && _hourSlots.Count == 0 && _rejected.Count == 0) Context.Parent.Tell(new Passivate(StopEntity.Instance));
        });
    }

    public override string PersistenceId { get; }

    public ITimerScheduler Timers { get; set; } = null!;

    public static string PersistenceIdOf(string entityId) => "user-session|" + entityId;

    public static Props PropsFor(string entityId, EntitySettings settings) => Props.Create(() => new UserSessionActor(entityId, settings));

    protected override void PreStart()
    {
        base.PreStart();
        Context.SetReceiveTimeout(_settings.PassivateAfter);
    }

    protected override void PostStop()
    {
        if (_watchingCluster) Cluster.Get(Context.System).Unsubscribe(Self);
        base.PostStop();
    }

    private void Opened(ConnectionOpened c)
    {
        _connections[c.ConnectionId] = c.NodeAddress;
        _lastActivity = DateTimeOffset.UtcNow;
        if (!_watchingCluster && Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal))
        {
            Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
                typeof(ClusterEvent.MemberRemoved));
            _watchingCluster = true;
        }
        var reply = Sender;
        if (_state.Status == PresenceStatus.Online) { reply.Tell(Presence()); return; }
        Persist(Tag(new PresenceChanged(Meta(), PresenceStatus.Online)), e => { ApplyTagged(e); reply.Tell(Presence()); });
    }

    private void NodeGone(string address)
    {
        var gone = _connections.Where(kv => kv.Value == address).Select(kv => kv.Key).ToList();
        foreach (var id in gone) _connections.Remove(id);
        if (gone.Count > 0) ScheduleOfflineCheck();
    }

    private void ScheduleOfflineCheck()
    {
        if (_connections.Count == 0)
            Timers.StartSingleTimer("offline", new OfflineCheck(), _settings.OfflineGrace);
    }

    private void GoOfflineIfIdle()
    {
        if (_connections.Count > 0 || _state.Status == PresenceStatus.Offline) return;
        Persist(Tag(new PresenceChanged(Meta(), PresenceStatus.Offline)), ApplyTagged);
    }

    private void Acquire(AcquireMessageSlot a)
    {
        var now = DateTimeOffset.UtcNow;
        _lastActivity = now;
        PruneSlots(now);
        if (UserSessionDecider.RetryAfter(_slots, _slots.Count > 0 ? _slots[0] : 0, a.LimitPerMinute, now) is { } wait)
        {
            Sender.Tell(Limited($"At most {a.LimitPerMinute} messages a minute.", wait));
            return;
        }
        if (UserSessionDecider.RetryAfter(_hourSlots.Count, _hourSlots.Count > 0 ? _hourSlots[0] : 0, a.LimitPerHour, now,
                UserSessionDecider.CapWindow) is { } capWait)
        {
            Sender.Tell(Limited($"At most {a.LimitPerHour} messages an hour.", capWait));
            return;
        }
        var ticks = now.UtcTicks;
        // Two slots in the same tick would be indistinguishable on release.
        var last = Math.Max(_slots.Count > 0 ? _slots[^1] : 0, _hourSlots.Count > 0 ? _hourSlots[^1] : 0);
        if (last >= ticks) ticks = last + 1;
        _slots.Add(ticks);
        _hourSlots.Add(ticks);
        Sender.Tell(new MessageSlotGranted(ticks));
    }

    private void CountRejected(CountRejectedAttempt c)
    {
        var now = DateTimeOffset.UtcNow;
        Prune(_rejected, now - UserSessionDecider.RateWindow);
        if (UserSessionDecider.RetryAfter(_rejected.Count, _rejected.Count > 0 ? _rejected[0] : 0, c.LimitPerMinute, now,
                UserSessionDecider.RateWindow) is { } wait)
        {
            Sender.Tell(Limited($"At most {c.LimitPerMinute} rejected message attempts a minute.", wait));
            return;
        }
        _rejected.Add(now.UtcTicks);
        Sender.Tell(new Done("counted"));
    }

    private static Rejection Limited(string message, TimeSpan wait) =>
        new(ErrorCodes.RateLimited, message, RetryAfterSeconds: Math.Max(1, Math.Ceiling(wait.TotalSeconds)));

    private void PruneSlots(DateTimeOffset now)
    {
        Prune(_slots, now - UserSessionDecider.RateWindow);
        Prune(_hourSlots, now - UserSessionDecider.CapWindow);
        Prune(_rejected, now - UserSessionDecider.RateWindow);
    }

    private static void Prune(List<long> ticks, DateTimeOffset before)
    {
        var cutoff = before.UtcTicks;
        var expired = 0;
        while (expired < ticks.Count && ticks[expired] <= cutoff) expired++;
        if (expired > 0) ticks.RemoveRange(0, expired);
    }

    private void Decide(IUserSessionCommand command)
    {
        var (evt, reply) = UserSessionDecider.Decide(_state, command, DateTimeOffset.UtcNow);
        if (evt is null) { Sender.Tell(reply); return; }
        var replyTo = Sender;
        Persist(Tag(evt), e =>
        {
            ApplyTagged(e);
            replyTo.Tell(reply);
        });
    }

    private PresenceView Presence()
    {
        var status = _connections.Count == 0
            ? (_state.Status == PresenceStatus.Online ? PresenceStatus.Online : PresenceStatus.Offline)
            : DateTimeOffset.UtcNow - _lastActivity > _settings.PassivateAfter * 2.5 ? PresenceStatus.Away : PresenceStatus.Online;
        return new PresenceView(_userId, status, status == PresenceStatus.Online ? null : _state.LastSeen, _connections.Count);
    }

    private EventMeta Meta() => new(_tenantId, _userId, DateTimeOffset.UtcNow);

    private Tagged Tag(IUserSessionEvent e) =>
        new(HashChain.Seal(e, _state.LastHash, o => Context.System.Serialization.FindSerializerFor(o).ToBinary(o), AuditKeySetup.Of(Context.System)), [KindTag, Ids.TenantTag(_tenantId)]);

    /// <summary>Every persisted event, presence included, counts towards the next snapshot.</summary>
    private void ApplyTagged(Tagged t)
    {
        _state = _state.Apply((IUserSessionEvent)t.Payload);
        if (LastSequenceNr % _settings.SnapshotEvery == 0) SaveSnapshot(_state);
    }
}
