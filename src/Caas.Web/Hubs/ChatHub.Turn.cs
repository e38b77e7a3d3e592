using Caas.Web.Turn;

namespace Caas.Web.Hubs;

public sealed partial class ChatHub
{
    /// <summary>
    /// The ICE servers for <c>RTCPeerConnection</c>, as <c>GET /v1/webrtc/ice-servers</c> answers them:
    /// <c>{success: true, ice_servers: [{urls, username, credential}], ttl_seconds, warning}</c>. The list comes from DI
    /// (a hub method's service parameter), so the hub's constructor is untouched.
    /// </summary>
    public Task<object> GetIceServers(TurnServers turn) => Guard((_, caller) =>
    {
        var list = turn.IceServersFor(caller.UserId, DateTimeOffset.UtcNow);
        return Task.FromResult<object>(new { success = true, ice_servers = list.IceServers, ttl_seconds = list.TtlSeconds, warning = list.Warning });
    });
}
