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
/// The read-model projection: conversation events by tag from the journal, in batches (size or time), written
/// with their offset in one transaction. It runs as a cluster singleton; on failure it restarts with backoff from
/// the stored offset, so a crash replays and never drops.
/// </summary>
public sealed class ConversationProjection : ReceiveActor
{
    private static readonly Counter Events = Metrics.CreateCounter("caas_projection_events_total",
        "Events written by a projection.", "projection");
    private static readonly Gauge Offset = Metrics.CreateGauge("caas_projection_offset",
        "The last journal offset a projection has written.", "projection");
    private static readonly Counter Restarts = Metrics.CreateCounter("caas_projection_restarts_total",
        "Projection stream restarts after a failure.", "projection");
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
    private readonly SqlReadJournal _journal = PersistenceQuery.Get(Context.System).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);
    private readonly IMaterializer _materializer = Context.Materializer();

    public ConversationProjection(ReadModelWriter writer, ProjectionSettings settings)
    {
        _writer = writer;
        _settings = settings;
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

    public static Props PropsFor(ReadModelWriter writer, ProjectionSettings settings) =>
        Props.Create(() => new ConversationProjection(writer, settings));

    protected override void PreStart() => Start();

    private void Start()
    {
        var generation = Volatile.Read(ref _generation);
        var journal = _journal;
        var name = ReadModelWriter.ProjectionName;
        var restart = RestartSettings.Create(_settings.MinBackoff, _settings.MaxBackoff, 0.2);
        var log = _log;
        _killSwitch = RestartSource.WithBackoff(() =>
                Source.FromTask(_writer.LoadOffsetAsync(name))
                    .ConcatMany(offset =>
                    {
                        log.Info("Projection {0} starting from offset {1}", name, offset);
                        return journal.EventsByTag(ConversationActor.KindTag, Akka.Persistence.Query.Offset.Sequence(offset));
                    })
                    .GroupedWithin(_settings.BatchSize, _settings.BatchWindow)
                    .SelectAsync(1, async batch =>
                    {
                        var list = batch.ToList();
                        await _writeGate.WaitAsync();
                        try
                        {
                            if (generation != Volatile.Read(ref _generation)) return NotUsed.Instance;
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
                        Events.WithLabels(name).Inc(list.Count);
                        Offset.WithLabels(name).Set(((Sequence)list[^1].Offset).Value);
                        return NotUsed.Instance;
                    })
                    .SelectError(ex =>
                    {
                        log.Warning("Projection {0} failed, restarting from its stored offset: {1}", name, ex.Message);
                        Restarts.WithLabels(name).Inc();
                        return ex;
                    }),
                restart)
            .ViaMaterialized(KillSwitches.Single<NotUsed>(), Keep.Right)
            .To(Sink.Ignore<NotUsed>())
            .Run(_materializer);
    }

    /// <summary>A persistence id's events by sequence number, straight from the journal (the per-entity order is gap-free).</summary>
    private async Task<IReadOnlyList<EventEnvelope>> ReadMissingAsync(string persistenceId, long from, long to, CancellationToken ct) =>
        await _journal.CurrentEventsByPersistenceId(persistenceId, from, to).RunWith(Sink.Seq<EventEnvelope>(), _materializer).WaitAsync(ct);

    protected override void PostStop() => _killSwitch?.Shutdown();
}

/// <summary>Batching and backoff of a projection (HOCON <c>caas.projections</c>).</summary>
public sealed record ProjectionSettings(int BatchSize, TimeSpan BatchWindow, TimeSpan MinBackoff, TimeSpan MaxBackoff)
{
    public static ProjectionSettings Default { get; } = new(1000, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(10));

    public static ProjectionSettings From(Akka.Configuration.Config config)
    {
        var c = config.GetConfig("caas.projections");
        if (c is null || c.IsEmpty) return Default;
        return new ProjectionSettings(c.GetInt("batch-size", Default.BatchSize), c.GetTimeSpan("batch-window", Default.BatchWindow),
            c.GetTimeSpan("min-backoff", Default.MinBackoff), c.GetTimeSpan("max-backoff", Default.MaxBackoff));
    }
}
