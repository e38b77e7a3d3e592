using System.Collections.Concurrent;
using Caas.Actors.Conversations;

namespace Caas.Streams.Pipeline;

/// <summary>
/// Recently acknowledged (tenant, message_id) pairs, so a retry is answered at ingest before rate limiting or
/// enrichment run again. Bounded by time and count; the conversation entity stays the authority.
/// </summary>
public sealed class DedupeWindow(TimeSpan window, int maxEntries)
{
    private readonly ConcurrentDictionary<string, (MessageAck Ack, long ExpiresAt)> _acks = new();
    private readonly ConcurrentQueue<(string Key, long ExpiresAt)> _order = new();

    public bool TryGet(string tenantId, string messageId, out MessageAck ack)
    {
        if (_acks.TryGetValue(Key(tenantId, messageId), out var entry) && entry.ExpiresAt > Environment.TickCount64)
        {
            ack = entry.Ack;
            return true;
        }
        ack = null!;
        return false;
    }

    public void Remember(string tenantId, MessageAck ack)
    {
        var key = Key(tenantId, ack.MessageId);
        var expires = Environment.TickCount64 + (long)window.TotalMilliseconds;
        _acks[key] = (ack, expires);
        _order.Enqueue((key, expires));
        // Evict from the front: entries leave in the order they came, by age or when over the bound.
        while (_order.TryPeek(out var oldest) && (oldest.ExpiresAt <= Environment.TickCount64 || _order.Count > maxEntries))
        {
            if (!_order.TryDequeue(out oldest)) break;
            if (_acks.TryGetValue(oldest.Key, out var current) && current.ExpiresAt == oldest.ExpiresAt) _acks.TryRemove(oldest.Key, out _);
        }
    }

    public int Count => _acks.Count;

    private static string Key(string tenantId, string messageId) => tenantId + "|" + messageId;
}
