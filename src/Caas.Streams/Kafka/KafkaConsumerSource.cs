using System.Collections.Concurrent;
using System.Threading.Channels;
using Akka;
using Akka.Streams.Dsl;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Caas.Streams.Kafka;

/// <summary>
/// A committable Kafka source: a consumer-group member whose records flow into an Akka.Streams graph, each to be
/// completed (<see cref="CommittableRecord.Complete"/>) once persisted or dead-lettered.
/// <list type="bullet">
/// <item>Partition-aware commits: a partition's offset is stored only up to its lowest incomplete record, and
/// librdkafka commits stored offsets in the background (and on revoke and close).</item>
/// <item>Backpressure: when the hand-off buffer is full the poll thread waits for room (librdkafka's prefetch is bounded
/// by its own queue limits). A partition with too many open records, or every partition when the stream has taken
/// nothing for <see cref="KafkaSettings.StallPauseAfter"/>, is paused, and resumed when it drains. A pause costs: librdkafka
/// drops the partition's prefetched records and fetches them again on resume, so a full buffer alone does not pause.</item>
/// <item>Rebalances: a revoked partition stops emitting, its records already in the pipeline get a bounded time to
/// finish, its final offset is committed and its tracking dropped; an assigned partition starts from the group's
/// committed offset.</item>
/// </list>
/// The consumer runs on its own thread (librdkafka's poll is blocking); the stream reads a bounded channel.
/// </summary>
public static class KafkaConsumerSource
{
    /// <summary>A source of <paramref name="topics"/>' records; materialize it once.</summary>
    public static Source<CommittableRecord, KafkaConsumerControl> Create(KafkaSettings settings, IReadOnlyCollection<string> topics,
        ILogger logger, string? clientId = null)
    {
        var control = new KafkaConsumerControl(settings, topics, logger, clientId);
        return ChannelSource.FromReader(control.Reader)
            .Where(r => r.Offsets.TryEmit())
            .MapMaterializedValue(_ =>
            {
                control.Start();
                return control;
            });
    }
}

/// <summary>The running consumer behind a <see cref="KafkaConsumerSource"/>: stop it, read its lag and commits.</summary>
public sealed class KafkaConsumerControl : IAsyncDisposable
{
    private static readonly Gauge LagGauge = Metrics.CreateGauge("caas_kafka_consumer_lag",
        "Records behind the end of a partition: high watermark minus the group's committed offset.", "topic", "partition");
    private static readonly Counter Commits = Metrics.CreateCounter("caas_kafka_consumer_commits_total",
        "Offset commits the broker acknowledged, by topic.", "topic");
    private static readonly Counter CommitFailures = Metrics.CreateCounter("caas_kafka_consumer_commit_failures_total",
        "Offset commits that failed (retried with the next commit).", "topic");
    private static readonly Counter Consumed = Metrics.CreateCounter("caas_kafka_consumed_total", "Records consumed, by topic.", "topic");
    private static readonly Counter Rebalances = Metrics.CreateCounter("caas_kafka_rebalances_total",
        "Partitions assigned or revoked, by topic and change.", "topic", "change");
    private static readonly Counter Pauses = Metrics.CreateCounter("caas_kafka_consumer_pauses_total",
        "Partitions paused, by topic and reason (partition_full: too many open records; stalled: the stream took nothing for KafkaSettings.StallPauseAfter).", "topic", "reason");
    private static readonly Gauge PausedPartitions = Metrics.CreateGauge("caas_kafka_consumer_paused_partitions",
        "Partitions this process holds paused now.");

