using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Caas.Actors.Conversations;
using Caas.Actors.Rooms;
using Caas.Actors.Sessions;
using Caas.Streams.ReadModel;
using Caas.Web.Edge;
using Microsoft.AspNetCore.SignalR;

namespace Caas.Web.Hubs;

/// <summary>What a room feed needs from the node.</summary>
public sealed record RelayContext(ClusterGateway Gateway, HubSettings Settings, RoomTopicRouter Topics, string NodeAddress,
    ConversationJournal Journal);

/// <summary>Local messages between the hub and the relay (never cross the wire).</summary>
public static class Relay
{
    /// <summary>
    /// Registers a connection with the room's feed. With <paramref name="ResumeAfter"/> (a journal sequence number) the
    /// connection first gets the conversation's events after it from the journal, then the live ones, with none
    /// missing and none twice (see <see cref="RoomFeedActor"/>).
    /// </summary>
    public sealed record Join(string TenantId, string ConversationId, ChatConnection Connection, long LastSeq, IReadOnlyList<string> Members,
        long? ResumeAfter = null, long JournalSeq = 0) : INoSerializationVerificationNeeded;

    public sealed record Joined : INoSerializationVerificationNeeded;

    public sealed record Leave(string TenantId, string ConversationId, string ConnectionId) : INoSerializationVerificationNeeded;

    public sealed record RoomIdle(string Key, int JoinsSeen) : INoSerializationVerificationNeeded;

    public sealed record NodeGone(string Address) : INoSerializationVerificationNeeded;

    public static string Key(string tenantId, string conversationId) => RoomTopics.Of(tenantId, conversationId);
}

/// <summary>
/// The node's room relay: one <see cref="RoomFeedActor"/> per conversation that has a live connection on this node.
/// Starts feeds on the first join and stops them when the last local connection has left.
/// </summary>
public sealed class RoomRelayActor : ReceiveActor
{
    private readonly Dictionary<string, (IActorRef Feed, int Joins)> _feeds = new(StringComparer.Ordinal);
    private long _counter;

    public RoomRelayActor(RelayContext context)
    {
        Receive<Relay.Join>(j =>
        {
            var key = Relay.Key(j.TenantId, j.ConversationId);
            if (!_feeds.TryGetValue(key, out var feed))
            {
                var child = Context.ActorOf(Props.Create(() => new RoomFeedActor(j.TenantId, j.ConversationId, context)), "room-" + ++_counter);
                feed = (child, 0);
            }
            _feeds[key] = (feed.Feed, feed.Joins + 1);
            feed.Feed.Forward(j);
        });
        Receive<Relay.Leave>(l =>
        {
            if (_feeds.TryGetValue(Relay.Key(l.TenantId, l.ConversationId), out var feed)) feed.Feed.Forward(l);
        });
        Receive<Relay.RoomIdle>(idle =>
        {
            // A join forwarded after the feed said it was idle keeps it alive.
            if (!_feeds.TryGetValue(idle.Key, out var feed) || feed.Feed != Sender || feed.Joins != idle.JoinsSeen) return;
            _feeds.Remove(idle.Key);
            Context.Stop(Sender);
        });
        Receive<ClusterEvent.MemberRemoved>(m =>
        {
            var gone = new Relay.NodeGone(m.Member.Address.ToString());
            foreach (var (feed, _) in _feeds.Values) feed.Tell(gone);
        });
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<ClusterEvent.CurrentClusterState>(_ => { });
    }

    protected override void PreStart() =>
        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.MemberRemoved));

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);
}

