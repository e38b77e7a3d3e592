using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Caas.Actors.Privacy;
using Caas.Actors.Conversations;

namespace Caas.Streams.Pipeline;

/// <summary>
/// Recently acknowledged (tenant, message_id) pairs, so the sender's own retry is answered at ingest before anything
/// runs again. An entry answers only the same tenant, sender and conversation, and only a retry with the same content:
/// it keeps the acknowledgement's facts and a hash of the content, never the text (the answer's content is the
/// retry's own). Anyone else goes the full way (404 for a non-member, 409 for another sender). Bounded by time, count
/// and bytes; the conversation entity stays the authority. One per actor system (<see cref="Of"/>), so an erasure
/// can reach it (directly on its node, and on every other node through the data-key notice).
/// </summary>
public sealed class DedupeWindow : IExtension
{
    // What an entry costs beyond its strings: the dictionary and queue slots, the record, the hash, the times.
    private const int EntryOverheadBytes = 160;

    private readonly TimeSpan _window;
    private readonly int _maxEntries;
    private readonly long _maxBytes;
    private readonly TimeProvider _clock;
    private readonly object _gate = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Queue<(string Key, long Stamp)> _order = new();
    private long _bytes;
    private long _stamps;

    private sealed record Entry(string TenantId, string MessageId, string ConversationId, string SenderId, long Seq, DateTimeOffset CreatedAt,
        byte[] ContentHash, DateTimeOffset ExpiresAt, long Stamp, int Bytes);

    public DedupeWindow(TimeSpan window, int maxEntries, long maxBytes, TimeProvider? clock = null)
    {
        _window = window;
        _maxEntries = maxEntries;
        _maxBytes = maxBytes;
        _clock = clock ?? TimeProvider.System;
    }

    /// <summary>The node's window (sized by HOCON <c>caas.pipeline</c>).</summary>
    public static DedupeWindow Of(ActorSystem system) => system.WithExtension<DedupeWindow, DedupeWindowId>();

    /// <summary>The original acknowledgement, if this message is its sender's retry of one acknowledged within the window.</summary>
    public bool TryRecall(IngestMessage m, out MessageAck ack)
    {
        ack = null!;
        if (m.MessageId is null) return false;
        Entry? entry;
        lock (_gate)
        {
            if (!_entries.TryGetValue(Key(m.TenantId, m.MessageId), out entry) || entry.ExpiresAt <= _clock.GetUtcNow()) return false;
        }
        if (entry.SenderId != m.SenderId || entry.ConversationId != m.ConversationId) return false;
        if (!CryptographicOperations.FixedTimeEquals(entry.ContentHash, Hash(m.Content))) return false;
        ack = new MessageAck(entry.MessageId, entry.ConversationId, entry.Seq, entry.SenderId, m.Content, entry.CreatedAt, Repeat: true);
        return true;
    }

    /// <summary>Remembers a fresh acknowledgement of <paramref name="content"/> (only its hash is kept).</summary>
    public void Remember(string tenantId, MessageAck ack, MessageContent content)
    {
        var key = Key(tenantId, ack.MessageId);
        var bytes = EntryOverheadBytes + 2 * (key.Length + tenantId.Length + ack.MessageId.Length + ack.ConversationId.Length + ack.SenderId.Length);
        var now = _clock.GetUtcNow();
        lock (_gate)
        {
            var stamp = ++_stamps;
            if (_entries.Remove(key, out var replaced)) _bytes -= replaced.Bytes;
            _entries[key] = new Entry(tenantId, ack.MessageId, ack.ConversationId, ack.SenderId, ack.Seq, ack.CreatedAt, Hash(content),
                now + _window, stamp, bytes);
            _bytes += bytes;
            _order.Enqueue((key, stamp));
            // Evict from the front: entries leave in the order they came, by age or when over a bound.
            while (_order.TryPeek(out var oldest))
            {
                var live = _entries.TryGetValue(oldest.Key, out var current) && current.Stamp == oldest.Stamp;
                if (live && current!.ExpiresAt > now && _entries.Count <= _maxEntries && _bytes <= _maxBytes) break;
                _order.Dequeue();
                if (!live) continue;
                _entries.Remove(oldest.Key);
                _bytes -= current!.Bytes;
            }
        }
    }

    /// <summary>Forgets every entry of a user (an erasure): nothing of theirs is answered from memory afterwards.</summary>
    public int Forget(string tenantId, string userId)
    {
        lock (_gate)
        {
            var gone = _entries.Where(kv => kv.Value.TenantId == tenantId && kv.Value.SenderId == userId).Select(kv => kv.Key).ToList();
            foreach (var key in gone)
            {
                _entries.Remove(key, out var entry);
                _bytes -= entry!.Bytes;
            }
            // Their queue slots no longer match an entry and are skipped when they reach the front.
            return gone.Count;
        }
    }

    public int Count
    {
        get { lock (_gate) return _entries.Count; }
    }

    /// <summary>The estimated memory the entries hold.</summary>
    public long Bytes
    {
        get { lock (_gate) return _bytes; }
    }

    private static string Key(string tenantId, string messageId) => tenantId + "|" + messageId;

    private static byte[] Hash(MessageContent content) => SHA256.HashData(Encoding.UTF8.GetBytes(content.Type + "\0" + content.Text + (content.Attachment is { } a ? "\0" + a.MediaId : "")));

    public sealed class DedupeWindowId : ExtensionIdProvider<DedupeWindow>
    {
        public override DedupeWindow CreateExtension(ExtendedActorSystem system)
        {
            var settings = PipelineSettings.From(system.Settings.Config);
            var window = new DedupeWindow(settings.DedupeWindow, settings.DedupeMaxEntries, settings.DedupeMaxBytes);
            // An erasure on another node reaches this one's window through the data-key notice every node receives.
            if (system.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal))
                system.SystemActorOf(Props.Create(() => new ErasureListener(window)), "dedupe-window-erasures");
            return window;
        }
    }

    private sealed class ErasureListener : ReceiveActor
    {
        public ErasureListener(DedupeWindow window)
        {
            DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(DataKeysDestroyed.Topic, Self));
            Receive<SubscribeAck>(_ => { });
            Receive<DataKeysDestroyed>(d => window.Forget(d.TenantId, d.UserId));
        }
    }
}
