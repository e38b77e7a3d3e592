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
/// windows with the slots leased to pipelines, and the rejected-attempt budget.
/// </summary>
public sealed class UserSessionActor : UntypedEntityActor, IWithTimers
{
    public const string KindTag = "user-session";

    private readonly EntitySettings _settings;
    private readonly string _tenantId;
    private readonly string _userId;
    private readonly Dictionary<string, string> _connections = new(); // connection id -> node address
    private readonly RateLeaseSettings _leaseSettings;
    private readonly MessageSlots _slots = new();
    private readonly List<SlotRequest> _waiting = new(); // slot requests held while leases are recalled, oldest first
    private readonly List<long> _rejected = new(); // rejected-attempt times (UTC ticks) of the last minute, oldest first
    private UserSessionState _state = UserSessionState.Empty;
    private DateTimeOffset _lastActivity = DateTimeOffset.MinValue;
    private bool _watchingCluster;

    private sealed record OfflineCheck;

    /// <summary>A request for slots: one (a per-message acquire, no holder) or a lease's block.</summary>
    private sealed record SlotRequest(IActorRef ReplyTo, string? Holder, int Wanted, int LimitPerMinute, int LimitPerHour, bool Carried, long Arrived);

    private sealed record RecallTimedOut(string Holder, string LeaseId);

    public UserSessionActor(string entityId, EntitySettings settings)
    {
        _settings = settings;
        _leaseSettings = RateLeaseSettings.From(Context.System.Settings.Config);
        (_tenantId, _userId) = Ids.SplitEntityId(entityId);
        PersistenceId = PersistenceIdOf(entityId);
    }

