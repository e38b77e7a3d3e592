using System.Collections;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Caas.Actors.Conversations;

/// <summary>
/// The facts of a conversation's most recent messages (at most its message window), by seq and by message id. Every
/// version stays valid: the entity keeps the state the journal holds beside the one its write in flight will give, and a
/// snapshot is serialized on another thread while the entity goes on.
/// <para>
/// Kept seqs are contiguous, so the facts live in chunks of 64 slots indexed by seq rather than in a balanced tree.
/// A post writes its slot in the last chunk in place when no other version has written past it (slots already written
/// never change: a version only ever reads the slots up to its own last seq); otherwise, and for an edit, delete,
/// reaction or enrichment, the chunk is copied. The message ids go into one hash map shared by the versions of a line
/// of states; a version trusts a hit only when its own slot for that seq holds that id, and ids of facts that left the
/// window are dropped when the map is rebuilt (once it holds as many stale ids as live ones). Measured against the
/// immutable dictionaries this replaces: README, "The entity's message window".
/// </para>
/// </summary>
[JsonConverter(typeof(RecentMessagesJson))]
public sealed class RecentMessages : IEnumerable<KeyValuePair<long, MessageFacts>>
{
    private const int Shift = 6;
    private const int Size = 1 << Shift;
    private const int Mask = Size - 1;

    public static readonly RecentMessages Empty = new([], 0, 1, 0, new IdMap());

    private readonly Chunk[] _chunks; // _chunks[i] holds the seqs of chunk number _firstChunk + i
    private readonly long _firstChunk;
    private readonly long _first, _last; // the kept seqs: [_first, _last]; none when _last < _first
    private readonly IdMap _map;
    private MessageIdIndex? _ids;

    private RecentMessages(Chunk[] chunks, long firstChunk, long first, long last, IdMap map) =>
        (_chunks, _firstChunk, _first, _last, _map) = (chunks, firstChunk, first, last, map);

    /// <summary>How many messages' facts are kept.</summary>
    public int Count => (int)Math.Max(0, _last - _first + 1);

    /// <summary>The message ids of the kept facts, to their seq.</summary>
    public MessageIdIndex Ids => _ids ??= new MessageIdIndex(this);

    /// <summary>The kept seqs, oldest first.</summary>
    public IEnumerable<long> Keys => this.Select(p => p.Key);

    public MessageFacts this[long seq] => TryGetValue(seq, out var f) ? f : throw new KeyNotFoundException($"No facts kept for seq {seq}.");

    public bool ContainsKey(long seq) => TryGetValue(seq, out _);

    public bool TryGetValue(long seq, out MessageFacts facts)
    {
        facts = null!;
        if (seq < _first || seq > _last) return false;
        var f = _chunks[ChunkOf(seq) - _firstChunk].Items[SlotOf(seq)];
        if (f is null) return false;
        facts = f;
        return true;
    }

    /// <summary>
    /// This window with <paramref name="facts"/> for <paramref name="seq"/>, the next seq, and without the facts that fall
    /// out of a window of <paramref name="window"/> messages. A seq that does not follow the last one starts the window
    /// afresh at it (kept facts stay contiguous); a seq already kept replaces its facts.
    /// </summary>
    public RecentMessages Add(long seq, MessageFacts facts, int window)
    {
        if (seq >= _first && seq <= _last) return With(seq, facts);
        if (seq < 1) throw new ArgumentOutOfRangeException(nameof(seq), seq, "Message seqs start at 1.");
        window = Math.Max(1, window);
        if (Count == 0 || seq != _last + 1)
        {
            var fresh = new Chunk { Claimed = SlotOf(seq) + 1 };
            fresh.Items[SlotOf(seq)] = facts;
            var map = new IdMap();
            map.Ids[facts.MessageId] = seq;
            return new RecentMessages([fresh], ChunkOf(seq), seq, seq, map);
        }

        var chunks = _chunks;
        var firstChunk = _firstChunk;
        var slot = SlotOf(seq);
        if (ChunkOf(seq) == firstChunk + chunks.Length - 1)
        {
            var last = chunks[^1];
            if (last.Claimed == slot)
            {
                // Nothing past this version's last seq was written here: the slot is written in place.
                last.Items[slot] = facts;
                last.Claimed = slot + 1;
            }
            else
            {
                // Another version appended past our last seq: this line of states gets its own copy of the chunk.
                var copy = new Chunk { Claimed = slot + 1 };
                Array.Copy(last.Items, copy.Items, slot);
                copy.Items[slot] = facts;
                chunks = (Chunk[])chunks.Clone();
                chunks[^1] = copy;
            }
        }
        else
        {
            var next = new Chunk { Claimed = slot + 1 };
            next.Items[slot] = facts;
            var grown = new Chunk[chunks.Length + 1];
            Array.Copy(chunks, grown, chunks.Length);
            grown[^1] = next;
            chunks = grown;
        }

        var first = Math.Max(_first, seq - window + 1);
        var drop = ChunkOf(first) - firstChunk;
        if (drop > 0)
        {
            chunks = chunks[(int)drop..];
            firstChunk += drop;
        }
        _map.Ids[facts.MessageId] = seq;
        var result = new RecentMessages(chunks, firstChunk, first, seq, _map);
        // Ids of facts that left the window (and of writes that were refused) stay in the map until it holds as many of
        // them as live ones; then this version gets a map of its own ids only.
        return _map.Ids.Count > 2 * result.Count + 64 ? new RecentMessages(chunks, firstChunk, first, seq, result.BuildMap()) : result;
    }

