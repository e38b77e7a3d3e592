using Akka.Actor;
using Akka.Event;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Streams.Audit;
using Caas.Streams.ReadModel;

namespace Caas.Streams.Search;

/// <summary>Asks the search projection to rebuild its index from the journal's start (swap, not gap).</summary>
public sealed record ReindexSearch
{
    public static readonly ReindexSearch Instance = new();
}

/// <summary>The search projection's answer: a rebuild runs (or was already running).</summary>
public sealed record ReindexStarted(bool AlreadyRunning);

/// <summary>Asks how a rebuild is going.</summary>
public sealed record GetReindexStatus
{
    public static readonly GetReindexStatus Instance = new();
}

/// <param name="Running">A rebuild is under way.</param>
/// <param name="Offset">The journal offset the rebuild (or, when none runs, the live index) has reached.</param>
/// <param name="Swaps">Rebuilds completed since this node's projection started.</param>
public sealed record ReindexStatus(bool Running, long Offset, long Head, int Swaps);

/// <summary>
/// The search projection: conversation events by tag through <see cref="ProjectionRunner"/> into the live index tables,
/// each batch with its offset in one transaction. A reindex runs a second stream from the journal's start into the
/// rebuild's tables while the live one goes on; once the rebuild has reached the journal's head, the live stream's
/// writes are held, the tables swapped in one transaction, and the live stream resumed from the rebuild's offset.
/// Runs as a cluster singleton beside the read-model projection.
/// </summary>
public sealed class SearchProjection : ReceiveActor
{
    private static readonly Prometheus.Counter.Child LateEvents = Prometheus.Metrics.CreateCounter("caas_projection_late_events_total",
        "Events the events-by-tag stream passed by (committed after later ones were read), read by persistence id instead.", "projection")
        .WithLabels(SearchIndex.ProjectionName);

    private readonly SearchIndex _index;
    private readonly ProjectionSettings _settings;
    private readonly StorageOptions _storage;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly ActorSystem _system = Context.System;
    private readonly IMaterializer _materializer = Context.Materializer();
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private UniqueKillSwitch? _live, _rebuild;
    private int _liveGeneration, _rebuildGeneration, _swaps;
    private ICancelable? _checking, _sweeping;
    // Late-commit sweep of the live tables (null: none, as on SQLite, whose single writer leaves no ordering gaps).
    private readonly LateCommitSweep? _lateCommits;

    private sealed record CheckRebuild
    {
        public static readonly CheckRebuild Instance = new();
    }

    private sealed record Sweep
    {
        public static readonly Sweep Instance = new();
    }

    public SearchProjection(SearchIndex index, ProjectionSettings settings, StorageOptions storage,
        Func<CancellationToken, Task<System.Data.Common.DbConnection>>? openJournal = null)
    {
        _index = index;
        _settings = settings;
        _storage = storage;
        if (openJournal is not null && settings.LateCommitSweep > TimeSpan.Zero) _lateCommits = new LateCommitSweep(openJournal, settings.LateCommitWindow);
        ReceiveAsync<Sweep>(async _ =>
        {
            try
            {
                await SweepAsync();
            }
            catch (Exception e)
            {
                _log.Warning("Search index: the late-commit sweep failed (next one in {0}): {1}", _settings.LateCommitSweep, e.Message);
            }
        });
        ReceiveAsync<ReindexSearch>(async _ =>
        {
            if (_rebuild is not null)
            {
                Sender.Tell(new ReindexStarted(true));
                return;
            }
            await _index.ResetNextAsync();
            StartRebuild();
            _checking = Context.System.Scheduler.ScheduleTellRepeatedlyCancelable(TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(200),
                Self, CheckRebuild.Instance, Self);
            _log.Info("Search index: rebuild from the journal's start; searches read the current index until it is complete");
            Sender.Tell(new ReindexStarted(false));
        });
        ReceiveAsync<CheckRebuild>(async _ =>
        {
            if (_rebuild is null) return;
            try
            {
                var reached = await _index.LoadOffsetAsync(SearchIndex.RebuildName);
                var head = await ProjectionRebuilds.LastConversationOffsetAsync(_storage, default);
                if (reached < head) return;
                await SwapAsync();
            }
            catch (Exception e)
            {
                _log.Warning("Search index: rebuild check failed (retried): {0}", e.Message);
            }
        });
        ReceiveAsync<GetReindexStatus>(async _ =>
        {
            var running = _rebuild is not null;
            var offset = await _index.LoadOffsetAsync(running ? SearchIndex.RebuildName : SearchIndex.ProjectionName);
            var head = await ProjectionRebuilds.LastConversationOffsetAsync(_storage, default);
            Sender.Tell(new ReindexStatus(running, offset, head, _swaps));
        });
        ReceiveAny(_ => { });
    }

