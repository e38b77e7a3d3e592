using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Configuration;
using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Actors.Rooms;

/// <summary>
/// How a room's live events reach the web nodes' room feeds (<c>caas.rooms.topics</c>, env <c>CAAS_ROOM_TOPICS</c>; every
/// node of a cluster must use the same):
/// <list type="bullet">
/// <item><c>pubsub</c> (default): one DistributedPubSub topic per conversation. Every node's mediator learns every
/// topic's subscribers by gossip; a publish goes from the publisher's node to each subscribed node once.</item>
/// <item><c>sharded</c>: one <see cref="RoomTopicActor"/> per conversation, a non-persistent entity of the conversation
/// shard region placed in the conversation's own shard (so on the node of the conversation entity, which publishes
/// to it with a local message). It keeps the subscribed feeds and sends each one copy; no registry is gossiped.
/// Feeds watch it and subscribe again when it stops (hand-off, a node's loss), and read any gap from the journal.</item>
/// </list>
/// </summary>
public sealed class RoomTopicRouter : IExtension
{
    private readonly ActorSystem _system;
    private IActorRef? _mediator;
    private IActorRef? _region;

    public RoomTopicRouter(ActorSystem system)
    {
        _system = system;
        Sharded = IsSharded(system.Settings.Config);
    }

    public static RoomTopicRouter Get(ActorSystem system) => system.WithExtension<RoomTopicRouter, RoomTopicRouterProvider>();

    public static bool IsSharded(Config config)
    {
        var mode = config.GetString("caas.rooms.topics", "pubsub")?.Trim().ToLowerInvariant() ?? "pubsub";
        return mode switch
        {
            "sharded" => true,
            "pubsub" or "" => false,
            _ => throw new ConfigurationException($"caas.rooms.topics (CAAS_ROOM_TOPICS) must be pubsub or sharded, not '{mode}'."),
        };
    }

    /// <summary>True: sharded room topics; false: DistributedPubSub.</summary>
    public bool Sharded { get; }

    private IActorRef Mediator => _mediator ??= DistributedPubSub.Get(_system).Mediator;
    private IActorRef Region => _region ??= ClusterSharding.Get(_system).ShardRegion(ConversationSharding.TypeName);

    /// <summary>Publishes a room's events (<see cref="ConversationEventsPublished"/>) or a <see cref="RoomSignal"/>.</summary>
    public void Publish(string tenantId, string conversationId, object message)
    {
        if (Sharded) Region.Tell(message, ActorRefs.NoSender);
        else Mediator.Tell(new Publish(RoomTopics.Of(tenantId, conversationId), message));
    }

    /// <summary>
    /// Subscribes a feed. Its acknowledgement is DistributedPubSub's <see cref="SubscribeAck"/> or, sharded,
    /// <see cref="RoomTopicSubscribed"/> from the topic actor (which the feed should watch).
    /// </summary>
    public void Subscribe(string tenantId, string conversationId, IActorRef subscriber)
    {
        if (Sharded) Region.Tell(new RoomTopicSubscribe(tenantId, conversationId), subscriber);
        else Mediator.Tell(new Subscribe(RoomTopics.Of(tenantId, conversationId), subscriber));
    }

    /// <summary>Unsubscribes a feed (sharded: <paramref name="topic"/> is the topic actor that acknowledged it, if any).</summary>
    public void Unsubscribe(string tenantId, string conversationId, IActorRef subscriber, IActorRef? topic)
    {
        if (!Sharded) Mediator.Tell(new Unsubscribe(RoomTopics.Of(tenantId, conversationId), subscriber));
        else topic?.Tell(new RoomTopicUnsubscribe(tenantId, conversationId), subscriber);
    }
}

public sealed class RoomTopicRouterProvider : ExtensionIdProvider<RoomTopicRouter>
{
    public override RoomTopicRouter CreateExtension(ExtendedActorSystem system) => new(system);
}

/// <summary>A feed subscribes to a sharded room topic (the sender is the subscriber).</summary>
public sealed record RoomTopicSubscribe(string TenantId, string ConversationId) : ICaasMessage;

/// <summary>A feed leaves a sharded room topic (the sender is the subscriber).</summary>
public sealed record RoomTopicUnsubscribe(string TenantId, string ConversationId) : ICaasMessage;