    // Untyped (a switch, not Command<T> registrations): one entity lives per connected user, and a receive actor's
    // handler table would cost each of them about 2 KB (measured with dotnet-gcdump; see README, "Idle connections").
    protected override void OnRecover(object message)
    {
        switch (message)
        {
            case SnapshotOffer o:
                if (o.Snapshot is UserSessionState s) _state = s;
                break;
            case IUserSessionEvent e:
                _state = _state.Apply(e);
                break;
            case RecoveryCompleted:
                // Armed after the replay: while armed, every replayed event would re-schedule it.
                Context.SetReceiveTimeout(_settings.PassivateAfter);
                // Connections do not survive the entity: whatever it last said, nobody is connected now.
                if (_state.Status != PresenceStatus.Offline) Persist(Tag(new PresenceChanged(Meta(), PresenceStatus.Offline)), ApplyTagged);
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    protected override void OnCommand(object message)
    {
        switch (message)
        {
            case ConnectionOpened c:
                Opened(c);
                break;
            case ConnectionClosed c:
                if (_connections.Remove(c.ConnectionId)) ScheduleOfflineCheck();
                Sender.Tell(Presence());
                break;
            case OfflineCheck:
                GoOfflineIfIdle();
                break;
            case ClusterEvent.MemberRemoved m:
                NodeGone(m.Member.Address.ToString());
                break;
            case ClusterEvent.IMemberEvent or ClusterEvent.CurrentClusterState:
                break;
            case GetPresence:
                Sender.Tell(Presence());
                break;
            case AcquireMessageSlot a:
                Acquire(a);
                break;
            case ReleaseMessageSlot r:
                _slots.Release(r.SlotTicks);
                Sender.Tell(new Done("released"));
                AnswerWaiting();
                break;
            case LeaseMessageSlots l:
                Lease(l);
                break;
            case RecallTimedOut t:
                Forfeit(t);
                break;
            case CountRejectedAttempt r:
                CountRejected(r);
                break;
            case IUserSessionCommand command:
                Decide(command);
                break;
            case SaveSnapshotSuccess ok:
                DeleteSnapshots(new SnapshotSelectionCriteria(ok.Metadata.SequenceNr - 1));
                break;
            case SaveSnapshotFailure or DeleteSnapshotsSuccess or DeleteSnapshotsFailure:
                break;
            case StopEntity:
                Context.Stop(Self);
                break;
            case ReceiveTimeout:
                // Stay while anything lives only in memory: open connections or a rate window still in force.
                PruneSlots(DateTimeOffset.UtcNow);
                if (_connections.Count == 0 && _slots.IsIdle && _waiting.Count == 0 && _rejected.Count == 0)
                    Context.Parent.Tell(new Passivate(StopEntity.Instance));
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    public override string PersistenceId { get; }

    public ITimerScheduler Timers { get; set; } = null!;

    public static string PersistenceIdOf(string entityId) => "user-session|" + entityId;

    public static Props PropsFor(string entityId, EntitySettings settings) => Props.Create(() => new UserSessionActor(entityId, settings));

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
        _lastActivity = DateTimeOffset.UtcNow;
        Request(new SlotRequest(Sender, null, 1, a.LimitPerMinute, a.LimitPerHour, true, _slots.Settles));
    }

    /// <summary>
    /// A pipeline settles its lease (spent slots join the windows, the rest comes back) and asks for the next block.
    /// Settling is immediate; the block waits behind earlier requests while leases are recalled.
    /// </summary>
    private void Lease(LeaseMessageSlots l)
    {
        var now = DateTimeOffset.UtcNow;
        if (l.Wanted > 0 || l.SpentAgo.Length > 0) _lastActivity = now;
        var carried = _slots.Settle(l, now, _leaseSettings.ValidFor);
        if (l.Wanted <= 0)
            Sender.Tell(new MessageSlotsLeased(_slots.LeaseOf(l.Holder)!.Id, 0, _leaseSettings.ValidFor, carried));
        else
            _waiting.Add(new SlotRequest(Sender, l.Holder, l.Wanted, l.LimitPerMinute, l.LimitPerHour, carried, _slots.Settles));
        AnswerWaiting();
    }

    private void Request(SlotRequest request)
    {
        _waiting.Add(request);
        AnswerWaiting();
    }

    /// <summary>Answers the waiting requests in order, until one must wait for a recall.</summary>
    private void AnswerWaiting()
    {
        while (_waiting.Count > 0 && TryAnswer(_waiting[0])) _waiting.RemoveAt(0);
    }

    /// <summary>
    /// Grants what is free (a lease at most its share of the rate). With nothing free, slots leased to other holders
    /// are recalled first: a user is refused only when every slot of the window is spent or on its way.
    /// </summary>
    private bool TryAnswer(SlotRequest r)
    {
        var now = DateTimeOffset.UtcNow;
        var free = _slots.Free(r.LimitPerMinute, r.LimitPerHour, now);
        if (free <= 0)
        {
            var holders = _slots.Recallable(r.Holder, r.Arrived);
            if (holders.Count > 0)
            {
                foreach (var lease in holders.Where(h => !h.Recalled)) Recall(lease);
                return false;
            }
            r.ReplyTo.Tell(_slots.Refusal(r.LimitPerMinute, r.LimitPerHour, now));
            return true;
        }
        if (r.Holder is null)
        {
            r.ReplyTo.Tell(new MessageSlotGranted(_slots.Record(now.UtcTicks)));
            return true;
        }
        var granted = Math.Min(Math.Min(r.Wanted, free), _leaseSettings.MaxGrant(r.LimitPerMinute));
        var leased = _slots.Grant(r.Holder, granted, now, _leaseSettings.ValidFor);
        r.ReplyTo.Tell(new MessageSlotsLeased(leased.Id, granted, _leaseSettings.ValidFor, r.Carried));
        return true;
    }

    private void Recall(MessageSlots.Lease lease)
    {
        _slots.MarkRecalled(lease);
        Context.ActorSelection(lease.Holder).Tell(new RecallMessageSlots(_tenantId, _userId));
        Timers.StartSingleTimer("recall|" + lease.Holder, new RecallTimedOut(lease.Holder, lease.Id), _leaseSettings.RecallTimeout);
    }

    /// <summary>A holder that did not answer its recall (its node gone or stalled) forfeits its lease.</summary>
    private void Forfeit(RecallTimedOut t)
    {
        if (_slots.LeaseOf(t.Holder) is { Recalled: true } lease && lease.Id == t.LeaseId) _slots.Forfeit(lease);
        AnswerWaiting();
    }

    private void CountRejected(CountRejectedAttempt c)
    {
        var now = DateTimeOffset.UtcNow;
        Prune(_rejected, now - UserSessionDecider.RateWindow);
        if (UserSessionDecider.RetryAfter(_rejected.Count, _rejected.Count > 0 ? _rejected[0] : 0, c.LimitPerMinute, now,
                UserSessionDecider.RateWindow) is { } wait)
        {
            Sender.Tell(MessageSlots.Limited($"At most {c.LimitPerMinute} rejected message attempts a minute.", wait));
            return;
        }
        _rejected.Add(now.UtcTicks);
        Sender.Tell(new Done("counted"));
    }

    private void PruneSlots(DateTimeOffset now)
    {
        _slots.Prune(now);
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
