using System.Buffers;
using System.Collections.Concurrent;
using Caas.Web.Auth;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.Logging;

namespace Caas.Web.Hubs;

/// <summary>A server-to-client event, serialized once however many connections get it.</summary>
public sealed record Outbound(SerializedHubMessage Message, bool Ephemeral);

/// <summary>
/// One live socket: who it is, the rooms it has joined, and its bounded outbound queue. Everything the server pushes
/// goes through the queue, written by one pump. When the client falls behind it first loses ephemeral events (typing,
/// presence, receipts: see <see cref="HubEvents.IsEphemeral"/>), queued ones included; it is closed only when a durable
/// event finds the queue full of durable ones, so a slow consumer never grows the node's memory. The queue is bounded
/// in messages and in bytes (each event's bytes in this connection's protocol: the serialization is shared with every
/// other connection of that protocol, so measuring it costs nothing more).
/// </summary>
public sealed class ChatConnection
{
    private readonly HubConnectionContext _context;
    private readonly ILogger _log;
    private readonly int _capacity;
    private readonly int _ephemeralCapacity;
    private readonly long _capacityBytes;
    private readonly long _ephemeralCapacityBytes;
    private readonly object _gate = new();
    // Arrival order is kept; the ephemeral entries are also listed oldest first, so a durable event can push one out.
    private readonly LinkedList<(Outbound Item, bool CloseAfter)> _queue = new();
    private readonly Queue<LinkedListNode<(Outbound Item, bool CloseAfter)>> _ephemeral = new();
    // Made on the first Typing: most connections never type, and an idle connection should cost little.
    private ConcurrentDictionary<string, DateTimeOffset>? _typingRelayed;
    private bool _completed;
    // True while a pump writes the queue out (guarded by _gate). The pump runs only while there is something to
    // write, so an idle connection holds no pump, no doorbell and no wait on its abort token.
    private bool _pumping;
    // Tracked delivery: the rooms whose durable events this connection acknowledges, opted in by its first
    // MarkDelivered {event_seq} in the room. Guarded by _gate.
    private readonly Dictionary<string, TrackedRoom> _tracked = new(StringComparer.Ordinal);
    private long _queuedBytes;
    private long _queuedEphemeralBytes;
    private long _ephemeralDropped;
    private int _closing;

    public ChatConnection(HubConnectionContext context, Caller caller, int capacity, int ephemeralCapacity, ILogger log,
        long capacityBytes = long.MaxValue, long ephemeralCapacityBytes = long.MaxValue)
    {
        _capacityBytes = Math.Max(1, capacityBytes);
        _ephemeralCapacityBytes = Math.Clamp(ephemeralCapacityBytes, 0, _capacityBytes);
        _context = context;
        _log = log;
        _capacity = Math.Max(1, capacity);
        _ephemeralCapacity = Math.Clamp(ephemeralCapacity, 0, _capacity);
        Caller = caller;
    }

    public string Id => _context.ConnectionId;
    public Caller Caller { get; }

    /// <summary>Conversation ids of the rooms this connection is in.</summary>
    public ConcurrentDictionary<string, byte> Rooms { get; } = new(concurrencyLevel: 1, capacity: 1, StringComparer.Ordinal);

    /// <summary>Events waiting to be written to the socket.</summary>
    public int Queued
    {
        get { lock (_gate) return _queue.Count; }
    }

    /// <summary>Bytes waiting to be written to the socket (in this connection's protocol).</summary>
    public long QueuedBytes
    {
        get { lock (_gate) return _queuedBytes; }
    }

    /// <summary>Ephemeral events among <see cref="Queued"/>.</summary>
    public int QueuedEphemeral
    {
        get { lock (_gate) return _ephemeral.Count; }
    }

    /// <summary>Ephemeral events this connection lost because it did not keep up.</summary>
    public long EphemeralDropped => Interlocked.Read(ref _ephemeralDropped);

    /// <summary>True once the server has decided to close the connection (slow consumer, expiry).</summary>
    public bool Closing => Volatile.Read(ref _closing) == 1;

    public static Outbound Message(string method, object payload) =>
        new(new SerializedHubMessage(new InvocationMessage(method, [payload])), HubEvents.IsEphemeral(method));

    public bool Push(string method, object payload) => Push(Message(method, payload));

