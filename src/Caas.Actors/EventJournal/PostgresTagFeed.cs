using System.Diagnostics;
using Akka.Actor;
using Akka.Persistence.Query;
using Npgsql;

namespace Caas.Actors.EventJournal;

/// <summary>
/// <see cref="JournalTagFeed"/> on a PostgreSQL journal, read with Npgsql.
/// <para>
/// PostgreSQL's writers (the journal's <c>writers</c>, every node of a cluster) draw ordering values and commit in
/// parallel, so a committed row can have below it a value whose transaction has not committed yet: a gap. Each read
/// therefore walks every row after the reader's offset in ordering order (at most <see cref="JournalTagFeed.MaxRows"/>
/// of them, one index range of the primary key; the untagged ones give only their ordering), and the range it answers
/// ends before the first gap. A gap is waited for at most <c>gapWait</c> from when this feed first saw it (the plugin's
/// <c>query-delay x max-tries</c>): a transaction that rolled back, or rows deleted for good, leave gaps that never
/// fill. A row that commits after its gap was given up is passed by, as with the plugin's read journal; the
/// projections' late-commit sweep applies it. Gaps below the journal's head when the feed was made are not waited
/// for (the plugin's sequence actor starts the same way): they are history, mostly rows deleted for good.
/// </para>
/// </summary>
public sealed class PostgresTagFeed : JournalTagFeed, IAsyncDisposable
{
    private readonly NpgsqlDataSource _source;
    private readonly JournalRowCodec _codec;
    private readonly string _separator;
    private readonly long _gapWaitTicks;
    private readonly object _gapLock = new();
    // Gaps seen (their first missing ordering value): when first seen, in Stopwatch ticks, and whether counted as passed.
    private readonly Dictionary<long, (long Seen, bool Counted)> _gaps = new();
    private Task<long>? _startHead;

    /// <summary>Gaps given up (waited for <c>gapWait</c> and passed by), for tests and figures.</summary>
    public long GapsPassed => Interlocked.Read(ref _gapsPassed);
    private long _gapsPassed;

