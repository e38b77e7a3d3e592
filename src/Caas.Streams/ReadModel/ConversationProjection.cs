using Akka;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Conversations;
using Prometheus;

namespace Caas.Streams.ReadModel;

/// <summary>
/// The read-model projection: conversation events by tag from the journal, through <see cref="ProjectionRunner"/>
/// (batches by size or time, restart with backoff from the stored offset), each batch written with its offset in one
/// transaction. It runs as a cluster singleton; a crash replays and never drops.
/// </summary>
public sealed class ConversationProjection : ReceiveActor
{
    private static readonly Counter Conflicts = Metrics.CreateCounter("caas_projection_message_id_conflicts_total",
        "Journal rows stored whose message id the read model already held under another seq (stored, never dropped).", "projection");
    private static readonly Counter HolesFilled = Metrics.CreateCounter("caas_projection_late_events_total",
        "Events the events-by-tag stream passed by (committed after later ones were read), read by persistence id instead.", "projection");

    private readonly ReadModelWriter _writer;
    private readonly ProjectionSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private UniqueKillSwitch? _killSwitch;
    // A rebuild stops the stream, but a batch already in SelectAsync would still write (and store its offset) after
    // the tables were emptied: writes pass this gate, and a write of an older generation is dropped.
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private int _generation;
    // Not created in the constructor: a read journal that fails to start (see ProjectionRunner) must not kill the actor.
    private readonly ActorSystem _system = Context.System;
    private readonly IMaterializer _materializer = Context.Materializer();

    // Late-commit sweep (null: none, as on SQLite, whose single writer leaves no ordering gaps).
    private readonly LateCommitSweep? _lateCommits;
    private ICancelable? _sweeping;

    private sealed class Sweep
    {
        public static readonly Sweep Instance = new();
    }

    public ConversationProjection(ReadModelWriter writer, ProjectionSettings settings,
        Func<CancellationToken, Task<System.Data.Common.DbConnection>>? openJournal = null)
    {
        _writer = writer;
        _settings = settings;
        if (openJournal is not null && settings.LateCommitSweep > TimeSpan.Zero) _lateCommits = new LateCommitSweep(openJournal, settings.LateCommitWindow);
        ReceiveAsync<Sweep>(async _ =>
        {
            try
            {
                await SweepAsync();
            }
            catch (Exception e)
            {
                _log.Warning("Projection {0}: the late-commit sweep failed (next one in {1}): {2}", ReadModelWriter.ProjectionName,
                    _settings.LateCommitSweep, e.Message);
            }
        });
        ReceiveAsync<Caas.Streams.Audit.RebuildProjection>(async r =>
        {
            var replyTo = Sender;
            _killSwitch?.Shutdown();
            Interlocked.Increment(ref _generation);
            await _writeGate.WaitAsync();
            try
            {
                await _writer.ResetAsync(ReadModelWriter.ProjectionName);
            }
            finally
            {
                _writeGate.Release();
            }
            _log.Info("Projection {0} emptied its read model; rebuilding from the journal's start", r.Name);
            Start();
            replyTo.Tell(new Caas.Streams.Audit.RebuildStarted(r.Name));
        });
        ReceiveAny(_ => { });
    }

    public static Props PropsFor(ReadModelWriter writer, ProjectionSettings settings,
        Func<CancellationToken, Task<System.Data.Common.DbConnection>>? openJournal = null) =>
        Props.Create(() => new ConversationProjection(writer, settings, openJournal));

    protected override void PreStart()
    {
        Start();
        if (_lateCommits is not null)
            _sweeping = Context.System.Scheduler.ScheduleTellRepeatedlyCancelable(_settings.LateCommitSweep, _settings.LateCommitSweep, Self, Sweep.Instance, Self);
    }

    /// <summary>
    /// Applies conversation events in the journal at or below the written offset that the read model lacks (see
    /// <see cref="LateCommitSweep"/>), without moving the offset.
    /// </summary>
    private async Task SweepAsync()
    {
        var applied = await _lateCommits!.SweepAsync(_writeGate, ids => _writer.MarksAsync(ids), ReadMissingAsync,
            late => _writer.WriteAsync(late, ReadModelWriter.ProjectionName, default, null, storeOffset: false));
        if (applied == 0) return;
        _log.Warning("Projection {0}: {1} events committed late (the tag stream had passed them); applied from the journal",
            ReadModelWriter.ProjectionName, applied);
        HolesFilled.WithLabels(ReadModelWriter.ProjectionName).Inc(applied);
    }

    private void Start()
    {
        var generation = Volatile.Read(ref _generation);
        var name = ReadModelWriter.ProjectionName;
        var log = _log;
        _killSwitch = ProjectionRunner.Run(name, ConversationActor.KindTag, _system, _settings, () => _writer.LoadOffsetAsync(name),
            async list =>
            {
                await _writeGate.WaitAsync();
                try
                {
                    if (generation != Volatile.Read(ref _generation)) return;
                    var report = await _writer.WriteAsync(list, name, default, ReadMissingAsync);
                    foreach (var c in report.Conflicts)
                    {
                        log.Error("Projection {0}: message id {1} of tenant {2} is in the journal twice ({3}); both rows kept",
                            name, c.MessageId, c.Tenant, $"{c.FirstConversation} seq {c.FirstSeq} and {c.Conversation} seq {c.Seq}");
                        Conflicts.WithLabels(name).Inc();
                    }
                    foreach (var h in report.Holes)
                    {
                        log.Warning("Projection {0}: events {1}..{2} of {3} committed late (the tag stream had passed them); applied from the journal",
                            h.From, h.To, h.PersistenceId);
                        HolesFilled.WithLabels(name).Inc(h.To - h.From + 1);
                    }
                }
                finally
                {
                    _writeGate.Release();
                }
                _lateCommits?.Written(((Sequence)list[^1].Offset).Value);
            }, _materializer, log);
    }

    private Task<IReadOnlyList<EventEnvelope>> ReadMissingAsync(string persistenceId, long from, long to, CancellationToken ct) =>
        ProjectionRunner.ByPersistenceId(_system, _materializer)(persistenceId, from, to, ct);

    protected override void PostStop()
    {
        _sweeping?.Cancel();
        _killSwitch?.Shutdown();
    }
}

/// <summary>Batching and backoff of a projection (HOCON <c>caas.projections</c>).</summary>
/// <param name="LateCommitSweep">How often the read-model projection looks for journal rows committed behind its offset (zero: never).</param>
/// <param name="LateCommitWindow">How far back (in time, as offsets seen) that look goes: a row committed later than this after its ordering value was drawn is only repaired by its entity's next event.</param>
public sealed record ProjectionSettings(int BatchSize, TimeSpan BatchWindow, TimeSpan MinBackoff, TimeSpan MaxBackoff,
    TimeSpan LateCommitSweep = default, TimeSpan LateCommitWindow = default)
{
    public static ProjectionSettings Default { get; } = new(1000, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(10),
        TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(2));

    public static ProjectionSettings From(Akka.Configuration.Config config)
    {
        var c = config.GetConfig("caas.projections");
        if (c is null || c.IsEmpty) return Default;
        return new ProjectionSettings(c.GetInt("batch-size", Default.BatchSize), c.GetTimeSpan("batch-window", Default.BatchWindow),
            c.GetTimeSpan("min-backoff", Default.MinBackoff), c.GetTimeSpan("max-backoff", Default.MaxBackoff),
            c.GetTimeSpan("late-commit-sweep", Default.LateCommitSweep), c.GetTimeSpan("late-commit-window", Default.LateCommitWindow));
    }
}
