namespace Caas.Web.Hubs;

/// <summary>The chat hub's limits and timings (appsettings <c>Caas:Hub</c>).</summary>
public sealed record HubSettings
{
    /// <summary>A message not confirmed within this answers <c>persist_timeout</c>; the client retries with the same message_id.</summary>
    public TimeSpan PersistTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The largest hub frame a client may send (SignalR's MaximumReceiveMessageSize); over it the connection ends.</summary>
    public long MaxMessageBytes { get; init; } = 32 * 1024;

    /// <summary>Invocations one client may have in flight, so a slow persist never blocks Typing or MarkRead.</summary>
    public int MaxParallelInvocations { get; init; } = 8;

    /// <summary>Server-to-client messages queued per connection; a client that lets more pile up is closed.</summary>
    public int OutboundBufferMessages { get; init; } = 1_000;

    /// <summary>How often a room feed asks the entity for its last sequence number, to back-fill what pub-sub lost.</summary>
    public TimeSpan RoomTailCheck { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long after a user's last connection in a room is gone the feed asks whether the user is offline.</summary>
    public TimeSpan PresenceCheckDelay { get; init; } = TimeSpan.FromSeconds(6);

    /// <summary>A socket that has not sent the SignalR handshake by then is closed.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(15);

    public TimeSpan ClientTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Most messages one GetHistory call answers.</summary>
    public int MaxHistoryPage { get; init; } = 200;
}