/// <summary>
/// One conversation's live feed on this node. Subscribes to the conversation's topic and pushes its events to the
/// local connections in the room. Pub-sub is at most once, so the feed remembers the last sequence number it pushed,
/// back-fills any gap from the read model before pushing on, and asks the entity now and then whether it missed the
/// tail. A kick, ban or removal takes the user's connections out of the room before anything else is pushed.
/// </summary>
public sealed class RoomFeedActor : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private const int MaxPresenceChecks = 10;

    private readonly string _tenantId;
    private readonly string _conversationId;
    private readonly RelayContext _context;
    private readonly string _topic;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, ChatConnection> _locals = new(StringComparer.Ordinal);
    // Every live connection in the room that this node knows of, on any node: connection id -> (user, node).
    private readonly Dictionary<string, (string UserId, string Node)> _live = new(StringComparer.Ordinal);
    private readonly HashSet<string> _nodesSeen = new(StringComparer.Ordinal);
    // The room's members as the feed last heard (join views, membership events): whose presence to follow.
    private readonly HashSet<string> _members = new(StringComparer.Ordinal);
    private readonly List<IActorRef> _awaitingSubscription = [];
    // When each user's last relayed typing event was sent (its publisher's clock): at most one per window goes out.
    private readonly Dictionary<string, DateTimeOffset> _typingAt = new(StringComparer.Ordinal);
    // Joins, leaves and presence changes since the last activity tick, pushed together as one roomActivity event.
    private readonly RoomActivity _activity = new();
    // Resuming connections: they get what they missed from the journal while the live events wait here for them.
    private readonly Dictionary<string, CatchUp> _catchingUp = new(StringComparer.Ordinal);
    private bool _subscribed;
    // Sharded room topics: the topic actor that acknowledged the subscription (watched: when it stops, subscribe again).
    private IActorRef? _topicActor;
    private long _lastJournalSeq;
    private int _joins;
    private bool _acceptNextGap;
    private IReadOnlyList<string>? _lastJoinMembers;

    private sealed record TailCheck : INoSerializationVerificationNeeded;
    /// <summary>Sharded room topics: no acknowledgement yet, subscribe again.</summary>
    private sealed record SubscribeAgain : INoSerializationVerificationNeeded;
    private sealed record TailAnswer(object Reply) : INoSerializationVerificationNeeded;
    private sealed record Backfilled(IReadOnlyList<JournaledEvent> Events) : INoSerializationVerificationNeeded;
    /// <summary>Asks whether a user is offline. With <see cref="OfflineSince"/>, only an offline that began after it is news.</summary>
    private sealed record PresenceCheck(string UserId, int Attempt, DateTimeOffset? OfflineSince = null) : INoSerializationVerificationNeeded;
    private sealed record Announce : INoSerializationVerificationNeeded;
    private sealed record ActivityTick : INoSerializationVerificationNeeded;
    private sealed record CaughtUp(string ConnectionId, long After, IReadOnlyList<JournaledEvent>? Events) : INoSerializationVerificationNeeded;

    /// <summary>A resuming connection: the last journal seq it has, and the live events held for it while the journal is read.</summary>
    private sealed class CatchUp(ChatConnection connection, long after)
    {
        public ChatConnection Connection { get; } = connection;
        public long Last { get; set; } = after;
        public bool Reading { get; set; }

        /// <summary>The journal read is done, but it went past the feed (which is back-filling): live events above <see cref="Last"/> go straight out.</summary>
        public bool Ahead { get; set; }
        public List<(long EventSeq, Outbound Message)> Held { get; } = [];
    }
    private sealed record PresenceAnswer(PresenceCheck Check, object Reply) : INoSerializationVerificationNeeded;
    private sealed record MemberCheck(string UserId, object Reply) : INoSerializationVerificationNeeded;

    public RoomFeedActor(string tenantId, string conversationId, RelayContext context)
    {
        _tenantId = tenantId;
        _conversationId = conversationId;
        _context = context;
        _topic = RoomTopics.Of(tenantId, conversationId);
        _nodesSeen.Add(context.NodeAddress);
        Become(Live);
    }

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart()
    {
        SubscribeToTopic();
        Timers.StartPeriodicTimer("tail", new TailCheck(), _context.Settings.RoomTailCheck);
    }

    protected override void PostStop() => _context.Topics.Unsubscribe(_tenantId, _conversationId, Self, _topicActor);

    private void SubscribeToTopic()
    {
        _context.Topics.Subscribe(_tenantId, _conversationId, Self);
        // Through sharding a message can be lost (a shard moving, a region's buffer full): ask again until answered.
        if (_context.Topics.Sharded) Timers.StartSingleTimer("subscribe", new SubscribeAgain(), TopicSubscribeRetry);
    }

    private static readonly TimeSpan TopicSubscribeRetry = TimeSpan.FromSeconds(3);

    private void OnSubscribed()
    {
        if (_subscribed) return;
        _subscribed = true;
        // Other nodes learn of a DistributedPubSub subscription by gossip (a sharded topic knows it at once); after
        // that, tell them who is here.
        Timers.StartSingleTimer("announce", new Announce(), TimeSpan.FromSeconds(2));
        foreach (var waiting in _awaitingSubscription) waiting.Tell(new Relay.Joined());
        _awaitingSubscription.Clear();
        // Read only now: an event persisted before the subscription is in the journal, one after it comes live.
        foreach (var id in _catchingUp.Keys.ToList()) ReadMissed(id);
    }

    private void Live()
    {
        Common();
        Receive<ConversationEventPublished>(OnEvent);
        Receive<TailAnswer>(a =>
        {
            if (a.Reply is ReadAccess access && _lastJournalSeq > 0 && access.JournalSeq > _lastJournalSeq) StartBackfill();
        });
    }

    private void Backfilling()
    {
        Common();
        Receive<ConversationEventPublished>(_ => Stash.Stash());
        Receive<TailAnswer>(_ => { });
        Receive<Backfilled>(OnBackfilled);
        Receive<Status.Failure>(f =>
        {
            _log.Warning(f.Cause, "Back-fill of {0} from the journal failed", _topic);
            _acceptNextGap = true;
            FinishBackfill();
        });
    }

    private void Common()
    {
        // The entity publishes each journal write's events together: each is handled as its own message, in order
        // (so one that has to wait behind a back-fill is stashed on its own).
        Receive<ConversationEventsPublished>(batch =>
        {
            foreach (var published in batch.Events) Self.Tell(published);
        });
        Receive<SubscribeAck>(_ => OnSubscribed());
        Receive<RoomTopicSubscribed>(_ =>
        {
            Timers.Cancel("subscribe");
            if (!Sender.Equals(_topicActor))
            {
                var again = _topicActor is null && _subscribed;
                if (_topicActor is not null) Context.Unwatch(_topicActor);
                _topicActor = Sender;
                Context.Watch(Sender);
                // Subscribed again after the topic stopped: what was published in between is read from the journal.
                if (again) Self.Tell(new TailCheck());
            }
            OnSubscribed();
        });
        Receive<SubscribeAgain>(_ =>
        {
            if (_topicActor is null) SubscribeToTopic();
        });
        Receive<Terminated>(t =>
        {
            // The topic stopped (its shard handed off, its node lost): subscribe to its next incarnation.
            if (!t.ActorRef.Equals(_topicActor)) return;
            _topicActor = null;
            SubscribeToTopic();
        });
        Receive<Relay.Join>(OnJoin);
        Receive<Relay.Leave>(l =>
        {
            if (_locals.Remove(l.ConnectionId, out var c)) c.Rooms.TryRemove(_conversationId, out _);
            if (_catchingUp.Remove(l.ConnectionId, out var up)) up.Connection.Rooms.TryRemove(_conversationId, out _);
            IdleIfEmpty();
        });
        Receive<CaughtUp>(OnCaughtUp);
        Receive<RoomSignal>(OnSignal);
        Receive<Announce>(_ => AnnouncePresent());
        Receive<Relay.NodeGone>(g =>
        {
            _nodesSeen.Remove(g.Address);
            foreach (var (connection, (user, _)) in _live.Where(kv => kv.Value.Node == g.Address).ToList())
                LiveConnectionGone(connection, user);
            // The node may have held connections this feed never heard of (signals are at most once): follow every
            // member not known to be live elsewhere, and report an offline that began about when the node went.
            var since = DateTimeOffset.UtcNow - TimeSpan.FromMinutes(1);
            foreach (var user in _members.Where(u => _live.Values.All(v => v.UserId != u)))
                Timers.StartSingleTimer("presence:" + user, new PresenceCheck(user, 0, since), _context.Settings.PresenceCheckDelay);
        });
        Receive<TailCheck>(_ =>
        {
            var anyone = _locals.Values.FirstOrDefault();
            if (anyone is null) return;
            _context.Gateway.AskAsync(new GetReadAccess(_tenantId, _conversationId, anyone.Caller.UserId))
                .PipeTo(Self, success: r => new TailAnswer(r), failure: e => new TailAnswer(e));
        });
        Receive<PresenceCheck>(c =>
        {
            if (_live.Values.Any(v => v.UserId == c.UserId)) return;
            _context.Gateway.AskAsync(new GetPresence(_tenantId, c.UserId))
                .PipeTo(Self, success: r => new PresenceAnswer(c, r), failure: e => new PresenceAnswer(c, e));
        });
        Receive<PresenceAnswer>(a =>
        {
            if (_live.Values.Any(v => v.UserId == a.Check.UserId)) return;
            if (a.Reply is PresenceView { Status: PresenceStatus.Offline } p)
            {
                if (a.Check.OfflineSince is not { } since || p.LastSeen >= since) QueueActivity(() => _activity.Presence(p.UserId, HubEvents.Presence(p)));
            }
            else if (a.Check.Attempt < MaxPresenceChecks)
                Timers.StartSingleTimer("presence:" + a.Check.UserId, a.Check with { Attempt = a.Check.Attempt + 1 }, TimeSpan.FromSeconds(2));
        });
        Receive<MemberCheck>(m =>
        {
            if (m.Reply is Caas.Actors.Common.Rejection) Evict(m.UserId);
        });
        Receive<ActivityTick>(_ =>
        {
            if (_activity.IsEmpty) return;
            PushAll(HubEvents.RoomActivity, _activity.Take(_conversationId));
        });
    }

    private void OnJoin(Relay.Join j)
    {
        _joins++;
        if (j.ResumeAfter is { } after)
        {
            _catchingUp[j.Connection.Id] = new CatchUp(j.Connection, after);
            if (_subscribed) ReadMissed(j.Connection.Id);
        }
        else _locals[j.Connection.Id] = j.Connection;
        // Joins of one membership share one list (RoomMembers): a room that 1,000 join adds it once, not 1,000 times.
        if (!ReferenceEquals(j.Members, _lastJoinMembers))
        {
            _members.UnionWith(j.Members);
            _lastJoinMembers = j.Members;
        }
        // A new feed starts where the entity was before the join registered; a later join may show that it trails.
        if (_lastJournalSeq == 0) _lastJournalSeq = j.JournalSeq;
        else if (j.JournalSeq > _lastJournalSeq) Self.Tell(new TailAnswer(new ReadAccess(j.LastSeq, default) { JournalSeq = j.JournalSeq }));
        if (_subscribed) Sender.Tell(new Relay.Joined());
        else _awaitingSubscription.Add(Sender);
    }

    /// <summary>
    /// Events are pushed in journal order, each once: one already pushed is skipped, and one after a gap (pub-sub is at
    /// most once) waits while the gap is read from the journal, so every durable event reaches the room with its event_seq.
    /// </summary>
    private void OnEvent(ConversationEventPublished published)
    {
        var seq = published.JournalSeq;
        if (_lastJournalSeq > 0 && seq <= _lastJournalSeq) return;
        if (_lastJournalSeq > 0 && seq > _lastJournalSeq + 1)
        {
            if (!_acceptNextGap)
            {
                Stash.Stash();
                StartBackfill();
                return;
            }
            // The journal could not be read: go on, and make sure a lost kick did not leave a user in the room.
            _acceptNextGap = false;
            VerifyMembers();
        }
        Apply(seq, published.Event);
    }

    private void Apply(long seq, IConversationEvent e)
    {
        _lastJournalSeq = seq;
        if (HubEvents.Of(_conversationId, e) is { } wire) PushAll(wire.Method, new Sequenced(seq, wire.Payload), seq);
        if (e is MemberAdded added) _members.Add(added.UserId);
        if (HubEvents.Removes(e) is { } removed)
        {
            _members.Remove(removed);
            Evict(removed);
        }
        if (e is ConversationDeleted) foreach (var user in _locals.Values.Select(c => c.Caller.UserId).Distinct().ToList()) Evict(user);
    }

    private void StartBackfill()
    {
        Become(Backfilling);
        _context.Journal.AfterAsync(_tenantId, _conversationId, _lastJournalSeq, _context.Settings.MaxResumeEvents, CancellationToken.None)
            .PipeTo(Self, success: events => new Backfilled(events));
    }

    private void OnBackfilled(Backfilled b)
    {
        foreach (var (seq, e) in b.Events)
            if (seq > _lastJournalSeq) Apply(seq, e);
        FinishBackfill();
    }

    private void FinishBackfill()
    {
        Become(Live);
        Stash.UnstashAll();
    }

    private void OnSignal(RoomSignal s)
    {
        switch (s.Kind)
        {
            case RoomSignalKinds.MemberJoined:
            case RoomSignalKinds.Present:
                var wasLive = _live.Values.Any(v => v.UserId == s.UserId);
                _live[s.ConnectionId] = (s.UserId, s.NodeAddress);
                // A node new to this room: tell it who is here (it answers in kind once, as this node is new to it too).
                if (_nodesSeen.Add(s.NodeAddress)) AnnouncePresent();
                if (s.Kind == RoomSignalKinds.Present) return;
                QueueActivity(() =>
                {
                    _activity.Joined(s.UserId);
                    if (!wasLive) _activity.Presence(s.UserId, HubEvents.Online(s.UserId));
                });
                return;
            case RoomSignalKinds.MemberLeft:
                if (_live.ContainsKey(s.ConnectionId)) LiveConnectionGone(s.ConnectionId, s.UserId);
                return;
            case RoomSignalKinds.Typing:
                // Each connection coalesces its own typing; a user with several connections (or nodes) is coalesced here.
                if (_typingAt.TryGetValue(s.UserId, out var last) && s.At - last < _context.Settings.TypingWindow) return;
                _typingAt[s.UserId] = s.At;
                Push(s, except: s.ConnectionId);
                return;
            default:
                Push(s);
                return;
        }
    }

    private void AnnouncePresent()
    {
        foreach (var c in _locals.Values)
            _context.Topics.Publish(_tenantId, _conversationId, new RoomSignal(_tenantId, _conversationId, RoomSignalKinds.Present,
                c.Caller.UserId, c.Id, _context.NodeAddress, null, DateTimeOffset.UtcNow));
    }

    private void LiveConnectionGone(string connectionId, string userId)
    {
        _live.Remove(connectionId);
        if (_live.Values.All(v => v.UserId != userId)) _typingAt.Remove(userId);
        QueueActivity(() => _activity.Left(userId));
        if (_live.Values.All(v => v.UserId != userId))
            Timers.StartSingleTimer("presence:" + userId, new PresenceCheck(userId, 0), _context.Settings.PresenceCheckDelay);
    }

    private void VerifyMembers()
    {
        foreach (var user in _locals.Values.Select(c => c.Caller.UserId).Distinct())
        {
            var u = user;
            _context.Gateway.AskAsync(new GetReadAccess(_tenantId, _conversationId, u)).PipeTo(Self, success: r => new MemberCheck(u, r));
        }
    }

    private void Evict(string userId)
    {
        foreach (var c in _locals.Values.Where(c => c.Caller.UserId == userId).ToList())
        {
            _locals.Remove(c.Id);
            c.Rooms.TryRemove(_conversationId, out _);
        }
        foreach (var up in _catchingUp.Values.Where(u => u.Connection.Caller.UserId == userId).ToList())
        {
            _catchingUp.Remove(up.Connection.Id);
            up.Connection.Rooms.TryRemove(_conversationId, out _);
        }
        IdleIfEmpty();
    }

    private void IdleIfEmpty()
    {
        if (_locals.Count == 0 && _catchingUp.Count == 0) Context.Parent.Tell(new Relay.RoomIdle(_topic, _joins));
    }

    private void ReadMissed(string connectionId)
    {
        if (!_catchingUp.TryGetValue(connectionId, out var up) || up.Reading) return;
        up.Reading = true;
        var after = up.Last;
        _context.Journal.AfterAsync(_tenantId, _conversationId, after, _context.Settings.MaxResumeEvents + 1, CancellationToken.None)
            .PipeTo(Self, success: events => new CaughtUp(connectionId, after, events), failure: _ => new CaughtUp(connectionId, after, null));
    }

    /// <summary>
    /// The journal's events after the connection's point go out first, then the live events held meanwhile, skipping
    /// those the read already had (by event_seq). Then the connection is live.
    /// </summary>
    private void OnCaughtUp(CaughtUp c)
    {
        if (!_catchingUp.TryGetValue(c.ConnectionId, out var up)) return;
        up.Reading = false;
        if (c.Events is null || c.Events.Count > _context.Settings.MaxResumeEvents)
        {
            _log.Warning("Room {0}: resume of {1} after {2} failed or went too far", _topic, c.ConnectionId, c.After);
            _catchingUp.Remove(c.ConnectionId);
            up.Connection.Rooms.TryRemove(_conversationId, out _);
            up.Connection.Close("resume_failed: reconnect and resume again, or reload the room with GetHistory");
            IdleIfEmpty();
            return;
        }
        foreach (var (seq, e) in c.Events)
        {
            if (seq <= up.Last) continue;
            up.Last = seq;
            if (HubEvents.Of(_conversationId, e) is { } wire)
                up.Connection.Push(ChatConnection.Message(wire.Method, new Sequenced(seq, wire.Payload)), _conversationId, seq);
        }
        // The feed had pushed everything up to some F when the connection came; everything after F is held. The read
        // began after that, so it has every event up to F at least: the held events continue it with no gap.
        foreach (var (seq, message) in up.Held)
        {
            if (seq <= up.Last) continue;
            up.Last = seq;
            up.Connection.Push(message, _conversationId, seq);
        }
        up.Held.Clear();
        // The read may have gone past the feed (a back-fill of its own in flight): until the feed reaches the
        // connection's point, the feed's events at or below it are not sent again (see PushAll).
        if (up.Last > _lastJournalSeq)
        {
            up.Ahead = true;
            return;
        }
        _catchingUp.Remove(c.ConnectionId);
        _locals[c.ConnectionId] = up.Connection;
    }

    /// <summary>
    /// Joins, leaves and presence go out once per tick per room, as one event every local connection shares: a room
    /// that N members join costs about N / (joins per tick) pushes per connection, not N.
    /// </summary>
    private void QueueActivity(Action add)
    {
        if (_activity.IsEmpty) Timers.StartSingleTimer("activity", new ActivityTick(), _context.Settings.RoomActivityTick);
        add();
    }

    private void Push(RoomSignal s, string? except = null)
    {
        if (HubEvents.Of(s) is not { } wire) return;
        var message = ChatConnection.Message(wire.Method, wire.Payload);
        foreach (var c in _locals.Values)
            if (c.Id != except) c.Push(message);
    }

    private void PushAll(string method, object payload, long? eventSeq = null)
    {
        if (_locals.Count == 0 && _catchingUp.Count == 0) return;
        // Serialized once per protocol, however many connections get it.
        var message = ChatConnection.Message(method, payload);
        foreach (var c in _locals.Values)
        {
            if (eventSeq is { } tracked && !message.Ephemeral) c.Push(message, _conversationId, tracked);
            else c.Push(message);
        }
        List<CatchUp>? caughtUp = null;
        foreach (var up in _catchingUp.Values)
        {
            if (message.Ephemeral) up.Connection.Push(message);
            else if (!up.Ahead) up.Held.Add((eventSeq ?? 0, message));
            else if (eventSeq is not { } seq || seq > up.Last)
            {
                if (eventSeq is { } pushed)
                {
                    up.Connection.Push(message, _conversationId, pushed);
                    up.Last = pushed;
                }
                else up.Connection.Push(message);
            }
            if (up.Ahead && eventSeq >= up.Last) (caughtUp ??= []).Add(up);
        }
        foreach (var up in caughtUp ?? [])
        {
            _catchingUp.Remove(up.Connection.Id);
            _locals[up.Connection.Id] = up.Connection;
        }
    }
}

