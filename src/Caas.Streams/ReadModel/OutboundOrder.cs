using System.Data.Common;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence.Query;
using Prometheus;

namespace Caas.Streams.ReadModel;

/// <summary>
/// Keeps an outbound topic complete and in each entity's order although the events-by-tag stream can pass an event by.
/// On PostgreSQL the journal has parallel writers: a transaction that commits after rows with higher ordering values
/// were read, and later than the plugin's gap wait (query-delay x max-tries), is never delivered by the tag stream. The
/// read model and the search index repair that from their own marks; a topic has no rows to repair, so this keeps the
/// marks for it: per projection and persistence id, the highest sequence number the broker acknowledged
/// (<c>rm_outbound_progress</c>, saved with the projection's offset in one transaction, after the acknowledgement).
/// <list type="bullet">
/// <item>An event above its entity's mark + 1 brings the events between them in front of it, read by persistence id
/// (an entity writes in order, so they are committed once a later one is visible): the topic stays in order.</item>
/// <item>An event at or below its mark (a batch replayed after a crash or restart) is not published again.</item>
/// <item>An entity's last event, passed by with nothing after it, is found by a <see cref="LateCommitSweep"/> over the
/// recent journal rows and published then (still in order: nothing after it was published).</item>
/// </list>
/// Marks are known from the first batch the projection published with this table (its "tracked since" row, key ''):
/// a projection that starts from offset 0 knows every entity (a missing mark is 0); one that was already running when
/// the table appeared knows only the entities it has published since (for the others the first event it sees sets the mark).
/// </summary>
public sealed class OutboundOrder(ReadModelStore store, string name, ReadModelWriter.JournalReader read)
{
    // The same counters as every other projection's (labelled by projection): the outbound topics and the table
    // projections that share this class are projections like the read model, not Kafka clients.
    private static readonly Counter LateEvents = Metrics.CreateCounter("caas_projection_late_events_total",
        "Events the events-by-tag stream passed by (committed after later ones were read), read by persistence id instead.", "projection");
    private static readonly Counter Repeats = Metrics.CreateCounter("caas_projection_repeats_skipped_total",
        "Events of a replayed batch a projection had already written or published (not written again).", "projection");

    /// <summary>The key of the row that holds the offset from which the marks are complete.</summary>
    private const string TrackedSinceKey = "";

    public string Name => name;

    /// <summary>What to publish for a batch, and the marks to save once the broker has acknowledged it.</summary>
    /// <param name="Events">The events to publish, in order: the batch without repeats, each hole's events in front of the event that showed it.</param>
    /// <param name="Marks">The raised marks (persistence id → highest sequence number in <paramref name="Events"/>).</param>
    /// <param name="Holes">The holes filled from the journal.</param>
    /// <param name="TrackedSince">Set when this batch starts the marks: the offset they are complete from.</param>
    public sealed record Plan(IReadOnlyList<EventEnvelope> Events, IReadOnlyDictionary<string, long> Marks, IReadOnlyList<Hole> Holes,
        long? TrackedSince);

    /// <summary>
    /// Orders a batch from the tag stream against the marks: holes filled from the journal, repeats out (kept, with
    /// <paramref name="keepRepeats"/>, for a table projection whose writes are idempotent and whose offset may have been
    /// reset for a rebuild).
    /// </summary>
    public async Task<Plan> PlanAsync(IReadOnlyList<EventEnvelope> batch, CancellationToken ct = default, bool keepRepeats = false)
    {
        var ids = batch.Select(e => e.PersistenceId).ToHashSet(StringComparer.Ordinal);
        var (marks, trackedSince) = await LoadAsync(ids, ct);
        long? starts = null;
        if (trackedSince is null)
        {
            // The first batch with marks: complete from the start when the projection starts from the journal's start.
            await using var c = await store.OpenAsync(ct);
            await using var cmd = ReadModelWriter.Command(c, null, "SELECT last_offset FROM rm_projection_offsets WHERE name = @name", ("name", name));
            starts = await cmd.ExecuteScalarAsync(ct) is { } v and not DBNull ? Convert.ToInt64(v) : 0L;
            trackedSince = starts;
        }
        var complete = trackedSince == 0;
        var events = new List<EventEnvelope>(batch.Count);
        var holes = new List<Hole>();
        var raised = new Dictionary<string, long>(StringComparer.Ordinal);
        var repeats = 0;
        foreach (var e in batch)
        {
            var pid = e.PersistenceId;
            long? mark = raised.TryGetValue(pid, out var r) ? r : marks.TryGetValue(pid, out var m) ? m : complete ? 0 : null;
            if (mark is { } known)
            {
                if (e.SequenceNr <= known)
                {
                    if (keepRepeats) events.Add(e);
                    else repeats++;
                    continue;
                }
                if (e.SequenceNr > known + 1)
                {
                    var hole = new Hole(pid, known + 1, e.SequenceNr - 1);
                    holes.Add(hole);
                    events.AddRange((await read(pid, hole.From, hole.To, ct)).Where(x => x.SequenceNr >= hole.From && x.SequenceNr <= hole.To)
                        .OrderBy(x => x.SequenceNr));
                }
            }
            events.Add(e);
            raised[pid] = e.SequenceNr;
        }
        if (repeats > 0) Repeats.WithLabels(name).Inc(repeats);
        if (holes.Count > 0) LateEvents.WithLabels(name).Inc(holes.Sum(h => h.To - h.From + 1));
        return new Plan(events, raised, holes, starts);
    }