    /// <summary>Queues an event; false if it was dropped (ephemeral, queue busy) or the connection is being closed.</summary>
    public bool Push(Outbound message)
    {
        if (Enqueue(message, closeAfter: false)) return true;
        if (!message.Ephemeral && !Closing) Close("slow_consumer: the client did not keep up with its messages");
        return false;
    }

    /// <summary>Relays the caller's typing in a room at most once per window; false when this one is coalesced away.</summary>
    public bool TypingDue(string conversationId, DateTimeOffset now, TimeSpan window)
    {
        var relayed = _typingRelayed ?? Interlocked.CompareExchange(ref _typingRelayed, new(StringComparer.Ordinal), null) ?? _typingRelayed;
        var last = relayed.GetValueOrDefault(conversationId);
        if (now - last < window) return false;
        relayed[conversationId] = now;
        return true;
    }

    /// <summary>Forgets per-room state when the connection leaves a room.</summary>
    public void LeftRoom(string conversationId)
    {
        _typingRelayed?.TryRemove(conversationId, out _);
        lock (_gate) _tracked.Remove(conversationId);
    }

    private sealed class TrackedRoom
    {
        public long Acknowledged;
        // The highest event_seq known to have reached this connection's queue (or acknowledged after a check).
        public long Pushed;
        public readonly List<(long EventSeq, Outbound Message)> Unacknowledged = [];
        public DateTimeOffset Since;
        public int Attempts;
    }

    /// <summary>The client has every event of the room up to <paramref name="eventSeq"/>; from now on the room's durable events are tracked.</summary>
    public void Acknowledge(string conversationId, long eventSeq, DateTimeOffset now)
    {
        lock (_gate)
        {
            if (!_tracked.TryGetValue(conversationId, out var room)) _tracked[conversationId] = room = new TrackedRoom { Since = now };
            room.Pushed = Math.Max(room.Pushed, eventSeq);
            if (eventSeq <= room.Acknowledged) return;
            room.Acknowledged = eventSeq;
            room.Unacknowledged.RemoveAll(u => u.EventSeq <= eventSeq);
            room.Attempts = 0;
            room.Since = now;
        }
    }

    /// <summary>Queues a room's durable event; tracked until acknowledged when the client acknowledges the room's events.</summary>
    public bool Push(Outbound message, string conversationId, long eventSeq)
    {
        lock (_gate)
        {
            if (_tracked.TryGetValue(conversationId, out var room)) room.Pushed = Math.Max(room.Pushed, eventSeq);
            if (room is not null && eventSeq > room.Acknowledged)
            {
                if (room.Unacknowledged.Count == 0) room.Since = DateTimeOffset.UtcNow;
                room.Unacknowledged.Add((eventSeq, message));
            }
        }
        return Push(message);
    }

    /// <summary>
    /// True when this connection acknowledges a room it tracks up to an event the hub itself queued to it (or one it
    /// acknowledged before): the client can only have what it was sent, so the hub need not ask the conversation
    /// whether the event exists and the user may read it. Leaving or losing the room forgets it.
    /// </summary>
    public bool WasSent(string conversationId, long eventSeq)
    {
        lock (_gate) return _tracked.TryGetValue(conversationId, out var room) && eventSeq <= room.Pushed;
    }

    /// <summary>
    /// Sends again a tracked room's events not acknowledged within <paramref name="timeout"/> (the client drops
    /// duplicates by event_seq), at most <paramref name="retries"/> times; then closes the connection as <c>stale</c>.
    /// </summary>
    public void CheckDelivery(DateTimeOffset now, TimeSpan timeout, int retries)
    {
        List<Outbound>? again = null;
        var stale = false;
        lock (_gate)
        {
            foreach (var room in _tracked.Values)
            {
                if (room.Unacknowledged.Count == 0 || now - room.Since < timeout) continue;
                if (room.Attempts >= retries)
                {
                    stale = true;
                    break;
                }
                room.Attempts++;
                room.Since = now;
                (again ??= []).AddRange(room.Unacknowledged.Select(u => u.Message));
            }
        }
        if (stale) Close("stale: events were not acknowledged; resume from the last event_seq you have");
        else foreach (var message in again ?? []) Push(message);
    }

    /// <summary>Sends one last event after everything queued, then closes the connection (<paramref name="reasonCode"/> for the metrics).</summary>
    public void PushThenClose(string method, object payload, string reasonCode)
    {
        CloseReason ??= reasonCode;
        if (!Enqueue(Message(method, payload) with { Ephemeral = false }, closeAfter: true)) Close("slow_consumer");
    }

