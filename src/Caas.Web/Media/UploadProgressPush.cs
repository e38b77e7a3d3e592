using Akka.Actor;
using Caas.Actors.Calls;
using Caas.Streams.Media;
using Caas.Web.Hubs;

namespace Caas.Web.Media;

/// <summary>
/// The hub's <c>uploadProgress</c> event: after each accepted chunk, <c>{upload_id, index, received_bytes, size,
/// chunks_received}</c> goes to every connection of the uploader, on whichever node it is. It rides the cluster-wide
/// per-user notice channel the calls use (<see cref="CallNoticeDelivery"/>: one DistributedPubSub topic, each node
/// pushes to its own connections of the recipients), so no connection bookkeeping is added. Best effort: a client
/// that misses one still has the chunk's HTTP answer and <c>GET /v1/media/upload/{id}/progress</c>.
/// </summary>
public sealed class UploadProgressPush(ActorSystem system)
{
    public const string Event = "uploadProgress";

    public void Push(string tenantId, string userId, UploadSnapshot snapshot, int index) =>
        CallNoticeDelivery.Publish(system, CallNotices.Of(tenantId, [userId], Event, new
        {
            upload_id = snapshot.Session.UploadId,
            index,
            received_bytes = snapshot.ReceivedBytes,
            size = snapshot.Session.Size,
            chunks_received = snapshot.Chunks.Count,
        }));
}