    public static Props PropsFor(SearchIndex index, ProjectionSettings settings, StorageOptions storage,
        Func<CancellationToken, Task<System.Data.Common.DbConnection>>? openJournal = null) =>
        Props.Create(() => new SearchProjection(index, settings, storage, openJournal));

    protected override void PreStart()
    {
        StartLive();
        if (_lateCommits is not null)
            _sweeping = Context.System.Scheduler.ScheduleTellRepeatedlyCancelable(_settings.LateCommitSweep, _settings.LateCommitSweep, Self, Sweep.Instance, Self);
    }

    /// <summary>
    /// Applies to the live tables the conversation events the tag stream passed by (see <see cref="LateCommitSweep"/>),
    /// without moving the offset, so a late event that is its conversation's last is searchable without waiting for the
    /// next one.
    /// </summary>
    private async Task SweepAsync()
    {
        var applied = await _lateCommits!.SweepAsync(_writeGate, ids => _index.MarksAsync(ids, SearchIndex.Live), ReadMissingAsync,
            late => _index.WriteAsync(late, SearchIndex.ProjectionName, SearchIndex.Live, default, null, storeOffset: false));
        if (applied == 0) return;
        _log.Warning("Search index: {0} events committed late (the tag stream had passed them); applied from the journal", applied);
        LateEvents.Inc(applied);
    }

    private void StartLive()
    {
        var generation = Volatile.Read(ref _liveGeneration);
        _live = ProjectionRunner.Run(SearchIndex.ProjectionName, ConversationActor.KindTag, _system, _settings,
            () => _index.LoadOffsetAsync(SearchIndex.ProjectionName),
            async list =>
            {
                await _writeGate.WaitAsync();
                try
                {
                    // A batch of the stream stopped by a swap is dropped: the new tables' offset is the rebuild's.
                    if (generation != Volatile.Read(ref _liveGeneration)) return;
                    await _index.WriteAsync(list, SearchIndex.ProjectionName, SearchIndex.Live, default, ReadMissingAsync);
                    _lateCommits?.Written(((Sequence)list[^1].Offset).Value);
                }
                finally
                {
                    _writeGate.Release();
                }
            }, _materializer, _log);
    }

    private void StartRebuild()
    {
        var generation = Volatile.Read(ref _rebuildGeneration);
        _rebuild = ProjectionRunner.Run(SearchIndex.RebuildName, ConversationActor.KindTag, _system, _settings,
            () => _index.LoadOffsetAsync(SearchIndex.RebuildName),
            async list =>
            {
                if (generation != Volatile.Read(ref _rebuildGeneration)) return;
                await _index.WriteAsync(list, SearchIndex.RebuildName, SearchIndex.Next, default, ReadMissingAsync);
            }, _materializer, _log);
    }

    private Task<IReadOnlyList<EventEnvelope>> ReadMissingAsync(string persistenceId, long from, long to, CancellationToken ct) =>
        ProjectionRunner.ByPersistenceId(_system, _materializer)(persistenceId, from, to, ct);

    private async Task SwapAsync()
    {
        Interlocked.Increment(ref _rebuildGeneration);
        _rebuild?.Shutdown();
        _rebuild = null;
        _checking?.Cancel();
        await _writeGate.WaitAsync();
        try
        {
            Interlocked.Increment(ref _liveGeneration);
            _live?.Shutdown();
            await _index.SwapAsync();
            _swaps++;
        }
        finally
        {
            _writeGate.Release();
        }
        _log.Info("Search index: the rebuilt index is live");
        StartLive();
    }

    protected override void PostStop()
    {
        _checking?.Cancel();
        _sweeping?.Cancel();
        _live?.Shutdown();
        _rebuild?.Shutdown();
    }
}

/// <summary>Registry key of the search projection singleton (and its proxy on every node).</summary>
public sealed class SearchProjectionKey;
