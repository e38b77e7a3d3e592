using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Akka;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.EventJournal;
using Caas.Actors.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Caas.Streams.ReadModel;

/// <summary>
/// The one way a projection follows the journal: events by tag from the projection's stored offset, in batches
/// (size or time, whichever comes first), handed to the projection's writer one batch at a time, restarted with
/// backoff from the stored offset after a failure. The writer stores the offset with the batch (in the same
/// transaction for tables, after the broker's acknowledgement for topics), so a crash replays and never drops.
/// Every projection exports the same figures: events written, batches and their time, offset, lag, restarts.
/// </summary>
public static class ProjectionRunner
{
    private static readonly Counter Events = Metrics.CreateCounter("caas_projection_events_total",
        "Events written by a projection.", "projection");
    private static readonly Histogram BatchSeconds = Metrics.CreateHistogram("caas_projection_batch_seconds",
        "Time a projection took to write one batch (with its offset).", new HistogramConfiguration
        {
            LabelNames = ["projection"],
            Buckets = Histogram.ExponentialBuckets(0.001, 2, 14),
        });
    private static readonly Gauge Offset = Metrics.CreateGauge("caas_projection_offset",
        "The last journal offset a projection has written.", "projection");
    private static readonly Counter Restarts = Metrics.CreateCounter("caas_projection_restarts_total",
        "Projection stream restarts after a failure.", "projection");
    private static readonly Gauge Lag = Metrics.CreateGauge("caas_projection_lag_events",
        "Journal rows written after the projection's offset (the journal's head offset minus the projection's).", "projection");
    private static readonly Gauge Head = Metrics.CreateGauge("caas_journal_head_offset", "The journal's highest ordering value.");

    /// <summary>The offset each projection running on this node has written up to (for its lag).</summary>
    private static readonly ConcurrentDictionary<string, long> Written = new(StringComparer.Ordinal);

    /// <summary>
    /// Starts projection <paramref name="name"/> over the events tagged <paramref name="tag"/>. <paramref name="write"/>
    /// gets each batch in journal order and must store the batch's last offset before it returns.
    /// </summary>
    public static UniqueKillSwitch Run(string name, string tag, ActorSystem system, ProjectionSettings settings,
        Func<Task<long>> loadOffset, Func<IReadOnlyList<EventEnvelope>, Task> write, IMaterializer materializer, ILoggingAdapter log)
    {
        var restart = RestartSettings.Create(settings.MinBackoff, settings.MaxBackoff, 0.2);
        return RestartSource.WithBackoff(() =>
                Source.FromTask(loadOffset())
                    .ConcatMany(offset =>
                    {
                        log.Info("Projection {0} starting from offset {1}", name, offset);
                        Written[name] = offset;
                        // Resolved here, inside the restart: the plugin's read journal waits (5 s) for its write journal when
                        // first created, which a loaded node at start can miss; that failure is then retried with backoff
                        // instead of killing the projection.
                        return EventsByTag(system, tag, offset);
                    })
                    .GroupedWithin(settings.BatchSize, settings.BatchWindow)
                    .SelectAsync(1, async batch =>
                    {
                        var list = batch as IReadOnlyList<EventEnvelope> ?? batch.ToList();
                        using (BatchSeconds.WithLabels(name).NewTimer())
                            await write(list);
                        var last = ((Sequence)list[^1].Offset).Value;
                        Events.WithLabels(name).Inc(list.Count);
                        Offset.WithLabels(name).Set(last);
                        Written[name] = last;
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
            .Run(materializer);
    }

    /// <summary>
    /// Events tagged <paramref name="tag"/> after <paramref name="offset"/>, live: from the node's own
    /// <see cref="JournalTagFeed"/> (SQLite or PostgreSQL; unless <c>caas.projections.feed = plugin</c>), else from the
    /// plugin's read journal.
    /// </summary>
    public static Source<EventEnvelope, NotUsed> EventsByTag(ActorSystem system, string tag, long offset) =>
        TagFeed(system) is { } feed
            ? feed.EventsByTag(tag, offset)
            : ReadJournal(system).EventsByTag(tag, Akka.Persistence.Query.Offset.Sequence(offset));

    private static readonly ConditionalWeakTable<ActorSystem, StrongBox<JournalTagFeed?>> Feeds = new();

    /// <summary>The node's direct tag feed on its journal's database; null when configured off (or another database).</summary>
    public static JournalTagFeed? TagFeed(ActorSystem system) => Feeds.GetValue(system, s =>
    {
        var config = s.Settings.Config;
        var query = config.GetConfig("akka.persistence.query.journal.sql");
        var provider = query?.GetString("provider-name", "") ?? "";
        var direct = !string.Equals(config.GetString("caas.projections.feed", "direct"), "plugin", StringComparison.OrdinalIgnoreCase);
        var separator = config.GetString("akka.persistence.journal.caas.tag-separator", ";");
        JournalTagFeed? feed = null;
        if (direct && provider.StartsWith("SQLite", StringComparison.OrdinalIgnoreCase))
            feed = new SqliteTagFeed((ExtendedActorSystem)s, query!.GetString("connection-string"),
                query.GetTimeSpan("refresh-interval", TimeSpan.FromMilliseconds(100)), query.GetInt("max-buffer-size", 2000), tagSeparator: separator);
        else if (direct && provider.StartsWith("PostgreSQL", StringComparison.OrdinalIgnoreCase))
        {
            // A gap is waited for as long as the plugin's sequence actor waits (query-delay x max-tries).
            var gapWait = query!.GetTimeSpan("journal-sequence-retrieval.query-delay", TimeSpan.FromMilliseconds(100)) *
                          Math.Max(1, query.GetInt("journal-sequence-retrieval.max-tries", 20));
            var postgres = new PostgresTagFeed((ExtendedActorSystem)s, query.GetString("connection-string"),
                query.GetTimeSpan("refresh-interval", TimeSpan.FromMilliseconds(100)), gapWait, query.GetInt("max-buffer-size", 2000),
                tagSeparator: separator);
            s.RegisterOnTermination(() => postgres.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5)));
            feed = postgres;
        }
        return new StrongBox<JournalTagFeed?>(feed);
    }).Value;

    /// <summary>The read journal, created on first use (and again after a failed creation).</summary>
    public static SqlReadJournal ReadJournal(Akka.Actor.ActorSystem system) =>
        PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);