    /// <summary>
    /// The events a sweep found at or below the offset whose entities' marks are behind the journal (their last events
    /// were passed by), in order. Only entities with a known mark are judged.
    /// </summary>
    public async Task<Plan> SweepAsync(LateCommitSweep sweep, CancellationToken ct = default)
    {
        var journaled = await sweep.JournaledAsync(ct);
        if (journaled.Count == 0) return new Plan([], new Dictionary<string, long>(), [], null);
        var (marks, trackedSince) = await LoadAsync(journaled.Keys.ToHashSet(StringComparer.Ordinal), ct);
        if (trackedSince == 0)
            foreach (var id in journaled.Keys) marks.TryAdd(id, 0);
        var late = await LateCommitSweep.MissingAsync(journaled, marks, read, ct);
        var raised = new Dictionary<string, long>(StringComparer.Ordinal);
        var holes = new List<Hole>();
        foreach (var group in late.GroupBy(e => e.PersistenceId))
        {
            raised[group.Key] = group.Max(e => e.SequenceNr);
            holes.Add(new Hole(group.Key, group.Min(e => e.SequenceNr), raised[group.Key]));
        }
        if (late.Count > 0) LateEvents.WithLabels(name).Inc(late.Count);
        return new Plan(late, raised, holes, null);
    }

    /// <summary>After the broker acknowledged a plan's events: its marks (never lowered) and, when given, the offset, in one transaction.</summary>
    public async Task CommitAsync(Plan plan, long? offset, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        using var turn = await store.WriteTurnAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        var marks = new Dictionary<string, long>(plan.Marks, StringComparer.Ordinal);
        if (plan.TrackedSince is { } since)
            await ExecuteAsync(c, tx, "INSERT INTO rm_outbound_progress (name, persistence_id, sequence_nr) VALUES (@n, @p, @s) ON CONFLICT DO NOTHING",
                ct, ("n", name), ("p", TrackedSinceKey), ("s", since));
        const string upsert = " ON CONFLICT (name, persistence_id) DO UPDATE SET sequence_nr = excluded.sequence_nr " +
                              "WHERE rm_outbound_progress.sequence_nr < excluded.sequence_nr";
        if (marks.Count > 0)
        {
            if (store.IsPostgres)
                await ExecuteAsync(c, tx, "INSERT INTO rm_outbound_progress (name, persistence_id, sequence_nr) SELECT @n, * FROM unnest(@ps, @ss)" + upsert,
                    ct, ("n", name), ("ps", marks.Keys.ToArray()), ("ss", marks.Values.ToArray()));
            else
            {
                await using var one = ReadModelWriter.Command(c, tx, "INSERT INTO rm_outbound_progress (name, persistence_id, sequence_nr) VALUES (@n, @p, @s)" + upsert,
                    ("n", name), ("p", string.Empty), ("s", 0L));
                await one.PrepareAsync(ct);
                foreach (var (pid, seq) in marks)
                {
                    one.Parameters[1].Value = pid;
                    one.Parameters[2].Value = seq;
                    await one.ExecuteNonQueryAsync(ct);
                }
            }
        }
        if (offset is { } o)
            await ExecuteAsync(c, tx, "INSERT INTO rm_projection_offsets (name, last_offset) VALUES (@n, @o) " +
                                      "ON CONFLICT (name) DO UPDATE SET last_offset = excluded.last_offset", ct, ("n", name), ("o", o));
        await tx.CommitAsync(ct);
    }

    /// <summary>The marks of these persistence ids (only those with one), and the offset the marks are complete from (null: none kept yet).</summary>
    public async Task<(Dictionary<string, long> Marks, long? TrackedSince)> LoadAsync(HashSet<string> ids, CancellationToken ct = default)
    {
        var marks = new Dictionary<string, long>(StringComparer.Ordinal);
        long? since = null;
        await using var c = await store.OpenAsync(ct);
        foreach (var chunk in ids.Append(TrackedSinceKey).Chunk(200))
        {
            var names = chunk.Select((_, i) => "@p" + i).ToArray();
            await using var cmd = ReadModelWriter.Command(c, null,
                $"SELECT persistence_id, sequence_nr FROM rm_outbound_progress WHERE name = @n AND persistence_id IN ({string.Join(", ", names)})",
                [("n", name), .. chunk.Select((id, i) => ("p" + i, (object?)id))]);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                if (r.GetString(0) == TrackedSinceKey) since = r.GetInt64(1);
                else marks[r.GetString(0)] = r.GetInt64(1);
            }
        }
        return (marks, since);
    }

    private static async Task ExecuteAsync(DbConnection c, DbTransaction tx, string sql, CancellationToken ct, params (string Name, object? Value)[] args)
    {
        await using var cmd = ReadModelWriter.Command(c, tx, sql, args);
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
