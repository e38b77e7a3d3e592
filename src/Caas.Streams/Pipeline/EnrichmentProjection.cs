using System.Data.Common;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Privacy;
using Caas.Streams.Kafka;
using Caas.Streams.ReadModel;
using Prometheus;

namespace Caas.Streams.Pipeline;

/// <summary>
/// Deferred enrichment: the messages the pipeline stored above its high-water mark (tagged
/// <see cref="EnrichmentTags.Deferred"/>) are read from the journal in order of arrival through
/// <see cref="ProjectionRunner"/>, enriched (the same enrichers, budget and breakers as inline), and their results
/// recorded by their conversation entity as <see cref="MessageEnriched"/> (sealed under the author's key). A batch's
/// offset (<c>rm_projection_offsets</c>, name <see cref="Name"/>) is stored only after every entity of the batch has
/// acknowledged, so a crash replays the batch; the entity records a message's enrichment once (a repeat is answered
/// without a write). Each conversation's records go to its entity one after another, in journal order; conversations
/// in parallel. Runs as a cluster singleton on a projections node.
/// <para>
/// Late commits (PostgreSQL, parallel journal writers): a deferred message whose transaction commits after the tag
/// stream has read past its ordering value would never be enriched. With a journal to sweep, the projection remembers
/// the ordering values it processed over the last <see cref="ProjectionSettings.LateCommitWindow"/> and, every
/// <see cref="ProjectionSettings.LateCommitSweep"/>, reads the deferred rows of that range from the journal; those it
/// never processed are read by persistence id and enriched like any other (without moving the offset).
/// </para>
/// </summary>
public sealed class EnrichmentProjection : ReceiveActor
{
    public const string Name = "enrichment";

    public static readonly Counter Deferred = Metrics.CreateCounter("caas_enrichment_deferred_total",
        "Messages stored with their enrichment deferred (the pipeline was above its high-water mark, or the message carries an attachment).");
    public static readonly Counter Recorded = Metrics.CreateCounter("caas_enrichment_deferred_recorded_total",
        "Deferred messages whose enrichment the enrichment projection has had recorded (repeats after a restart included).");
    public static readonly Gauge LagMessages = Metrics.CreateGauge("caas_enrichment_lag_messages",
        "Messages stored with deferred enrichment after the enrichment projection's offset: not yet enriched.");
    public static readonly Gauge LagSeconds = Metrics.CreateGauge("caas_enrichment_lag_seconds",
        "Age of the oldest message still waiting for its deferred enrichment (0 when none waits).");

    /// <summary>Runs the enrichers on a stored message's content: tenant, conversation, sender, content, posted at.</summary>
    public delegate Task<MessageEnrichment?> Enricher(string tenantId, string conversationId, string senderId, MessageContent content,
        DateTimeOffset postedAt);

    private readonly Enricher _enrich;
    private readonly IActorRef _conversations;
    private readonly ProjectionOffsetStore _offsets;
    private readonly ProjectionSettings _settings;
    private readonly TimeSpan _askTimeout;
    private readonly int _parallelism;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Func<CancellationToken, Task<DbConnection>>? _openJournal;
    private readonly ProcessedWindow _processed;
    // The stream's batches and the sweep never enrich at the same time (a message processed by both is harmless, the
    // entity records it once, but costs the enrichers twice).
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly IMaterializer _materializer = Context.Materializer();
    // The node's vault: the results are sealed here, before the entity is asked to record them (none: the entity's way).
    private readonly IContentVault? _vault = ContentVaultSetup.Of(Context.System);
    private UniqueKillSwitch? _killSwitch;
    private ICancelable? _sweeping;
    private readonly Func<bool>? _bursting;
    private readonly TimeSpan _yieldMax;

    public static readonly Counter YieldedSeconds = Metrics.CreateCounter("caas_enrichment_yielded_seconds_total",
        "Time the enrichment projection waited before its batches because this node's graph was in a burst (above the high-water mark).");

    private sealed class SweepTick
    {
        public static readonly SweepTick Instance = new();
    }

