using Akka.Actor;
using Akka.Event;
using Akka.Persistence.Query;

namespace Caas.Streams.ReadModel;

/// <summary>
/// How a projection without rows of its own to repair from (an outbound topic, a small table) writes in each entity's
/// order although the tag stream can pass a late-committed event by: every batch is planned by <see cref="OutboundOrder"/>
/// (the passed-by events read from the journal in front of the entity's next event; repeats dropped, or kept for an
/// idempotent table), applied, and its marks saved; and the <see cref="LateCommitSweep"/> (PostgreSQL only: SQLite's one
/// writer leaves no gaps) applies an entity's passed-by last events. Batches and sweeps take turns.
/// </summary>
public sealed class OrderedWriter
{
    /// <summary>Applies the events in order; <c>offset</c> is the tag stream's offset they belong to (a sweep's: the last one written).</summary>
    public delegate Task Apply(IReadOnlyList<EventEnvelope> events, long offset);

    private readonly OutboundOrder _order;
    private readonly LateCommitSweep? _sweep;
    private readonly Apply _apply;
    private readonly bool _table;
    private readonly ILoggingAdapter _log;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private long _written;

    /// <param name="table">
    /// A table projection: its writer stores the offset with its rows (the last envelope's), its writes are idempotent
    /// (a replay is written again, since a rebuild resets its offset), and a sweep waits for a first batch (it needs an
    /// offset to write with). Otherwise (a topic) repeats are not published again and the offset is saved with the marks.
    /// </param>
    public OrderedWriter(OutboundOrder order, LateCommitSweep? sweep, bool table, Apply apply, ILoggingAdapter log) =>
        (_order, _sweep, _table, _apply, _log) = (order, sweep, table, apply, log);

    public bool Sweeps => _sweep is not null;

    /// <summary>Writes a batch from the tag stream; answers its offset.</summary>
    public async Task<long> WriteAsync(IReadOnlyList<EventEnvelope> batch)
    {
        var last = ((Sequence)batch[^1].Offset).Value;
        await _gate.WaitAsync();
        try
        {
            var plan = await _order.PlanAsync(batch, keepRepeats: _table);
            Report(plan, "");
            if (plan.Events.Count > 0) await _apply(plan.Events, last);
            await _order.CommitAsync(plan, _table ? null : last);
            // Inside the gate: a sweep after this batch writes with this offset, not the one before it.
            Volatile.Write(ref _written, last);
        }
        finally
        {
            _gate.Release();
        }
        _sweep?.Written(last);
        return last;
    }

    /// <summary>One sweep: applies the passed-by last events it finds, without moving the offset; answers how many.</summary>
    public async Task<int> SweepAsync()
    {
        if (_sweep is null) return 0;
        await _gate.WaitAsync();
        try
        {
            var written = Volatile.Read(ref _written);
            if (_table && written == 0) return 0;
            var plan = await _order.SweepAsync(_sweep);
            if (plan.Events.Count == 0) return 0;
            Report(plan, " by the sweep");
            await _apply(plan.Events, written);
            await _order.CommitAsync(plan, null);
            return plan.Events.Count;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Runs a sweep every <see cref="ProjectionSettings.LateCommitSweep"/> in <paramref name="self"/> (a <see cref="SweepLateCommits"/>), when this writer sweeps.</summary>
    public Akka.Actor.ICancelable? ScheduleSweeps(ProjectionSettings settings, Akka.Actor.IActorRef self, Akka.Actor.IScheduler scheduler) =>
        Sweeps ? scheduler.ScheduleTellRepeatedlyCancelable(settings.LateCommitSweep, settings.LateCommitSweep, self, SweepLateCommits.Instance, self) : null;

    /// <summary>A sweep whose failure is logged (the next one comes at its time).</summary>
    public async Task SweepOrLogAsync()
    {
        try
        {
            await SweepAsync();
        }
        catch (Exception e)
        {
            _log.Warning("{0}: the late-commit sweep failed (the next one comes at its time): {1}", _order.Name, e.Message);
        }
    }

    /// <summary>The tag stream starts again from an offset of another writer's (a rebuild's swap): sweeps wait for its first batch.</summary>
    public async Task ResetAsync()
    {
        await _gate.WaitAsync();
        Volatile.Write(ref _written, 0);
        _gate.Release();
    }

    private void Report(OutboundOrder.Plan plan, string how)
    {
        foreach (var h in plan.Holes)
            _log.Warning("{0}: events {1}..{2} of {3} committed late (the tag stream had passed them); {4} in order from the journal{5}",
                _order.Name, h.From, h.To, h.PersistenceId, _table ? "applied" : "published", how);
    }

    /// <summary>The events, the last one carrying <paramref name="offset"/> (table writers store the last envelope's offset).</summary>
    public static IReadOnlyList<EventEnvelope> AtOffset(IReadOnlyList<EventEnvelope> events, long offset)
    {
        var e = events[^1];
        if (e.Offset is Sequence s && s.Value == offset) return events;
        var list = events.ToList();
        list[^1] = new EventEnvelope(Offset.Sequence(offset), e.PersistenceId, e.SequenceNr, e.Event, e.Timestamp, e.Tags);
        return list;
    }

    /// <summary>
    /// The writer of a table projection with late-commit repair (<paramref name="repair"/>; none: null, write as is):
    /// marks in the repair's store, holes read from the journal by persistence id, and a sweep over the entities with
    /// the repair's prefix when it can open the journal and <see cref="ProjectionSettings.LateCommitSweep"/> is on.
    /// </summary>
    public static OrderedWriter? ForTable(string name, TagRepair? repair, ProjectionSettings settings, Akka.Actor.ActorSystem system,
        Akka.Streams.IMaterializer materializer, Func<IReadOnlyList<EventEnvelope>, Task> write, ILoggingAdapter log)
    {
        if (repair is null) return null;
        var sweep = repair.OpenJournal is not null && settings.LateCommitSweep > TimeSpan.Zero
            ? new LateCommitSweep(repair.OpenJournal, settings.LateCommitWindow, repair.PersistenceIdPrefix)
            : null;
        return new OrderedWriter(new OutboundOrder(repair.Store, name, ProjectionRunner.ByPersistenceId(system, materializer)), sweep, table: true,
            (events, offset) => write(AtOffset(events, offset)), log);
    }
}

/// <summary>The message that runs one late-commit sweep in a projection's actor.</summary>
public sealed class SweepLateCommits
{
    public static readonly SweepLateCommits Instance = new();
}

/// <summary>
/// Late-commit repair for a table projection (PostgreSQL's parallel journal writers; see <see cref="OutboundOrder"/>):
/// marks per entity in <paramref name="Store"/>, holes read by persistence id, and, with <paramref name="OpenJournal"/>,
/// a sweep over the entities whose persistence ids start with <paramref name="PersistenceIdPrefix"/>.
/// </summary>
public sealed record TagRepair(ReadModelStore Store, string PersistenceIdPrefix, Func<CancellationToken, Task<System.Data.Common.DbConnection>>? OpenJournal);