    /// <summary>Why the server closed the connection (the code of its reason); null while it has not.</summary>
    public string? CloseReason { get; private set; }

    /// <summary>Closes the connection with a reason the client sees in its close event.</summary>
    public void Close(string reason)
    {
        if (Interlocked.Exchange(ref _closing, 1) == 1) return;
        CloseReason ??= HubMetrics.ReasonCode(reason);
        _log.LogWarning("Closing hub connection {ConnectionId} of {UserId}: {Reason}", Id, Caller.UserId, reason);
        Complete();
        // The reason goes out if the socket takes it within a second; the connection is aborted either way.
        _ = _context.WriteAsync(new CloseMessage(reason, allowReconnect: false)).AsTask()
            .WaitAsync(TimeSpan.FromSeconds(1))
            .ContinueWith(_ => _context.Abort(), TaskScheduler.Default);
    }

    public void Complete()
    {
        lock (_gate) _completed = true;
    }

    private bool Enqueue(Outbound item, bool closeAfter)
    {
        // Serialized here (once per protocol, shared by every connection of it) so the queue can count its bytes.
        var size = SizeOf(item);
        lock (_gate)
        {
            if (_completed) return false;
            if (item.Ephemeral)
            {
                if (_ephemeral.Count >= _ephemeralCapacity || _queue.Count >= _capacity
                    || _queuedEphemeralBytes + size > _ephemeralCapacityBytes || _queuedBytes + size > _capacityBytes)
                {
                    _ephemeralDropped++;
                    return false;
                }
                _ephemeral.Enqueue(_queue.AddLast((item, false)));
                _queuedEphemeralBytes += size;
            }
            else
            {
                while (_queue.Count >= _capacity || (_queuedBytes + size > _capacityBytes && _queue.Count > 0))
                {
                    if (_ephemeral.Count == 0) return false;
                    var dropped = _ephemeral.Dequeue();
                    _queue.Remove(dropped);
                    var droppedSize = SizeOf(dropped.Value.Item);
                    _queuedBytes -= droppedSize;
                    _queuedEphemeralBytes -= droppedSize;
                    _ephemeralDropped++;
                }
                _queue.AddLast((item, closeAfter));
                if (closeAfter) _completed = true;
            }
            _queuedBytes += size;
            if (_pumping) return true;
            _pumping = true;
        }
        _ = PumpAsync();
        return true;
    }

    /// <summary>Most bytes the pump writes as one batch (one frame, one flush); a single larger event goes alone.</summary>
    internal const int BatchBytes = 64 * 1024;

    /// <summary>
    /// The events to write next, oldest first, up to <see cref="BatchBytes"/>, ending at one that closes the
    /// connection; when there is none the pump stops (under the same lock an enqueue starts one).
    /// </summary>
    private bool TryTakeBatch(List<Outbound> batch, out bool closeAfter)
    {
        batch.Clear();
        closeAfter = false;
        long bytes = 0;
        lock (_gate)
        {
            while (_queue.First is { } first)
            {
                var size = SizeOf(first.Value.Item);
                if (batch.Count > 0 && bytes + size > BatchBytes) break;
                _queue.RemoveFirst();
                _queuedBytes -= size;
                bytes += size;
                // Ephemeral entries leave in order, so the first one queued is the oldest one listed.
                if (first.Value.Item.Ephemeral)
                {
                    _ephemeral.Dequeue();
                    _queuedEphemeralBytes -= size;
                }
                batch.Add(first.Value.Item);
                if (first.Value.CloseAfter)
                {
                    closeAfter = true;
                    break;
                }
            }
            if (batch.Count == 0) _pumping = false;
            return batch.Count > 0;
        }
    }

    private int SizeOf(Outbound item) => item.Message.GetSerializedMessage(_context.Protocol).Length;