    private readonly KafkaSettings _settings;
    private readonly IReadOnlyCollection<string> _topics;
    private readonly ILogger _logger;
    private readonly string? _clientId;
    private readonly Channel<CommittableRecord> _buffer;
    private readonly Dictionary<TopicPartition, PartitionOffsets> _partitions = new();
    private readonly HashSet<TopicPartition> _paused = [];
    // librdkafka keeps a partition's pause across a revoke and a new assignment, so a partition this member had paused
    // and gets back would stay paused for good (our bookkeeping starts it unpaused): it is resumed once assigned.
    private readonly HashSet<TopicPartition> _resumeOnAssign = [];
    private readonly Queue<CommittableRecord> _overflow = new();
    private readonly ConcurrentDictionary<TopicPartition, long> _lag = new();
    private readonly ConcurrentDictionary<TopicPartition, long> _committed = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IConsumer<byte[]?, byte[]?>? _consumer;
    // Since when records wait for room in the hand-off buffer; stalled once that lasted StallPauseAfter (every partition paused).
    private DateTime? _overflowSince;
    private bool _stalled;
    private long _commitCount;
    private long _stallPauses;
    private int _started;

    internal KafkaConsumerControl(KafkaSettings settings, IReadOnlyCollection<string> topics, ILogger logger, string? clientId)
    {
        _settings = settings;
        _topics = topics;
        _logger = logger;
        _clientId = clientId;
        _buffer = Channel.CreateBounded<CommittableRecord>(new BoundedChannelOptions(settings.BufferSize)
        {
            SingleWriter = true,
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    internal ChannelReader<CommittableRecord> Reader => _buffer.Reader;

    /// <summary>Partitions paused because the stream stalled (took nothing for <see cref="KafkaSettings.StallPauseAfter"/>).</summary>
    public long StallPauses => Interlocked.Read(ref _stallPauses);

    /// <summary>
    /// Records in the hand-off buffer, waiting to enter it, partitions paused now, and records received and not complete
    /// (diagnostics: the pipeline bench samples it with <c>CAAS_BENCH_KAFKA_SAMPLE=1</c>).
    /// </summary>
    public (int Buffered, int Overflow, int Paused, int Open) Snapshot()
    {
        int paused, open = 0;
        lock (_partitions)
        {
            paused = _paused.Count;
            foreach (var o in _partitions.Values) open += o.Open;
        }
        return (_buffer.Reader.Count, _overflow.Count, paused, open);
    }

    /// <summary>Completes when the consumer has left the group and closed.</summary>
    public Task Stopped => _stopped.Task;

    /// <summary>Offset commits the broker acknowledged.</summary>
    public long CommitCount => Interlocked.Read(ref _commitCount);

    /// <summary>The group's committed offset per partition, as last acknowledged to this member.</summary>
    public IReadOnlyDictionary<TopicPartition, long> Committed => _committed;

    /// <summary>Lag per assigned partition (high watermark minus committed), refreshed about once a second.</summary>
    public IReadOnlyDictionary<TopicPartition, long> Lag => _lag;

    /// <summary>The partitions this member holds now.</summary>
    public IReadOnlyList<TopicPartition> Assignment
    {
        get { lock (_partitions) return [.. _partitions.Keys]; }
    }

    internal void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) == 1) throw new InvalidOperationException("A Kafka source is materialized once.");
        var thread = new Thread(Run) { IsBackground = true, Name = "kafka-consumer-" + (_clientId ?? _settings.GroupId) };
        thread.Start();
    }

