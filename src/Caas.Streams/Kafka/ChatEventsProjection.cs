using Akka;
using Akka.Actor;
using Akka.Event;
using Akka.Pattern;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Conversations;
using Caas.Streams.ReadModel;
using Prometheus;

namespace Caas.Streams.Kafka;

/// <summary>
/// The outbound <c>chat.events</c> projection: conversation events by tag from the journal, one record per event, in
/// batches (size or time) through <see cref="ProjectionRunner"/>. A batch's offset (<c>rm_projection_offsets</c>, name <c>chat-events</c>) is stored only
/// after the broker acknowledged all of it; a failed batch is retried under backoff behind a circuit breaker, so
/// while the broker is down the breaker opens, the offset holds and the journal query is backpressured, and the
/// backlog drains when the broker returns. At-least-once: a replayed batch repeats records with the same keys.
/// </summary>
public sealed class ChatEventsProjection : ReceiveActor
{
    public const string Name = "chat-events";

    private static readonly Counter Published = Metrics.CreateCounter("caas_kafka_events_published_total", "chat.events records acknowledged by the broker.");
    private static readonly Counter BatchFailures = Metrics.CreateCounter("caas_kafka_events_batch_failures_total",
        "chat.events batches that failed or were refused by the open breaker (retried).");
    private static readonly Gauge Offset = Metrics.CreateGauge("caas_kafka_events_offset", "The journal offset chat.events has published up to.");
    /// <summary>0 closed, 1 half-open, 2 open.</summary>
    public static readonly Gauge BreakerState = Metrics.CreateGauge("caas_kafka_breaker_state",
        "Circuit breaker of a Kafka sink: 0 closed, 1 half-open, 2 open.", "sink");

    private readonly ProjectionOffsetStore _offsets;
    private readonly ProjectionSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly KafkaSink _sink;
    private readonly OrderedWriter _outbound;
    private UniqueKillSwitch? _killSwitch;
    private readonly IMaterializer _materializer = Context.Materializer();
    private ICancelable? _sweeping;

    public ChatEventsProjection(KafkaPublisher publisher, ProjectionOffsetStore offsets, KafkaSettings kafka, ProjectionSettings settings,
        Func<CancellationToken, Task<System.Data.Common.DbConnection>>? openJournal = null)
    {
        _offsets = offsets;
        _settings = settings;
        _sink = new KafkaSink(Context.System.Scheduler, publisher, kafka, settings, Name, kafka.EventsTopic, _log, Published, BatchFailures);
        _outbound = OutboundProjection.Create(Name, "conversation|", Context.System, _materializer, offsets, _sink, Records, settings,
            openJournal, _log);
        ReceiveAsync<SweepLateCommits>(_ => _outbound.SweepOrLogAsync());
        ReceiveAny(_ => { });
    }

    public static Props PropsFor(KafkaPublisher publisher, ProjectionOffsetStore offsets, KafkaSettings kafka, ProjectionSettings settings,
        Func<CancellationToken, Task<System.Data.Common.DbConnection>>? openJournal = null) =>
        Props.Create(() => new ChatEventsProjection(publisher, offsets, kafka, settings, openJournal));

    public CircuitBreaker Breaker => _sink.Breaker;

    protected override void PreStart()
    {
        var system = Context.System;
        _killSwitch = ProjectionRunner.Run(Name, ConversationActor.KindTag, system, _settings, () => _offsets.LoadAsync(Name),
            async list => Offset.Set(await _outbound.WriteAsync(list)), _materializer, _log);
        _sweeping = _outbound.ScheduleSweeps(_settings, Self, Context.System.Scheduler);
    }

    private static Task<IReadOnlyList<KafkaPublisher.OutboundRecord>> Records(IReadOnlyList<EventEnvelope> batch) =>
        Task.FromResult<IReadOnlyList<KafkaPublisher.OutboundRecord>>([.. batch.Select(ChatEventRecord.From).OfType<ChatEventRecord>()
            .Select(r => new KafkaPublisher.OutboundRecord(r.Key, r.PartitionKey, r.ToUtf8Json(),
                new Dictionary<string, string> { ["tenant_id"] = r.TenantId, ["type"] = r.Type, ["seq"] = r.Seq.ToString() }))]);

    protected override void PostStop()
    {
        _sweeping?.Cancel();
        _killSwitch?.Shutdown();
    }
}

/// <summary>A projection's stored offset in <c>rm_projection_offsets</c>, for projections that write no table rows.</summary>
public sealed class ProjectionOffsetStore(ReadModelStore store)
{
    public ReadModelStore Store => store;

    private readonly ReadModelWriter _reader = new(store);

    public Task<long> LoadAsync(string name) => _reader.LoadOffsetAsync(name);

    public async Task SaveAsync(string name, long offset)
    {
        await using var c = await store.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "INSERT INTO rm_projection_offsets (name, last_offset) VALUES (@name, @offset) " +
                          "ON CONFLICT (name) DO UPDATE SET last_offset = excluded.last_offset";
        var n = cmd.CreateParameter();
        n.ParameterName = "name";
        n.Value = name;
        cmd.Parameters.Add(n);
        var o = cmd.CreateParameter();
        o.ParameterName = "offset";
        o.Value = offset;
        cmd.Parameters.Add(o);
        await cmd.ExecuteNonQueryAsync();
    }
}