    public EnrichmentProjection(Enricher enrich, IActorRef conversations, ProjectionOffsetStore offsets, ProjectionSettings settings,
        TimeSpan askTimeout, int parallelism, Func<CancellationToken, Task<DbConnection>>? openJournal = null, Func<bool>? bursting = null,
        TimeSpan yieldMax = default)
    {
        _bursting = yieldMax > TimeSpan.Zero ? bursting : null;
        _yieldMax = yieldMax;
        _enrich = enrich;
        _conversations = conversations;
        _offsets = offsets;
        _settings = settings;
        _askTimeout = askTimeout;
        _parallelism = Math.Max(1, parallelism);
        _openJournal = settings.LateCommitSweep > TimeSpan.Zero ? openJournal : null;
        _processed = new ProcessedWindow(settings.LateCommitWindow);
        ReceiveAsync<SweepTick>(async _ =>
        {
            try
            {
                await SweepAsync();
            }
            catch (Exception e)
            {
                _log.Warning("Enrichment projection: the late-commit sweep failed (next one in {0}): {1}", _settings.LateCommitSweep, e.Message);
            }
        });
        ReceiveAny(_ => { });
    }

    /// <param name="openJournal">Opens the journal's database for the late-commit sweep (PostgreSQL); null: no sweep.</param>
    /// <param name="bursting">True while this node's graph is in a burst: each batch then waits (up to <paramref name="yieldMax"/>) for it to end.</param>
    /// <param name="yieldMax">The longest a batch waits for a burst to end (zero: never waits).</param>
    public static Props PropsFor(Enricher enrich, IActorRef conversations, ProjectionOffsetStore offsets, ProjectionSettings settings,
        TimeSpan askTimeout, int parallelism, Func<CancellationToken, Task<DbConnection>>? openJournal = null, Func<bool>? bursting = null,
        TimeSpan yieldMax = default) =>
        Props.Create(() => new EnrichmentProjection(enrich, conversations, offsets, settings, askTimeout, parallelism, openJournal, bursting, yieldMax));

    protected override void PreStart()
    {
        var system = Context.System;
        _killSwitch = ProjectionRunner.Run(Name, EnrichmentTags.Deferred, system, _settings,
            async () =>
            {
                var offset = await _offsets.LoadAsync(Name);
                _processed.Started(offset);
                return offset;
            }, WriteAsync, _materializer, _log);
        if (_openJournal is not null)
            _sweeping = Context.System.Scheduler.ScheduleTellRepeatedlyCancelable(_settings.LateCommitSweep, _settings.LateCommitSweep, Self,
                SweepTick.Instance, Self);
    }

    protected override void PostStop()
    {
        _sweeping?.Cancel();
        _killSwitch?.Shutdown();
    }

    /// <summary>
    /// The ordering values the projection processed over the last window, batch by batch (ascending within a batch, as
    /// the tag stream delivers them), each with the offset the stream stood at before it: the sweep looks at every row
    /// after the oldest kept batch's start up to the highest value processed.
    /// </summary>
    internal sealed class ProcessedWindow(TimeSpan window)
    {
        private readonly Queue<(DateTimeOffset At, long After, long[] Orderings)> _batches = new();
        private readonly object _lock = new();
        private long _offset;
        private long _highest;

        /// <summary>The stream (re)starts after this offset.</summary>
        public void Started(long offset)
        {
            lock (_lock) _offset = offset;
        }

        /// <summary>A batch the stream delivered (it stood at the previous batch's last offset before it).</summary>
        public void Streamed(IReadOnlyList<long> orderings, DateTimeOffset now)
        {
            if (orderings.Count == 0) return;
            lock (_lock)
            {
                Keep(now, _offset, [.. orderings]);
                _offset = Math.Max(_offset, orderings[^1]);
            }
        }

        /// <summary>Rows the sweep processed (they lie inside the range already).</summary>
        public void Swept(IReadOnlyList<long> orderings, DateTimeOffset now)
        {
            if (orderings.Count == 0) return;
            lock (_lock) Keep(now, orderings.Min() - 1, [.. orderings]);
        }

        private void Keep(DateTimeOffset now, long after, long[] orderings)
        {
            _batches.Enqueue((now, after, orderings));
            _highest = Math.Max(_highest, orderings.Max());
            while (_batches.Count > 1 && _batches.Peek().At < now - window) _batches.Dequeue();
        }