    /// <summary>
    /// Leaves the group: stops reading, gives records already in the pipeline <see cref="KafkaSettings.RevokeDrainTimeout"/>
    /// to complete, commits, closes. Records not yet handed on are left for the group's next owner.
    /// </summary>
    public Task StopAsync()
    {
        _stop.Cancel();
        return _started == 1 ? _stopped.Task : Task.CompletedTask;
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    private void Run()
    {
        try
        {
            using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(_settings.ConsumerConfig(_clientId))
                .SetPartitionsAssignedHandler((_, assigned) => OnAssigned(assigned))
                .SetPartitionsRevokedHandler((c, revoked) => OnRevoked(c, revoked.Select(p => p.TopicPartition).ToList(), commit: true))
                .SetPartitionsLostHandler((c, lost) => OnRevoked(c, lost.Select(p => p.TopicPartition).ToList(), commit: false))
                .SetOffsetsCommittedHandler((_, committed) => OnCommitted(committed))
                .SetErrorHandler((_, e) => _logger.LogWarning("Kafka consumer: {Reason} ({Code})", e.Reason, e.Code))
                .SetLogHandler((_, m) => { if (m.Level <= SyslogLevel.Warning) _logger.LogDebug("librdkafka: {Message}", m.Message); })
                .Build();
            _consumer = consumer;
            consumer.Subscribe(_topics);
            var lastLag = DateTime.UtcNow;
            while (!_stop.IsCancellationRequested)
            {
                DrainOverflow();
                StoreOffsets(consumer);
                AdjustPauses(consumer);
                if (DateTime.UtcNow - lastLag > TimeSpan.FromSeconds(1))
                {
                    RefreshLag(consumer);
                    lastLag = DateTime.UtcNow;
                }
                var waiting = _overflow.Count > 0 && !_stalled;
                if (waiting)
                {
                    // The stream is behind: wait for room rather than read on (librdkafka keeps prefetching meanwhile,
                    // within queued.max.messages.kbytes). Pausing now would throw the partitions' prefetched records
                    // away and fetch them again on resume. Only a stream that stays full (StallPauseAfter), or an
                    // overflow as large as the buffer (at least 1,000), pauses every partition.
                    _overflowSince ??= DateTime.UtcNow;
                    WaitForRoom(TimeSpan.FromMilliseconds(100));
                    DrainOverflow();
                    if (_overflow.Count == 0) continue;
                    if (DateTime.UtcNow - _overflowSince > _settings.StallPauseAfter || _overflow.Count >= Math.Max(_settings.BufferSize, 1_000)) _stalled = true;
                }
                ConsumeResult<byte[]?, byte[]?>? result;
                try
                {
                    // While waiting, a poll that does not wait still serves the group's callbacks: a rebalance waits for
                    // this member's revoke and rejoin, and on the 0.9 protocol one that is late past the session timeout
                    // is left out of the round. A record it returns joins the overflow (at most about ten a second).
                    result = consumer.Consume(TimeSpan.FromMilliseconds(waiting ? 0 : _overflow.Count > 0 ? 20 : 100));
                }
                catch (ConsumeException e)
                {
                    _logger.LogWarning("Kafka consume failed: {Reason}", e.Error.Reason);
                    continue;
                }
                if (result is null || result.IsPartitionEOF) continue;
                PartitionOffsets? offsets;
                lock (_partitions) _partitions.TryGetValue(result.TopicPartition, out offsets);
                if (offsets is null) continue; // not ours any more: the next owner reads it from the commit
                offsets.Received(result.Offset.Value);
                Consumed.WithLabels(result.Topic).Inc();
                var record = new CommittableRecord(result, offsets);
                if (_overflow.Count > 0 || !_buffer.Writer.TryWrite(record)) _overflow.Enqueue(record);
            }
            Leave(consumer);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Kafka consumer failed");
            _buffer.Writer.TryComplete(e);
            _stopped.TrySetException(e);
            return;
        }
        _stopped.TrySetResult();
    }

    private void Leave(IConsumer<byte[]?, byte[]?> consumer)
    {
        _buffer.Writer.TryComplete();
        _overflow.Clear();
        List<TopicPartition> held;
        lock (_partitions) held = [.. _partitions.Keys];
        // Close revokes every partition through OnRevoked: wait for in-flight records, store, commit.
        try
        {
            consumer.Close();
        }
        catch (KafkaException e)
        {
            _logger.LogWarning("Kafka consumer close: {Reason}", e.Error.Reason);
        }
        _logger.LogInformation("Kafka consumer left the group (held {Count} partitions)", held.Count);
    }

    private void OnAssigned(List<TopicPartition> assigned)
    {
        lock (_partitions)
            foreach (var tp in assigned)
            {
                _partitions[tp] = new PartitionOffsets();
                _paused.Remove(tp);
                _resumeOnAssign.Add(tp);
                Rebalances.WithLabels(tp.Topic, "assigned").Inc();
            }
        _logger.LogInformation("Kafka partitions assigned: {Partitions}", string.Join(", ", assigned));
    }

    private void OnRevoked(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> revoked, bool commit)
    {
        var gone = new List<(TopicPartition Tp, PartitionOffsets Offsets)>();
        lock (_partitions)
            foreach (var tp in revoked)
                if (_partitions.TryGetValue(tp, out var o))
                {
                    o.Revoke();
                    gone.Add((tp, o));
                }
        if (commit)
        {
            // Records already in the pipeline finish (bounded): the next owner then starts after them, not before.
            var deadline = DateTime.UtcNow + _settings.RevokeDrainTimeout;
            while (gone.Any(g => g.Offsets.InFlight > 0) && DateTime.UtcNow < deadline) Thread.Sleep(10);
            try
            {
                foreach (var (tp, offsets) in gone)
                    if (offsets.CommitPoint is { } point)
                    {
                        consumer.StoreOffset(new TopicPartitionOffset(tp, point));
                        offsets.MarkCommitted(point);
                    }
                foreach (var o in consumer.Commit())
                    if (o.Offset.Value >= 0) _committed[o.TopicPartition] = o.Offset.Value;
            }
            catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_NoOffset)
            {
                // Nothing stored since the last commit.
            }
            catch (KafkaException e)
            {
                foreach (var (tp, _) in gone) CommitFailures.WithLabels(tp.Topic).Inc();
                _logger.LogWarning("Kafka commit on revoke failed: {Reason}", e.Error.Reason);
            }
        }
        lock (_partitions)
            foreach (var (tp, _) in gone)
            {
                _partitions.Remove(tp);
                _paused.Remove(tp);
                _lag.TryRemove(tp, out _);
                LagGauge.RemoveLabelled(tp.Topic, tp.Partition.Value.ToString());
                Rebalances.WithLabels(tp.Topic, commit ? "revoked" : "lost").Inc();
            }
        if (_overflow.Count > 0)
        {
            var keep = _overflow.Where(r => !r.Offsets.IsRevoked).ToList();
            _overflow.Clear();
            foreach (var r in keep) _overflow.Enqueue(r);
        }
        _logger.LogInformation("Kafka partitions {Change}: {Partitions}", commit ? "revoked" : "lost", string.Join(", ", revoked));
    }

