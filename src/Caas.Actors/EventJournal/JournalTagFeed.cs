using Akka;
using Akka.Persistence.Query;
using Akka.Streams.Dsl;
using Akka.Util;

namespace Caas.Actors.EventJournal;

/// <summary>
/// Events by tag straight from the journal's table, for the projections of one node: what the plugin's read journal
/// answers (rows whose <c>;</c>-separated tags hold the tag, not deleted, in ordering order, live), decoded once for
/// every projection of the node that follows the same tag. A store's feed says how a range is read
/// (<see cref="SqliteTagFeed"/>, <see cref="PostgresTagFeed"/>); what is shared is here.
/// <para>
/// Ranges read are kept (the last <see cref="KeptEvents"/> events per tag) with their decoded events, and a read of a
/// range that another projection is reading already waits for that read. The read model, search and outbound
/// projections follow the conversation tag at nearby offsets, so the journal is read and decoded once for them
/// instead of once each; the events are immutable records, shared as the plugin's would be within one projection.
/// </para>
/// </summary>
public abstract class JournalTagFeed
{
    private readonly TimeSpan _refresh;
    private readonly Dictionary<string, TagRanges> _tags = new(StringComparer.Ordinal);

    /// <summary>Rows per read (the plugin's <c>max-buffer-size</c>).</summary>
    public int MaxRows { get; }

    /// <summary>Decoded events kept per tag for the other projections of the node.</summary>
    public int KeptEvents { get; }

    /// <summary>Ranges kept for <paramref name="tag"/> (tests).</summary>
    internal int KeptRanges(string tag)
    {
        TagRanges? ranges;
        lock (_tags) _tags.TryGetValue(tag, out ranges);
        if (ranges is null) return 0;
        lock (ranges) return ranges.Count;
    }

    /// <summary>Database reads made (ranges not found among the kept ones), for tests and figures.</summary>
    public long Reads => Interlocked.Read(ref _reads);
    private long _reads;

    protected JournalTagFeed(TimeSpan refresh, int maxRows, int keptEvents)
    {
        _refresh = refresh > TimeSpan.Zero ? refresh : TimeSpan.FromMilliseconds(100);
        MaxRows = Math.Max(1, maxRows);
        KeptEvents = Math.Max(MaxRows, keptEvents);
    }

    /// <summary>
    /// Reads the tagged rows after <paramref name="from"/> from the database: a range (from, to] complete up to its end
    /// (every row of the journal in it is either returned, when tagged, or known to be another tag's), or an empty one
    /// ending at <paramref name="from"/> when nothing new can be given yet.
    /// </summary>
    protected abstract Task<Range> ReadAsync(string tag, long from);

    /// <summary>
    /// The events tagged <paramref name="tag"/> with an ordering value above <paramref name="offset"/>, in order, then
    /// live (polled every refresh interval while nothing is new). Reads only when demanded (backpressure).
    /// </summary>
    public Source<EventEnvelope, NotUsed> EventsByTag(string tag, long offset) =>
        Source.UnfoldAsync(Math.Max(0, offset), async from =>
            {
                var range = await RangeAsync(tag, from);
                if (range.To == from) await Task.Delay(_refresh);
                return Option<(long, EventEnvelope[])>.Create((range.To, range.EventsAfter(from)));
            })
            .SelectMany(events => events);

    /// <summary>The current events tagged <paramref name="tag"/> above <paramref name="offset"/> (up to the head when called).</summary>
    public async Task<IReadOnlyList<EventEnvelope>> CurrentEventsByTagAsync(string tag, long offset, CancellationToken ct = default)
    {
        var all = new List<EventEnvelope>();
        for (var from = Math.Max(0, offset); ;)
        {
            ct.ThrowIfCancellationRequested();
            var range = await RangeAsync(tag, from);
            if (range.To == from) return all;
            all.AddRange(range.EventsAfter(from));
            from = range.To;
        }
    }