        /// <summary>The range to sweep (after the oldest kept start, up to the highest processed) and what was processed in it; null when nothing was.</summary>
        public (long After, long To, HashSet<long> Seen)? Snapshot()
        {
            lock (_lock)
            {
                if (_batches.Count == 0) return null;
                var seen = new HashSet<long>(_batches.Sum(b => b.Orderings.Length));
                foreach (var (_, _, orderings) in _batches) seen.UnionWith(orderings);
                return (_batches.Min(b => b.After), _highest, seen);
            }
        }
    }

    /// <summary>
    /// The deferred rows of the journal within the processed window that the tag stream passed by (committed after it
    /// had read past their ordering value), read by persistence id and enriched without moving the offset.
    /// </summary>
    private async Task SweepAsync()
    {
        if (_processed.Snapshot() is not var (after, to, seen)) return;
        var missed = new List<(long Ordering, string PersistenceId, long SequenceNr)>();
        await using (var c = await _openJournal!(CancellationToken.None))
        await using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "SELECT ordering, persistence_id, sequence_number FROM journal WHERE ordering > @f AND ordering <= @t AND tags LIKE @tag";
            JournalDb.Parameter(cmd, "f", after);
            JournalDb.Parameter(cmd, "t", to);
            JournalDb.Parameter(cmd, "tag", "%;" + EnrichmentTags.Deferred + ";%");
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync())
                if (!seen.Contains(r.GetInt64(0))) missed.Add((r.GetInt64(0), r.GetString(1), r.GetInt64(2)));
        }
        if (missed.Count == 0) return;
        var journal = ProjectionRunner.ReadJournal(Context.System);
        var envelopes = new List<EventEnvelope>(missed.Count);
        foreach (var (_, pid, seqNr) in missed.OrderBy(m => m.Ordering))
            envelopes.AddRange(await journal.CurrentEventsByPersistenceId(pid, seqNr, seqNr).RunWith(Sink.Seq<EventEnvelope>(), _materializer));
        await _gate.WaitAsync();
        try
        {
            await ProcessAsync(envelopes);
        }
        finally
        {
            _gate.Release();
        }
        _processed.Swept([.. missed.Select(m => m.Ordering)], DateTimeOffset.UtcNow);
        LateRecorded.Inc(envelopes.Count);
        _log.Warning("Enrichment projection: {0} deferred messages committed late (the tag stream had passed them); enriched from the journal",
            envelopes.Count);
    }

    public static readonly Counter LateRecorded = Metrics.CreateCounter("caas_enrichment_late_commits_total",
        "Deferred messages the enrichment projection's tag stream passed by (committed late) and its sweep enriched from the journal.");

    private sealed record Pending(string PersistenceId, string TenantId, string ConversationId, MessagePosted Posted)
    {
        public MessageEnrichment? Enrichment { get; set; }
        public SealedContent? Sealed { get; set; }
        public bool Skip { get; set; }
    }

    /// <summary>Enriches the batch, has every result recorded, then stores the batch's offset. Any failure fails the batch (replayed).</summary>
    private async Task WriteAsync(IReadOnlyList<EventEnvelope> batch)
    {
        await YieldToBurstAsync();
        await _gate.WaitAsync();
        try
        {
            await ProcessAsync(batch);
        }
        finally
        {
            _gate.Release();
        }
        await _offsets.SaveAsync(Name, ((Sequence)batch[^1].Offset).Value);
        if (_openJournal is not null) _processed.Streamed([.. batch.Select(e => ((Sequence)e.Offset).Value)], DateTimeOffset.UtcNow);
    }

    /// <summary>
    /// While this node's graph is in a burst, waits for it to end, at most <see cref="PipelineSettings.EnrichYieldMax"/>:
    /// the enrichers are CPU, and during a burst the cores belong to ingest (the batch then grows, and the projection
    /// catches up after the burst). It never waits longer, so enrichment still moves under a burst that does not end.
    /// </summary>
    private async Task YieldToBurstAsync()
    {
        if (_bursting is null) return;
        var waited = await YieldAsync(_bursting, _yieldMax);
        if (waited > TimeSpan.Zero) YieldedSeconds.Inc(waited.TotalSeconds);
    }

    /// <summary>Waits while <paramref name="bursting"/> holds, polling every 50 ms, at most <paramref name="max"/>; answers how long it waited.</summary>
    public static async Task<TimeSpan> YieldAsync(Func<bool> bursting, TimeSpan max)
    {
        if (!bursting()) return TimeSpan.Zero;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        while (bursting() && System.Diagnostics.Stopwatch.GetElapsedTime(started) < max) await Task.Delay(50);
        return System.Diagnostics.Stopwatch.GetElapsedTime(started);
    }

    /// <summary>Enriches the deferred messages among the envelopes and has every result recorded by its entity.</summary>
    private async Task ProcessAsync(IReadOnlyList<EventEnvelope> batch)
    {
        var pending = new List<Pending>(batch.Count);
        foreach (var envelope in batch)
        {
            if (envelope.Event is not MessagePosted { EnrichmentDeferred: true } stored) continue;
            var (tenant, conversation) = Ids.SplitEntityId(envelope.PersistenceId["conversation|".Length..]);
            var posted = (MessagePosted)ContentSealing.InConversation(stored, conversation);
            pending.Add(new Pending(envelope.PersistenceId, tenant, conversation, posted));
        }

        // The enrichers (CPU) side by side; opening the content may load the author's key (a failure fails the batch).
        await Parallel.ForEachAsync(pending, new ParallelOptions { MaxDegreeOfParallelism = _parallelism }, async (p, _) =>
        {
            var content = p.Posted.Content;
            // Erased (the author's key destroyed), unreadable, or neither text nor an attachment: nothing to enrich or
            // to record. An attachment's file (its bytes from the media store) and caption are enriched together.
            if (content.IsAttachment ? content.Attachment is null : content.Type != "text" || content.Text is null)
            {
                p.Skip = true;
                return;
            }
            p.Enrichment = await _enrich(p.TenantId, p.ConversationId, p.Posted.Meta.ActorId, content, p.Posted.Meta.OccurredAt)
                           ?? new MessageEnrichment([], []);
            // Sealed here, so the entity records it without key I/O or AES (a key that cannot be loaded fails the batch).
            if (_vault is not null)
                p.Sealed = await ContentSealing.SealEnrichmentAsync(_vault, p.TenantId, p.ConversationId, p.Posted.Meta.ActorId,
                    p.Posted.MessageId, p.Enrichment);
        });

        // Each conversation's records in journal order, one at a time; conversations in parallel.
        var recorded = 0;
        await Task.WhenAll(pending.Where(p => !p.Skip).GroupBy(p => p.PersistenceId).Select(async conversation =>
        {
            foreach (var p in conversation)
            {
                var reply = await _conversations.Ask<object>(new RecordEnrichment(p.TenantId, p.ConversationId, p.Posted.Meta.ActorId,
                    p.Posted.Seq, p.Posted.MessageId, p.Enrichment!) { Sealed = p.Sealed }, _askTimeout);
                switch (reply)
                {
                    case Done:
                        Interlocked.Increment(ref recorded);
                        break;
                    case Rejection { Code: ErrorCodes.NotFound }:
                        // Not this message any more (another message under its seq cannot happen; a conversation
                        // that is gone answers this): nothing to record.
                        _log.Warning("Enrichment of {0}/{1} seq {2} not recorded: the entity does not know the message", p.TenantId,
                            p.ConversationId, p.Posted.Seq);
                        break;
                    case Rejection r:
                        throw new InvalidOperationException($"Recording the enrichment of {p.TenantId}/{p.ConversationId} seq {p.Posted.Seq} was refused: {r.Code}");
                    default:
                        throw new InvalidOperationException($"Unexpected answer {reply.GetType().Name} to RecordEnrichment");
                }
            }
        }));
        Recorded.Inc(recorded);
    }

    /// <summary>
    /// The lag behind <paramref name="offset"/>: deferred messages in the journal after it, and the age in seconds of
    /// the oldest of them (0 when none); one range query over the journal's tail (ordering is its key).
    /// </summary>
    public static async Task<(long Messages, double OldestSeconds)> LagAsync(System.Data.Common.DbConnection journal, long offset,
        CancellationToken ct = default)
    {
        await using var cmd = journal.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*), MIN(created) FROM journal WHERE ordering > @o AND tags LIKE @t";
        JournalDb.Parameter(cmd, "o", offset);
        JournalDb.Parameter(cmd, "t", "%;" + EnrichmentTags.Deferred + ";%");
        await using var r = await cmd.ExecuteReaderAsync(ct);
        if (!await r.ReadAsync(ct)) return (0, 0);
        var count = Convert.ToInt64(r.GetValue(0));
        var age = count == 0 || r.IsDBNull(1) ? 0 : Math.Max(0, (DateTime.UtcNow.Ticks - Convert.ToInt64(r.GetValue(1))) / (double)TimeSpan.TicksPerSecond);
        return (count, age);
    }
}