    private void OnCommitted(CommittedOffsets committed)
    {
        foreach (var o in committed.Offsets)
        {
            if (o.Error.IsError)
            {
                CommitFailures.WithLabels(o.Topic).Inc();
                continue;
            }
            if (o.Offset.Value < 0) continue;
            _committed[o.TopicPartition] = o.Offset.Value;
            Interlocked.Increment(ref _commitCount);
            Commits.WithLabels(o.Topic).Inc();
        }
    }

    private void DrainOverflow()
    {
        while (_overflow.Count > 0 && _buffer.Writer.TryWrite(_overflow.Peek())) _overflow.Dequeue();
        if (_overflow.Count == 0)
        {
            _overflowSince = null;
            _stalled = false;
        }
    }

    private void WaitForRoom(TimeSpan timeout)
    {
        try
        {
            var wait = _buffer.Writer.WaitToWriteAsync().AsTask();
            wait.Wait(timeout);
        }
        catch (AggregateException)
        {
            // The channel completed: the loop ends.
        }
    }

    private void StoreOffsets(IConsumer<byte[]?, byte[]?> consumer)
    {
        List<(TopicPartition, PartitionOffsets)> held;
        lock (_partitions) held = _partitions.Select(p => (p.Key, p.Value)).ToList();
        foreach (var (tp, offsets) in held)
        {
            if (offsets.Uncommitted() is not { } point) continue;
            try
            {
                // librdkafka's auto-commit sends the stored offset every commit interval.
                consumer.StoreOffset(new TopicPartitionOffset(tp, point));
                offsets.MarkCommitted(point);
            }
            catch (KafkaException e)
            {
                _logger.LogDebug("Kafka store offset {Partition}@{Offset}: {Reason}", tp, point, e.Error.Reason);
            }
        }
    }