    /// <summary>This window with the facts of kept seq <paramref name="seq"/> replaced (its chunk copied).</summary>
    public RecentMessages With(long seq, MessageFacts facts)
    {
        if (seq < _first || seq > _last) throw new KeyNotFoundException($"No facts kept for seq {seq}.");
        var index = ChunkOf(seq) - _firstChunk;
        var old = _chunks[index];
        var slot = SlotOf(seq);
        // Only the slots this version can see are copied; the copy's later slots are free for this line's next posts.
        var visible = index == _chunks.Length - 1 ? SlotOf(_last) + 1 : Size;
        var copy = new Chunk { Claimed = visible };
        Array.Copy(old.Items, copy.Items, visible);
        copy.Items[slot] = facts;
        var chunks = (Chunk[])_chunks.Clone();
        chunks[index] = copy;
        var map = _map;
        if (old.Items[slot]?.MessageId != facts.MessageId)
        {
            map = BuildMap();
            map.Ids[facts.MessageId] = seq;
        }
        return new RecentMessages(chunks, _firstChunk, _first, _last, map);
    }

    /// <summary>A window of <paramref name="window"/> messages with these facts (the contiguous run that ends with the highest seq).</summary>
    public static RecentMessages From(IEnumerable<KeyValuePair<long, MessageFacts>> facts, int window)
    {
        var result = Empty;
        foreach (var (seq, f) in facts.OrderBy(p => p.Key)) result = result.Add(seq, f, window);
        return result;
    }

    public IEnumerator<KeyValuePair<long, MessageFacts>> GetEnumerator()
    {
        for (var seq = _first; seq <= _last; seq++)
            if (TryGetValue(seq, out var f)) yield return new KeyValuePair<long, MessageFacts>(seq, f);
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private bool TryGetSeq(string messageId, out long seq)
    {
        // The map may hold ids this version never saw (another line of states wrote them): a hit counts only when this
        // version's own slot for that seq holds the id.
        if (_map.Ids.TryGetValue(messageId, out seq) && TryGetValue(seq, out var f) && f.MessageId == messageId) return true;
        seq = 0;
        return false;
    }

    private IdMap BuildMap()
    {
        var map = new IdMap(Count);
        foreach (var (seq, f) in this) map.Ids[f.MessageId] = seq;
        return map;
    }

    private static long ChunkOf(long seq) => (seq - 1) >> Shift;

    private static int SlotOf(long seq) => (int)((seq - 1) & Mask);

    private sealed class Chunk
    {
        public readonly MessageFacts?[] Items = new MessageFacts?[Size];

        /// <summary>Slots below this were written and never change; the one at it is the next post's, if it follows.</summary>
        public int Claimed;
    }

    private sealed class IdMap(int capacity = 0)
    {
        public readonly Dictionary<string, long> Ids = new(capacity, StringComparer.Ordinal);
    }

    /// <summary>The kept facts' message ids, to their seq (a view of the window; read on the entity's thread).</summary>
    [JsonConverter(typeof(MessageIdIndexJson))]
    public sealed class MessageIdIndex : IEnumerable<KeyValuePair<string, long>>
    {
        private readonly RecentMessages _window;

        internal MessageIdIndex(RecentMessages window) => _window = window;

        public int Count => _window.Count;

        public long this[string messageId] => TryGetValue(messageId, out var seq) ? seq : throw new KeyNotFoundException($"No kept message {messageId}.");

        public bool ContainsKey(string messageId) => TryGetValue(messageId, out _);

        /// <summary>The kept facts' message ids, oldest first.</summary>
        public IEnumerable<string> Keys => this.Select(p => p.Key);

        public bool TryGetValue(string messageId, out long seq) => _window.TryGetSeq(messageId, out seq);

        // From the facts themselves, never from the shared map: safe on any thread (a snapshot is written on another).
        public IEnumerator<KeyValuePair<string, long>> GetEnumerator()
        {
            foreach (var (seq, f) in _window) yield return new KeyValuePair<string, long>(f.MessageId, seq);
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}

/// <summary>The window as the immutable dictionary it replaced was written: <c>{"seq": facts}</c>, oldest first.</summary>
internal sealed class RecentMessagesJson : JsonConverter<RecentMessages>
{
    public override RecentMessages Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var facts = JsonSerializer.Deserialize<Dictionary<long, MessageFacts>>(ref reader, options)
                    ?? throw new JsonException("Expected the message facts.");
        // The window's size is the state's own (MessageWindow); here every fact read is kept.
        return RecentMessages.From(facts, int.MaxValue);
    }

    public override void Write(Utf8JsonWriter writer, RecentMessages value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        foreach (var (seq, f) in value)
        {
            writer.WritePropertyName(seq.ToString(CultureInfo.InvariantCulture));
            JsonSerializer.Serialize(writer, f, options);
        }
        writer.WriteEndObject();
    }
}

/// <summary>
/// The ids as the dictionary they replaced was written (<c>{"message id": seq}</c>), so older nodes read a new snapshot;
/// read back, they are ignored: the ids come from the facts.
/// </summary>
internal sealed class MessageIdIndexJson : JsonConverter<RecentMessages.MessageIdIndex>
{
    public override RecentMessages.MessageIdIndex Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        reader.Skip();
        return RecentMessages.Empty.Ids;
    }

    public override void Write(Utf8JsonWriter writer, RecentMessages.MessageIdIndex value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        foreach (var (id, seq) in value) writer.WriteNumber(id, seq);
        writer.WriteEndObject();
    }
}
