using System.Text.Json;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Caas.Actors.Calls;

namespace Caas.Web.Hubs;

/// <summary>
/// This node's end of the per-user call channel: it hears every <see cref="CallNotice"/> of the cluster (one topic)
/// and pushes each to this node's connections of its recipients, in or out of the conversation's room. One topic for
/// all users keeps connection bookkeeping out of the hub; calls are few, so every node hearing every notice is cheap.
/// </summary>
public sealed class CallNoticeDelivery : ReceiveActor
{
    public CallNoticeDelivery(ChatConnections connections)
    {
        Receive<SubscribeAck>(_ => { });
        Receive<CallNotice>(notice =>
        {
            using var payload = JsonDocument.Parse(notice.PayloadJson);
            foreach (var user in notice.Recipients)
                foreach (var connection in connections.OfUser(notice.TenantId, user))
                    if (connection.Id != notice.ExceptConnectionId)
                        connection.Push(notice.Event, payload.RootElement.Clone());
        });
    }

    protected override void PreStart() =>
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(CallNotices.Topic, Self));

    public static Props PropsFor(ChatConnections connections) => Props.Create(() => new CallNoticeDelivery(connections));

    /// <summary>Publishes a notice cluster-wide (signals go from the hub straight to the channel, not through the entity).</summary>
    public static void Publish(ActorSystem system, CallNotice notice) =>
        DistributedPubSub.Get(system).Mediator.Tell(new Publish(CallNotices.Topic, notice));
}