/// <summary>
/// The enrichment lag, sampled once a second without reading the journal's whole tail each time. The projection reads
/// only deferred rows, so its offset stays where the last deferred message was while everything after it is ordinary
/// traffic: <see cref="EnrichmentProjection.LagAsync"/> from that offset would scan every row since, every second, a scan
/// that grows with the journal (on a node whose enrichment never deferred, the whole journal). This keeps the deferred
/// rows it has seen beyond the offset and reads only the rows added since its last sample, plus
/// <see cref="Overlap"/> rows behind it (a PostgreSQL transaction that took its ordering earlier and committed after
/// the sample). What it keeps is bounded by the lag itself (16 bytes per deferred message not yet enriched).
/// </summary>
public sealed class DeferredLag(long overlap = DeferredLag.Overlap)
{
    /// <summary>Rows read again behind the previous sample's head, by default.</summary>
    public const long Overlap = 10_000;

    private readonly SortedDictionary<long, long> _pending = new(); // ordering → created (ticks)
    private long _scannedTo = -1;
    private long _offset = -1;

    /// <summary>Where the last sample's read began (exclusive): the rows it read are those after it, up to the head.</summary>
    public long LastReadFrom { get; private set; }

    /// <summary>Deferred messages after <paramref name="offset"/> up to <paramref name="head"/>, and the oldest one's age in seconds.</summary>
    public async Task<(long Messages, double OldestSeconds)> SampleAsync(System.Data.Common.DbConnection journal, long offset, long head,
        CancellationToken ct = default)
    {
        if (offset < _offset || _scannedTo < 0)
        {
            // First sample, or the projection went back (a reset): start again from its offset.
            _pending.Clear();
            _scannedTo = offset;
        }
        _offset = offset;
        LastReadFrom = Math.Max(offset, _scannedTo - overlap);
        await using (var cmd = journal.CreateCommand())
        {
            // A range of the primary key; only the deferred rows come back.
            cmd.CommandText = "SELECT ordering, created FROM journal WHERE ordering > @f AND ordering <= @h AND tags LIKE @t";
            JournalDb.Parameter(cmd, "f", LastReadFrom);
            JournalDb.Parameter(cmd, "h", head);
            JournalDb.Parameter(cmd, "t", "%;" + EnrichmentTags.Deferred + ";%");
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) _pending[r.GetInt64(0)] = r.GetInt64(1);
        }
        _scannedTo = Math.Max(_scannedTo, head);
        while (_pending.Count > 0 && _pending.First().Key <= offset) _pending.Remove(_pending.First().Key);
        if (_pending.Count == 0) return (0, 0);
        var oldest = _pending.Values.Min();
        return (_pending.Count, Math.Max(0, (DateTime.UtcNow.Ticks - oldest) / (double)TimeSpan.TicksPerSecond));
    }

    /// <summary>Samples and sets the lag gauges (on the node the projection runs on, once a second with the journal's head).</summary>
    public async Task SampleGaugesAsync(System.Data.Common.DbConnection journal, long offset, long head, CancellationToken ct)
    {
        var (count, age) = await SampleAsync(journal, offset, head, ct);
        EnrichmentProjection.LagMessages.Set(count);
        EnrichmentProjection.LagSeconds.Set(age);
    }
}
