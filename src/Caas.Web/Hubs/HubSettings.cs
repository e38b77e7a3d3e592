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

    /// <summary>
    /// Server-to-client messages queued per connection. Ephemeral events (see <see cref="HubEvents.IsEphemeral"/>) are
    /// dropped first; a client is closed only when a durable event finds the queue full of durable ones.
    /// </summary>
    public int OutboundBufferMessages { get; init; } = 1_000;

    /// <summary>Ephemeral events (typing, presence, receipts) queued at most per connection; beyond it they are dropped.</summary>
    public int OutboundEphemeralMessages { get; init; } = 100;

    /// <summary>
    /// Bytes queued per connection (in its protocol), beside <see cref="OutboundBufferMessages"/>: ephemeral events are
    /// dropped first; a durable event that still does not fit closes the connection as a slow consumer.
    /// </summary>
    public long OutboundBufferBytes { get; init; } = 512 * 1024;

    /// <summary>Bytes of ephemeral events queued at most per connection; beyond it they are dropped.</summary>
    public long OutboundEphemeralBytes { get; init; } = 64 * 1024;

    /// <summary>How long a room feed gathers joins, leaves and presence changes before it pushes them as one <c>roomActivity</c>.</summary>
    public TimeSpan RoomActivityTick { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Most events one room's <c>Resume</c> replays from the journal; a client further behind joins live with
    /// <c>resumed: false</c> and reloads the room with GetHistory.
    /// </summary>
    public int MaxResumeEvents { get; init; } = 10_000;

    /// <summary>How often each node saves the delivered markers that moved and sends their receipts (one per user and conversation).</summary>
    public TimeSpan DeliveredFlushInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Tracked delivery on a live socket: a connection that acknowledges a room's events (<c>MarkDelivered {event_seq}</c>)
    /// gets the ones it has not acknowledged within this again (<c>CAAS_DELIVERY_TIMEOUT</c>, seconds)…
    /// </summary>
    public TimeSpan DeliveryTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>…up to this many times (<c>CAAS_DELIVERY_RETRIES</c>); then it is closed with the reason <c>stale</c> and resumes.</summary>
    public int DeliveryRetries { get; init; } = 3;

    /// <summary>The settings with <c>CAAS_DELIVERY_TIMEOUT</c> and <c>CAAS_DELIVERY_RETRIES</c> applied when set.</summary>
    public HubSettings WithEnvironment() => this with
    {
        DeliveryTimeout = double.TryParse(Environment.GetEnvironmentVariable("CAAS_DELIVERY_TIMEOUT"), System.Globalization.NumberStyles.Float,
            System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds > 0 ? TimeSpan.FromSeconds(seconds) : DeliveryTimeout,
        DeliveryRetries = int.TryParse(Environment.GetEnvironmentVariable("CAAS_DELIVERY_RETRIES"), System.Globalization.CultureInfo.InvariantCulture,
            out var retries) && retries >= 0 ? retries : DeliveryRetries,
    };

    /// <summary>Rooms one <c>Resume</c> call may name.</summary>
    public int MaxResumeRooms { get; init; } = 100;

    /// <summary>At most one typing event per user per conversation is relayed in this window.</summary>
    public TimeSpan TypingWindow { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Per-connection call limits by hub method name (token buckets); a method not listed gets <see cref="DefaultLimit"/>.
    /// Over its limit a call answers <c>rate_limited</c> with <c>retry_after_ms</c>. GetHistory also counts against the
    /// client's REST budget (<c>Caas:RequestLimits</c>).
    /// </summary>
    public Dictionary<string, HubMethodLimit> Limits { get; init; } = new(StringComparer.Ordinal)
    {
        ["JoinRoom"] = new() { PermitsPerSecond = 5, Burst = 20 },
        ["LeaveRoom"] = new() { PermitsPerSecond = 5, Burst = 20 },
        // The per-user message rate (UserSession) still applies; this only bounds the calls.
        ["SendMessage"] = new() { PermitsPerSecond = 20, Burst = 50 },
        ["EditMessage"] = new() { PermitsPerSecond = 5, Burst = 20 },
        ["DeleteMessage"] = new() { PermitsPerSecond = 5, Burst = 20 },
        ["React"] = new() { PermitsPerSecond = 5, Burst = 20 },
        ["Unreact"] = new() { PermitsPerSecond = 5, Burst = 20 },
        ["Typing"] = new() { PermitsPerSecond = 2, Burst = 5 },
        ["MarkRead"] = new() { PermitsPerSecond = 20, Burst = 50 },
        ["MarkDelivered"] = new() { PermitsPerSecond = 20, Burst = 50 },
        ["GetHistory"] = new() { PermitsPerSecond = 5, Burst = 10 },
        ["GetPresence"] = new() { PermitsPerSecond = 5, Burst = 20 },
        // A browser reports getStats every few seconds; more is noise.
        ["ReportCallQuality"] = new() { PermitsPerSecond = 1, Burst = 5 },
    };

    public HubMethodLimit DefaultLimit { get; init; } = new();

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

/// <summary>One hub method's token bucket: refilled at <see cref="PermitsPerSecond"/>, holding at most <see cref="Burst"/>.</summary>
public sealed record HubMethodLimit
{
    public int PermitsPerSecond { get; init; } = 5;
    public int Burst { get; init; } = 20;
}