    public PostgresTagFeed(ExtendedActorSystem system, string connectionString, TimeSpan refresh, TimeSpan gapWait, int maxRows = 2000,
        int keptEvents = 8000, string tagSeparator = ";", int maxPoolSize = 4) : base(refresh, maxRows, keptEvents)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = Math.Max(1, maxPoolSize) };
        _source = NpgsqlDataSource.Create(builder.ConnectionString);
        _codec = new JournalRowCodec(system, string.Empty, tagSeparator);
        _separator = tagSeparator;
        _gapWaitTicks = (long)(Math.Max(0, gapWait.TotalSeconds) * Stopwatch.Frequency);
    }

    // Every row after the offset in ordering order; the tagged ones (not deleted) with their columns, the others with
    // their ordering only. ORDER BY ordering LIMIT walks the primary key from the offset.
    private const string RowsSql = """
        SELECT ordering, hit, CASE WHEN hit THEN persistence_id END, CASE WHEN hit THEN sequence_number END,
               CASE WHEN hit THEN created END, CASE WHEN hit THEN message END, CASE WHEN hit THEN manifest END,
               CASE WHEN hit THEN identifier END, CASE WHEN hit THEN tags END
        FROM (SELECT ordering, persistence_id, sequence_number, created, message, manifest, identifier, tags,
                     COALESCE(strpos(tags, @t) > 0 AND NOT deleted, false) AS hit
              FROM journal WHERE ordering > @from ORDER BY ordering LIMIT @n) r
        ORDER BY ordering
        """;

    protected override async Task<Range> ReadAsync(string tag, long from)
    {
        var startHead = await StartHeadAsync();
        if (startHead is null) return new Range(from, from, []);
        await using var connection = await _source.OpenConnectionAsync();
        await using var cmd = new NpgsqlCommand(RowsSql, connection);
        cmd.Parameters.AddWithValue("t", _separator + tag + _separator);
        cmd.Parameters.AddWithValue("from", from);
        cmd.Parameters.AddWithValue("n", (long)MaxRows);
        var events = new List<EventEnvelope>();
        var to = from;
        var now = Stopwatch.GetTimestamp();
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            var buffer = new byte[4096];
            string? lastTags = null;
            string[] lastSplit = [];
            while (await reader.ReadAsync())
            {
                var ordering = reader.GetInt64(0);
                if (ordering > to + 1)
                {
                    // Values to+1 .. ordering-1 are missing; those above the start head are a gap to wait for.
                    var missing = Math.Max(to + 1, startHead.Value + 1);
                    if (missing < ordering && !GapPassed(missing, now)) break;
                }
                to = ordering;
                if (!reader.GetBoolean(1)) continue;
                var pid = reader.GetString(2);
                var manifest = reader.IsDBNull(6) ? null : reader.GetString(6);
                int? identifier = reader.IsDBNull(7) ? null : reader.GetInt32(7);
                // Consecutive rows mostly carry the same tags: they are split once for all of them.
                var tags = reader.IsDBNull(8) ? null : reader.GetString(8);
                if (tags != lastTags) (lastTags, lastSplit) = (tags, _codec.SplitTags(tags));
                var length = (int)reader.GetBytes(5, 0, null, 0, 0);
                if (length > buffer.Length) buffer = new byte[Math.Max(length, buffer.Length * 2)];
                var read = (int)reader.GetBytes(5, 0, buffer, 0, length);
                var seq = reader.GetInt64(3);
                var created = reader.GetInt64(4);
                var payload = _codec.FromRow(pid, seq, created, buffer.AsSpan(0, read), manifest, identifier, null).Payload;
                events.Add(new EventEnvelope(Offset.Sequence(ordering), pid, seq, payload, created, lastSplit));
            }
        }
        return new Range(from, to, [.. events]);
    }

    /// <summary>
    /// Has the gap starting at <paramref name="missing"/> been waited for long enough? The first sighting starts its
    /// clock; an expired gap is passed by (and counted once).
    /// </summary>
    private bool GapPassed(long missing, long now)
    {
        lock (_gapLock)
        {
            if (!_gaps.TryGetValue(missing, out var gap))
            {
                // Old entries are gaps long filled or passed: dropped, so the map holds only recent ones.
                if (_gaps.Count >= 10_000)
                    foreach (var old in _gaps.Where(g => now - g.Value.Seen > 10 * _gapWaitTicks + Stopwatch.Frequency).Select(g => g.Key).ToList())
                        _gaps.Remove(old);
                gap = (now, false);
            }
            if (now - gap.Seen < _gapWaitTicks)
            {
                _gaps[missing] = gap;
                return false;
            }
            if (!gap.Counted) Interlocked.Increment(ref _gapsPassed);
            _gaps[missing] = (gap.Seen, true);
            return true;
        }
    }

    /// <summary>The journal's head when the feed first read (null while the table does not exist yet: a new node).</summary>
    private async Task<long?> StartHeadAsync()
    {
        var task = _startHead;
        if (task is null || task.IsFaulted || task.IsCanceled) _startHead = task = ReadStartHeadAsync();
        var head = await task;
        if (head >= 0) return head;
        _startHead = null; // no table yet: asked again on the next read
        return null;
    }

    private async Task<long> ReadStartHeadAsync()
    {
        await using var connection = await _source.OpenConnectionAsync();
        await using var exists = new NpgsqlCommand("SELECT to_regclass('journal') IS NOT NULL", connection);
        if (!(bool)(await exists.ExecuteScalarAsync())!) return -1;
        await using var head = new NpgsqlCommand("SELECT COALESCE(MAX(ordering), 0) FROM journal", connection);
        return (long)(await head.ExecuteScalarAsync())!;
    }

    public ValueTask DisposeAsync() => _source.DisposeAsync();
}
