using System.Data.Common;
using Akka.Persistence.Query;
using Caas.Actors.Hosting;

namespace Caas.Streams.ReadModel;

/// <summary>
/// Finds conversation events that committed in the journal after a projection's tag stream had read past their ordering
/// value (parallel writers on PostgreSQL): at each <see cref="FindAsync"/>, the journal rows with ordering values between
/// the offset written one <c>window</c> ago and the offset written now, grouped by persistence id, against the
/// projection's progress marks. An event below a mark was applied; one above it was passed by. A late event that is not
/// its conversation's last is repaired anyway by the next event (the hole shows); this finds the last ones too.
/// Used by the read-model and search projections, each with its own marks.
/// </summary>
/// <param name="openJournal">Opens the journal's database.</param>
/// <param name="window">How far back (in time, as offsets written) a sweep looks.</param>
/// <param name="persistenceIdPrefix">The entities it looks at (their persistence ids' prefix): conversations unless told.</param>
public sealed class LateCommitSweep(Func<CancellationToken, Task<DbConnection>> openJournal, TimeSpan window, string persistenceIdPrefix = "conversation|")
{
    private long _writtenOffset;
    private readonly Queue<(DateTimeOffset At, long Offset)> _sweeps = new();

    /// <summary>The projection wrote up to this offset (from its stream's writes, any thread).</summary>
    public void Written(long offset) => Volatile.Write(ref _writtenOffset, offset);

    /// <summary>
    /// The journal's highest sequence number per conversation persistence id among the rows in the window (the database
    /// read happens here, outside the projection's write gate). Call from one thread (the projection actor).
    /// </summary>
    public async Task<IReadOnlyDictionary<string, long>> JournaledAsync(CancellationToken ct = default)
    {
        var now = DateTimeOffset.UtcNow;
        var offset = Volatile.Read(ref _writtenOffset);
        _sweeps.Enqueue((now, offset));
        while (_sweeps.Count > 1 && _sweeps.ElementAt(1).At <= now - window) _sweeps.Dequeue();
        var from = _sweeps.Peek().Offset;
        var journaled = new Dictionary<string, long>(StringComparer.Ordinal);
        if (offset == 0) return journaled;
        await using var c = await openJournal(ct);
        await using var cmd = c.CreateCommand();
        // Bounded below by the window, so each sweep reads only recent rows (ordering is the journal's key).
        cmd.CommandText = "SELECT persistence_id, MAX(sequence_number) FROM journal WHERE ordering > @from AND ordering <= @to " +
                          "AND persistence_id LIKE @prefix GROUP BY persistence_id";
        JournalDb.Parameter(cmd, "from", Math.Max(0, from - 1));
        JournalDb.Parameter(cmd, "to", offset);
        JournalDb.Parameter(cmd, "prefix", persistenceIdPrefix + "%");
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) journaled[r.GetString(0)] = r.GetInt64(1);
        return journaled;
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