    /// <summary>
    /// A persistence id's events by sequence number, straight from the journal (the per-entity order is gap-free): how
    /// the projections read the events their tag stream passed by (late commits).
    /// </summary>
    public static ReadModelWriter.JournalReader ByPersistenceId(Akka.Actor.ActorSystem system, IMaterializer materializer) =>
        async (persistenceId, from, to, ct) =>
            await ReadJournal(system).CurrentEventsByPersistenceId(persistenceId, from, to).RunWith(Sink.Seq<EventEnvelope>(), materializer).WaitAsync(ct);

    /// <summary>What projection <paramref name="name"/> has written on this node since start: batches, events, seconds spent writing.</summary>
    public static (long Batches, double Events, double Seconds) Totals(string name)
    {
        var batches = BatchSeconds.WithLabels(name);
        return (batches.Count, Events.WithLabels(name).Value, batches.Sum);
    }

    /// <summary>The offset the projection last wrote on this node; null when it does not run here.</summary>
    public static long? WrittenOffset(string name) => Written.TryGetValue(name, out var o) ? o : null;

    /// <summary>Sets the journal's head and every local projection's lag behind it.</summary>
    public static void ObserveHead(long head)
    {
        Head.Set(head);
        foreach (var (name, offset) in Written)
        {
            // The enrichment projection reads only its tagged rows, so rows behind the head say nothing about it; it
            // exports its own lag (caas_enrichment_lag_messages).
            if (name == Pipeline.EnrichmentProjection.Name) continue;
            Lag.WithLabels(name).Set(Math.Max(0, head - offset));
        }
    }
}

/// <summary>
/// Samples the journal's head offset once a second on a node that runs projections, so each projection's lag is
/// exported as rows behind the head (one indexed MAX query; nothing when the journal is unreachable).
/// </summary>
public sealed class ProjectionLagSampler(StorageOptions storage, ILogger<ProjectionLagSampler> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var warned = false;
        var deferred = new Pipeline.DeferredLag();
        while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            try
            {
                await using var c = await JournalDb.OpenAsync(storage, stopping);
                if (!await JournalDb.TableExistsAsync(c, storage.IsPostgres, "journal", stopping)) continue;
                var head = await JournalDb.HeadAsync(c, stopping);
                ProjectionRunner.ObserveHead(head);
                if (ProjectionRunner.WrittenOffset(Pipeline.EnrichmentProjection.Name) is { } enriched)
                    await deferred.SampleGaugesAsync(c, enriched, head, stopping);
                warned = false;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                if (!warned) logger.LogWarning("Projection lag: the journal's head could not be read: {Reason}", e.Message);
                warned = true;
            }
    }
}

/// <summary>
/// A projection with nothing but its stream: events tagged <c>tag</c> through <see cref="ProjectionRunner"/> into
/// <c>write</c>, from the offset <c>loadOffset</c> answers, for as long as the actor lives (a cluster singleton).
/// Projections with more to do (a rebuild, a swap) keep their own actor.
/// </summary>
public sealed class TagProjection : ReceiveActor
{
    private readonly string _name, _tag;
    private readonly ProjectionSettings _settings;
    private readonly Func<Task<long>> _loadOffset;
    private readonly Func<IReadOnlyList<EventEnvelope>, Task> _write;
    private UniqueKillSwitch? _killSwitch;
    private readonly IMaterializer _materializer = Context.Materializer();
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly OrderedWriter? _ordered;
    private ICancelable? _sweeping;

    /// <param name="repair">Late-commit repair (PostgreSQL), or none: see <see cref="OrderedWriter.ForTable"/>.</param>
    public TagProjection(string name, string tag, ProjectionSettings settings, Func<Task<long>> loadOffset, Func<IReadOnlyList<EventEnvelope>, Task> write,
        TagRepair? repair = null)
    {
        (_name, _tag, _settings, _loadOffset, _write) = (name, tag, settings, loadOffset, write);
        _ordered = OrderedWriter.ForTable(name, repair, settings, Context.System, _materializer, write, _log);
        ReceiveAsync<SweepLateCommits>(_ => _ordered!.SweepOrLogAsync());
        ReceiveAny(_ => { });
    }

    public static Props PropsFor(string name, string tag, ProjectionSettings settings, Func<Task<long>> loadOffset,
        Func<IReadOnlyList<EventEnvelope>, Task> write, TagRepair? repair = null) =>
        Props.Create(() => new TagProjection(name, tag, settings, loadOffset, write, repair));

    protected override void PreStart()
    {
        var system = Context.System;
        var ordered = _ordered;
        _killSwitch = ProjectionRunner.Run(_name, _tag, system, _settings, _loadOffset,
            ordered is null ? _write : batch => ordered.WriteAsync(batch), _materializer, _log);
        if (ordered is not null)
            _sweeping = ordered.ScheduleSweeps(_settings, Self, Context.System.Scheduler);
    }

    protected override void PostStop()
    {
        _sweeping?.Cancel();
        _killSwitch?.Shutdown();
    }
}
