using System.Data.Common;
using Akka.Persistence.Query;
using Caas.Actors.Hosting;

namespace Caas.Streams.ReadModel;

/// <summary>
/// Finds conversation events that committed in the journal after a projection's tag stream had read past their ordering
/// value (parallel writers on PostgreSQL): at each <see cref="JournaledAsync"/>, the highest sequence number per
/// persistence id among the journal rows with ordering values between the offset written one <c>window</c> ago and the
/// offset written now, against the projection's progress marks. An event below a mark was applied; one above it was
/// passed by. A late event that is not its conversation's last is repaired anyway by the next event (the hole shows);
/// this finds the last ones too. Used by the read-model, search and outbound projections, each with its own marks.
/// <para>
/// Each sweep reads only the rows past the <em>settled</em> ordering: the highest value up to which the journal had no
/// gap when last read. Below it no row can still commit (every value there is taken by a committed row), so what those
/// rows gave is kept in memory, one slice per sweep, until the window has passed it; above it (a gap: a transaction
/// that drew its ordering values and has not committed, or one that rolled back) the rows are read again at every
/// sweep. The answer is the same as reading the whole window each time, which at full ingest read every row about 24
/// times per projection (a two-minute window every 5 s) and grouped it on the database's cores.
/// </para>
/// </summary>
/// <param name="openJournal">Opens the journal's database.</param>
/// <param name="window">How far back (in time, as offsets written) a sweep looks.</param>
/// <param name="persistenceIdPrefix">The entities it looks at (their persistence ids' prefix): conversations unless told.</param>
public sealed class LateCommitSweep(Func<CancellationToken, Task<DbConnection>> openJournal, TimeSpan window, string persistenceIdPrefix = "conversation|")
{
    private long _writtenOffset;
    private readonly Queue<(DateTimeOffset At, long Offset)> _sweeps = new();
    // Read once and kept: the rows at or below _settled (no gap below it when read), as slices (their highest ordering
    // value, the highest sequence number per persistence id among their rows), oldest first.
    private readonly Queue<(long To, Dictionary<string, long> Last)> _slices = new();
    private long _settled;

    /// <summary>The highest ordering value up to which the journal had no gap at the last sweep (0 before the first).</summary>
    public long Settled => _settled;

    /// <summary>The projection wrote up to this offset (from its stream's writes, any thread).</summary>
    public void Written(long offset) => Volatile.Write(ref _writtenOffset, offset);