/// <summary>Points in JoinRoom between which a removal can race the join (see <see cref="RoomRelay.JoinProbe"/>).</summary>
public enum JoinStage
{
    /// <summary>Membership was checked; the connection is not yet registered with the room's feed.</summary>
    Checked,

    /// <summary>The feed holds the connection; membership is about to be checked again.</summary>
    Registered,
}

/// <summary>The node's relay actor, started once the actor system is up.</summary>
public sealed class RoomRelay(ActorSystem system, ClusterGateway gateway, Microsoft.Extensions.Options.IOptions<HubSettings> settings,
    ChatConnections connections, Microsoft.Extensions.Logging.ILogger<DeliveryTracker> deliveryLog) : IDisposable
{
    private readonly Lazy<(IActorRef Relay, RoomTopicRouter Topics, string Node)> _started = new(() =>
    {
        var topics = RoomTopicRouter.Get(system);
        var node = Cluster.Get(system).SelfAddress.ToString();
        var journal = new ConversationJournal(system);
        var relay = system.ActorOf(Props.Create(() => new RoomRelayActor(new RelayContext(gateway, settings.Value, topics, node, journal))), "room-relay");
        return (relay, topics, node);
    });

    private readonly Lazy<DeliveryTracker> _deliveries = new(() =>
    {
        var topics = RoomTopicRouter.Get(system);
        return new DeliveryTracker(gateway, s => topics.Publish(s.TenantId, s.ConversationId, s),
            Cluster.Get(system).SelfAddress.ToString(), settings.Value.WithEnvironment(), connections, deliveryLog);
    });

    /// <summary>This node's coalescer of delivered acknowledgements (started on first use).</summary>
    public DeliveryTracker Deliveries => _deliveries.Value;

    public void Dispose()
    {
        if (_deliveries.IsValueCreated) _deliveries.Value.Dispose();
    }

    public IActorRef Actor => _started.Value.Relay;
    /// <summary>Where the rooms' live events and signals are published (DistributedPubSub or sharded room topics).</summary>
    public RoomTopicRouter Topics => _started.Value.Topics;
    public string NodeAddress => _started.Value.Node;

    public void Start() => _ = _started.Value;

    /// <summary>
    /// Awaited by JoinRoom at each <see cref="JoinStage"/>; null (the default) costs nothing. Tests set it to hold a
    /// join at a stage while a removal goes through, so the race is driven in a chosen order rather than hoped for.
    /// </summary>
    public Func<JoinStage, ChatConnection, string, Task>? JoinProbe { get; set; }

    internal Task Probe(JoinStage stage, ChatConnection connection, string conversationId) =>
        JoinProbe?.Invoke(stage, connection, conversationId) ?? Task.CompletedTask;

    public void Publish(RoomSignal signal) => Topics.Publish(signal.TenantId, signal.ConversationId, signal);
}