    /// <summary>
    /// A range that starts at or before <paramref name="from"/> and ends after it, or an empty one ending at it (nothing
    /// new). A read in flight for the tag that starts a little before <paramref name="from"/> is waited for first: two
    /// projections a few rows apart then share its range instead of each reading its own overlapping one for ever.
    /// </summary>
    private async Task<Range> RangeAsync(string tag, long from)
    {
        TagRanges ranges;
        lock (_tags)
        {
            if (!_tags.TryGetValue(tag, out ranges!)) _tags[tag] = ranges = new TagRanges(KeptEvents);
        }
        while (true)
        {
            Task<Range>? other = null;
            TaskCompletionSource<Range>? mine = null;
            lock (ranges)
            {
                if (ranges.Covering(from) is { } kept) return kept;
                foreach (var (start, pending) in ranges.Reading)
                    if (start <= from && from - start < 4L * MaxRows) { other = pending; break; }
                if (other is null)
                {
                    mine = new TaskCompletionSource<Range>(TaskCreationOptions.RunContinuationsAsynchronously);
                    ranges.Reading[from] = mine.Task;
                }
            }
            if (other is not null)
            {
                // Its outcome only matters through the kept ranges (a failure is this reader's own to meet).
                try { await other; } catch { /* read again below */ }
                continue;
            }
            try
            {
                Interlocked.Increment(ref _reads);
                var range = await ReadAsync(tag, from);
                lock (ranges)
                {
                    ranges.Keep(range);
                    ranges.Reading.Remove(from);
                }
                mine!.SetResult(range);
                return range;
            }
            catch (Exception e)
            {
                lock (ranges) ranges.Reading.Remove(from);
                mine!.SetException(e);
                // Readers waiting on it catch the failure; with none, the faulted task would surface as an unobserved
                // task exception once collected. The failure is this reader's to throw, so it is observed here.
                _ = mine.Task.Exception;
                throw;
            }
        }
    }

    /// <summary>The journal's ordering range (From, To] read for one tag, with its tagged events in order.</summary>
    protected sealed record Range(long From, long To, EventEnvelope[] Events)
    {
        public EventEnvelope[] EventsAfter(long offset)
        {
            if (offset <= From) return Events;
            var i = 0;
            while (i < Events.Length && ((Sequence)Events[i].Offset).Value <= offset) i++;
            return i == 0 ? Events : Events[i..];
        }
    }

    /// <summary>One tag's kept ranges (oldest first, no overlap) and the reads in flight by their start.</summary>
    private sealed class TagRanges(int keptEvents)
    {
        private readonly LinkedList<Range> _kept = new();
        private int _events;

        public Dictionary<long, Task<Range>> Reading { get; } = new();

        /// <summary>Ranges kept at most, whatever their events (many small ranges of a quiet tag).</summary>
        public const int MaxRanges = 1024;

        public int Count => _kept.Count;

        // Kept ranges are in order and never overlap, so their ends are in order too: both walks start at the newest
        // (where live readers are) and stop at the first range that ends at or before the offset. A live reader
        // polling at the head used to walk every kept range: 0.9% of the node's samples in a REST run.
        public Range? Covering(long offset)
        {
            for (var n = _kept.Last; n is not null && n.Value.To > offset; n = n.Previous)
                if (n.Value.From <= offset) return n.Value;
            return null;
        }

        public void Keep(Range range)
        {
            if (range.To == range.From) return;
            // A tag without new events gets an empty range at every poll while the journal's head moves on (other
            // tags): it extends the empty range it follows instead of adding one, or a quiet tag's list grew for ever
            // (empty ranges count no events, so the bound on events never evicted them).
            if (range.Events.Length == 0 && _kept.Last is { Value: { Events.Length: 0 } last } node && last.To == range.From)
            {
                node.Value = last with { To = range.To };
                return;
            }
            var after = _kept.Last;
            while (after is not null && after.Value.To > range.From)
            {
                // Overlapping one kept already (two readers at different offsets): nothing is replaced, the first stays.
                if (after.Value.From < range.To) return;
                after = after.Previous;
            }
            if (after is null) _kept.AddFirst(range);
            else _kept.AddAfter(after, range);
            _events += range.Events.Length;
            while ((_events > keptEvents || _kept.Count > MaxRanges) && _kept.Count > 1)
            {
                _events -= _kept.First!.Value.Events.Length;
                _kept.RemoveFirst();
            }
        }
    }
}