/// <summary>The topic actor took the subscription; the sender is the topic actor.</summary>
public sealed record RoomTopicSubscribed(string TenantId, string ConversationId) : ICaasMessage;

/// <summary>Asks a sharded room topic how many feeds it sends to (tests and diagnostics; no route exposes it).</summary>
public sealed record GetRoomTopic(string TenantId, string ConversationId) : ICaasMessage;

public sealed record RoomTopicView(string TenantId, string ConversationId, int Subscribers) : ICaasMessage;

/// <summary>Entity ids of the room topics inside the conversation shard region.</summary>
public static class RoomTopicIds
{
    /// <summary>Cannot begin a conversation's entity id (ids are <c>[A-Za-z0-9_.@-]</c>, see <see cref="Ids"/>).</summary>
    public const string Prefix = "~topic~";

    public static string Of(string tenantId, string conversationId) => Prefix + Ids.EntityId(tenantId, conversationId);

    public static bool IsTopic(string entityId) => entityId.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>The conversation entity's id for a topic's id (the shard is chosen from it).</summary>
    public static string Conversation(string entityId) => IsTopic(entityId) ? entityId[Prefix.Length..] : entityId;

    /// <summary>The topic entity a room-topic message goes to; null for any other message.</summary>
    public static string? For(object message) => message switch
    {
        ConversationEventsPublished { Events.Length: > 0 } p => Of(p.Events[0].TenantId, p.Events[0].ConversationId),
        ConversationEventPublished p => Of(p.TenantId, p.ConversationId),
        RoomSignal s => Of(s.TenantId, s.ConversationId),
        RoomTopicSubscribe s => Of(s.TenantId, s.ConversationId),
        RoomTopicUnsubscribe u => Of(u.TenantId, u.ConversationId),
        GetRoomTopic q => Of(q.TenantId, q.ConversationId),
        _ => null,
    };
}

/// <summary>
/// One conversation's sharded room topic: the feeds subscribed to it (watched, so a stopped feed leaves) and one copy
/// of every published message to each. Not persistent: when it stops (hand-off, its node lost), the feeds see it
/// terminate and subscribe again. With no subscriber it passivates after <see cref="EntitySettings.PassivateAfter"/>.
/// </summary>
public sealed class RoomTopicActor : ReceiveActor
{
    private readonly HashSet<IActorRef> _subscribers = [];
    private readonly TimeSpan _passivateAfter;

    public static Props PropsFor(EntitySettings settings) => Props.Create(() => new RoomTopicActor(settings.PassivateAfter));

    public RoomTopicActor(TimeSpan passivateAfter)
    {
        _passivateAfter = passivateAfter;
        Receive<ConversationEventsPublished>(Forward);
        Receive<ConversationEventPublished>(Forward);
        Receive<RoomSignal>(Forward);
        Receive<RoomTopicSubscribe>(s =>
        {
            if (Sender.IsNobody()) return;
            if (_subscribers.Add(Sender)) Context.Watch(Sender);
            Sender.Tell(new RoomTopicSubscribed(s.TenantId, s.ConversationId));
            IdleWhenAlone();
        });
        Receive<RoomTopicUnsubscribe>(_ => Remove(Sender));
        Receive<Terminated>(t => Remove(t.ActorRef));
        Receive<GetRoomTopic>(q => Sender.Tell(new RoomTopicView(q.TenantId, q.ConversationId, _subscribers.Count)));
        Receive<ReceiveTimeout>(_ =>
        {
            if (_subscribers.Count == 0) Context.Parent.Tell(new Passivate(StopEntity.Instance));
        });
        Receive<StopEntity>(_ => Context.Stop(Self));
    }

    protected override void PreStart() => IdleWhenAlone();

    private void Forward(object message)
    {
        foreach (var subscriber in _subscribers) subscriber.Tell(message, ActorRefs.NoSender);
    }

    private void Remove(IActorRef subscriber)
    {
        if (_subscribers.Remove(subscriber)) Context.Unwatch(subscriber);
        IdleWhenAlone();
    }

    /// <summary>Only a topic nobody listens to may passivate; one with subscribers lives as long as its shard.</summary>
    private void IdleWhenAlone() => Context.SetReceiveTimeout(_subscribers.Count == 0 ? _passivateAfter : null);
}