    /// <summary>
    /// The journal's highest sequence number per persistence id (of the prefix) among the rows in the window (the
    /// database read happens here, outside the projection's write gate). Call from one thread (the projection actor).
    /// </summary>
    public async Task<IReadOnlyDictionary<string, long>> JournaledAsync(CancellationToken ct = default)
    {
        var now = DateTimeOffset.UtcNow;
        var offset = Volatile.Read(ref _writtenOffset);
        if (_sweeps.Count > 0 && offset < _sweeps.Last().Offset)
        {
            // The offset went back (the projection's stream started again from an earlier one): a new window.
            _sweeps.Clear();
            _slices.Clear();
            _settled = 0;
        }
        _sweeps.Enqueue((now, offset));
        while (_sweeps.Count > 1 && _sweeps.ElementAt(1).At <= now - window) _sweeps.Dequeue();
        var journaled = new Dictionary<string, long>(StringComparer.Ordinal);
        if (offset == 0) return journaled;
        // The window's rows are those after `below` (the oldest offset written within the window, itself included).
        var below = Math.Max(0, _sweeps.Peek().Offset - 1);
        while (_slices.Count > 0 && _slices.Peek().To <= below) _slices.Dequeue();
        var from = Math.Max(below, _settled);

        await using var c = await openJournal(ct);
        var settledNow = new Dictionary<string, long>(StringComparer.Ordinal);
        var settled = from;
        // First, as one statement (one snapshot), the rows past what is settled grouped, and how many rows that range
        // holds: when it holds every ordering value up to its highest, no row there can still commit and all of it is
        // settled now. That is the usual case: the projection's tag stream passes a missing value only after the
        // plugin's wait for it runs out. Bounded below by the window and what is settled, so each sweep reads the
        // journal's recent rows once (ordering is its key).
        var rows = new List<(string Pid, long Last)>();
        long count = 0, highest = 0;
        await using (var cmd = Command(c, from, offset, """
                         SELECT persistence_id, MAX(sequence_number), 0 FROM journal
                         WHERE ordering > @from AND ordering <= @to AND persistence_id LIKE @prefix GROUP BY persistence_id
                         UNION ALL SELECT NULL, COUNT(*), COALESCE(MAX(ordering), 0) FROM journal WHERE ordering > @from AND ordering <= @to
                         """))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                if (!r.IsDBNull(0)) rows.Add((r.GetString(0), r.GetInt64(1)));
                else (count, highest) = (r.GetInt64(1), r.GetInt64(2));
        if (count > 0 && count == highest - from)
        {
            settled = highest;
            foreach (var (pid, last) in rows)
            {
                settledNow[pid] = last;
                Raise(journaled, pid, last);
            }
        }
        else if (count > 0)
        {
            // A gap: each row with whether it is at or below the first missing value (then it is settled now), in one
            // snapshot. `settled` is the ordering value before the first one missing; the last line gives it even when
            // no row of the prefix is there.
            await using var cmd = Command(c, from, offset, """
                WITH r AS (SELECT ordering, persistence_id, sequence_number FROM journal WHERE ordering > @from AND ordering <= @to),
                s AS (SELECT COALESCE(MIN(p) FILTER (WHERE ordering <> p + 1), MAX(ordering), @from) AS settled
                      FROM (SELECT ordering, COALESCE(LAG(ordering) OVER (ORDER BY ordering), @from) AS p FROM r) x)
                SELECT r.persistence_id, MAX(r.sequence_number), MAX(r.ordering), s.settled FROM r CROSS JOIN s
                WHERE r.persistence_id LIKE @prefix GROUP BY r.persistence_id, r.ordering <= s.settled, s.settled
                UNION ALL SELECT NULL, 0, 0, settled FROM s
                """);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                settled = r.GetInt64(3);
                if (r.IsDBNull(0)) continue;
                var (pid, last) = (r.GetString(0), r.GetInt64(1));
                if (r.GetInt64(2) <= settled) settledNow[pid] = last;
                Raise(journaled, pid, last);
            }
        }
        foreach (var (_, slice) in _slices)
        foreach (var (pid, last) in slice)
            Raise(journaled, pid, last);
        if (settled > from)
        {
            _settled = settled;
            if (settledNow.Count > 0) _slices.Enqueue((settled, settledNow));
        }
        return journaled;
    }

    private DbCommand Command(DbConnection c, long from, long to, string sql)
    {
        var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        JournalDb.Parameter(cmd, "from", from);
        JournalDb.Parameter(cmd, "to", to);
        JournalDb.Parameter(cmd, "prefix", persistenceIdPrefix + "%");
        return cmd;
    }

    private static void Raise(Dictionary<string, long> map, string pid, long last)
    {
        if (!map.TryGetValue(pid, out var known) || known < last) map[pid] = last;
    }

    /// <summary>
    /// One sweep: the journal's recent rows (outside the gate), then, holding the projection's write gate, the events
    /// above its marks read by persistence id and applied by <paramref name="apply"/> (which must not move the offset).
    /// Answers how many were applied.
    /// </summary>
    public async Task<int> SweepAsync(SemaphoreSlim gate, Func<IEnumerable<string>, Task<IReadOnlyDictionary<string, long>>> marks,
        ReadModelWriter.JournalReader read, Func<IReadOnlyList<EventEnvelope>, Task> apply)
    {
        var journaled = await JournaledAsync();
        if (journaled.Count == 0) return 0;
        await gate.WaitAsync();
        try
        {
            var late = await MissingAsync(journaled, await marks(journaled.Keys), read);
            if (late.Count > 0) await apply(late);
            return late.Count;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// The events above each persistence id's mark up to what the journal holds, read by persistence id. Only ids with a
    /// mark are looked at (a projection whose marks are not complete leaves out the ids it cannot judge).
    /// </summary>
    public static async Task<List<EventEnvelope>> MissingAsync(IReadOnlyDictionary<string, long> journaled, IReadOnlyDictionary<string, long> marks,
        ReadModelWriter.JournalReader read, CancellationToken ct = default)
    {
        var late = new List<EventEnvelope>();
        foreach (var (pid, mark) in marks)
            if (journaled.TryGetValue(pid, out var last) && last > mark)
                late.AddRange(await read(pid, mark + 1, last, ct));
        return late;
    }
}