    private void AdjustPauses(IConsumer<byte[]?, byte[]?> consumer)
    {
        var pause = new List<TopicPartition>();
        var resume = new List<TopicPartition>();
        lock (_partitions)
        {
            // Called from the poll loop, after the assignment took effect (a resume inside the assigned handler would
            // come before it).
            foreach (var tp in _resumeOnAssign)
                if (_partitions.ContainsKey(tp) && !_paused.Contains(tp)) resume.Add(tp);
            _resumeOnAssign.Clear();
            foreach (var (tp, offsets) in _partitions)
            {
                var open = offsets.Open;
                var partitionFull = open >= _settings.MaxPendingPerPartition;
                var full = _stalled || partitionFull;
                if (full && _paused.Add(tp))
                {
                    pause.Add(tp);
                    Pauses.WithLabels(tp.Topic, partitionFull ? "partition_full" : "stalled").Inc();
                    if (!partitionFull) Interlocked.Increment(ref _stallPauses);
                }
                else if (!full && open <= _settings.MaxPendingPerPartition / 2 && _paused.Remove(tp) && !resume.Contains(tp)) resume.Add(tp);
            }
        }
        // A partition assigned and full at once stays paused.
        resume.RemoveAll(pause.Contains);
        lock (_partitions) PausedPartitions.Set(_paused.Count);
        try
        {
            if (pause.Count > 0) consumer.Pause(pause);
            if (resume.Count > 0) consumer.Resume(resume);
        }
        catch (KafkaException e)
        {
            _logger.LogDebug("Kafka pause/resume: {Reason}", e.Error.Reason);
        }
    }

    private void RefreshLag(IConsumer<byte[]?, byte[]?> consumer)
    {
        List<(TopicPartition, PartitionOffsets)> held;
        lock (_partitions) held = _partitions.Select(p => (p.Key, p.Value)).ToList();
        foreach (var (tp, offsets) in held)
        {
            var high = consumer.GetWatermarkOffsets(tp).High;
            if (high.IsSpecial) continue;
            var committed = _committed.TryGetValue(tp, out var c) ? c : offsets.Committed;
            if (committed < 0) continue;
            var lag = Math.Max(0, high.Value - committed);
            _lag[tp] = lag;
            LagGauge.WithLabels(tp.Topic, tp.Partition.Value.ToString()).Set(lag);
        }
    }

    /// <summary>The group's lag on <paramref name="topic"/> from the broker (end offsets minus committed), for benchmarks and tests.</summary>
    public static long GroupLag(KafkaSettings settings, string topic, TimeSpan timeout)
    {
        using var probe = new GroupLagProbe(settings);
        return probe.Lag(topic, timeout);
    }
}

/// <summary>
/// Reads a group's lag from the broker again and again over one admin client and one consumer handle (a new pair per
/// reading costs threads, connections and metadata requests: measurable CPU in a benchmark that polls for lag 0).
/// </summary>
public sealed class GroupLagProbe(KafkaSettings settings) : IDisposable
{
    private readonly IAdminClient _admin = new AdminClientBuilder(settings.AdminConfig()).Build();
    private readonly IConsumer<Ignore, Ignore> _probe = new ConsumerBuilder<Ignore, Ignore>(settings.ConsumerConfig("lag-probe")).Build();

    /// <summary>End offsets minus the group's committed offsets, summed over <paramref name="topic"/>'s partitions.</summary>
    public long Lag(string topic, TimeSpan timeout)
    {
        var meta = _admin.GetMetadata(topic, timeout);
        var partitions = meta.Topics.Single().Partitions.Select(p => new TopicPartition(topic, p.PartitionId)).ToList();
        var committed = _probe.Committed(partitions, timeout).ToDictionary(o => o.TopicPartition, o => o.Offset.Value);
        long lag = 0;
        foreach (var tp in partitions)
        {
            var high = _probe.QueryWatermarkOffsets(tp, timeout).High.Value;
            var c = committed.TryGetValue(tp, out var v) && v >= 0 ? v : 0;
            lag += Math.Max(0, high - c);
        }
        return lag;
    }

    public void Dispose()
    {
        _probe.Close();
        _probe.Dispose();
        _admin.Dispose();
    }
}