    /// <summary>
    /// Writes the queue out in order and ends when it is empty (see <see cref="TryTakeBatch"/>). Whatever queued up while
    /// the previous write was on its way goes out together: the events' bytes, already serialized in this connection's
    /// protocol, are concatenated into one message for SignalR (both protocols delimit each message themselves: JSON
    /// ends each with the record separator, MessagePack prefixes each with its length), so a connection that fell
    /// behind costs one write, one flush, one WebSocket frame and one socket send per batch instead of per event.
    /// </summary>
    private async Task PumpAsync()
    {
        // Off the caller's thread: an enqueue (a room feed pushing to every connection) never waits on a socket.
        await Task.Yield();
        try
        {
            var token = _context.ConnectionAborted;
            var batch = new List<Outbound>();
            while (TryTakeBatch(batch, out var closeAfter))
            {
                if (token.IsCancellationRequested) break;
                if (batch.Count == 1) await _context.WriteAsync(batch[0].Message, token);
                else await WriteBatchAsync(batch, token);
                if (!closeAfter) continue;
                Complete();
                _context.Abort();
                break;
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            _log.LogDebug(e, "Outbound pump of {ConnectionId} ended", Id);
        }
    }

    private async ValueTask WriteBatchAsync(List<Outbound> batch, CancellationToken token)
    {
        var protocol = _context.Protocol;
        var length = 0;
        foreach (var item in batch) length += item.Message.GetSerializedMessage(protocol).Length;
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var at = 0;
            foreach (var item in batch)
            {
                var bytes = item.Message.GetSerializedMessage(protocol);
                bytes.Span.CopyTo(buffer.AsSpan(at));
                at += bytes.Length;
            }
            // SignalR copies the bytes into the transport's pipe before the write completes, so the buffer goes back after.
            await _context.WriteAsync(new SerializedHubMessage([new SerializedMessage(protocol.Name, buffer.AsMemory(0, length))]), token);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

/// <summary>The hub's connection metrics (a WebSocket is not counted as an HTTP request; see CaasWeb).</summary>
public static class HubMetrics
{
    public static readonly Prometheus.Gauge Connections = Prometheus.Metrics.CreateGauge("caas_hub_connections",
        "Hub connections open on this node now.");

    public static readonly Prometheus.Counter Opened = Prometheus.Metrics.CreateCounter("caas_hub_connections_opened_total",
        "Hub connections opened (signed in) on this node.");

    public static readonly Prometheus.Counter Closed = Prometheus.Metrics.CreateCounter("caas_hub_connections_closed_total",
        "Hub connections closed, by who decided: client (the client or its network), slow_consumer, stale (unacknowledged " +
        "events past their retries), token_expired.", new Prometheus.CounterConfiguration { LabelNames = ["reason"] });

    /// <summary>The code of a close reason ("slow_consumer: …" → "slow_consumer").</summary>
    public static string ReasonCode(string reason) => reason.IndexOf(':') is var colon and > 0 ? reason[..colon] : reason;
}

/// <summary>The node's live connections by id, and the SignalR connection contexts they write to.</summary>
public sealed class ChatConnections
{
    internal ConcurrentDictionary<string, HubConnectionContext> Contexts { get; } = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ChatConnection> _connections = new(StringComparer.Ordinal);

    public int Count => _connections.Count;

    public IEnumerable<ChatConnection> All => _connections.Values;

    public ChatConnection? Find(string connectionId) => _connections.GetValueOrDefault(connectionId);

    /// <summary>This node's connections of one user.</summary>
    public IReadOnlyList<ChatConnection> OfUser(string tenantId, string userId) =>
        [.. _connections.Values.Where(c => c.Caller.TenantId == tenantId && c.Caller.UserId == userId)];

    internal void Add(ChatConnection c)
    {
        if (!_connections.TryAdd(c.Id, c)) return;
        HubMetrics.Connections.Inc();
        HubMetrics.Opened.Inc();
    }

    internal ChatConnection? Remove(string connectionId)
    {
        if (!_connections.TryRemove(connectionId, out var c)) return null;
        HubMetrics.Connections.Dec();
        HubMetrics.Closed.WithLabels(c.CloseReason ?? "client").Inc();
        return c;
    }
}

/// <summary>The default (in-process) lifetime manager, which also hands each connection's context to <see cref="ChatConnections"/>.</summary>
public sealed class ChatLifetimeManager(ILogger<DefaultHubLifetimeManager<ChatHub>> logger, ChatConnections connections)
    : DefaultHubLifetimeManager<ChatHub>(logger)
{
    public override Task OnConnectedAsync(HubConnectionContext connection)
    {
        connections.Contexts[connection.ConnectionId] = connection;
        return base.OnConnectedAsync(connection);
    }

    public override Task OnDisconnectedAsync(HubConnectionContext connection)
    {
        connections.Contexts.TryRemove(connection.ConnectionId, out _);
        return base.OnDisconnectedAsync(connection);
    }
}
