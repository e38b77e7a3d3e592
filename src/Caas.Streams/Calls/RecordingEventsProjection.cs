using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Cluster.Tools.Singleton;
using Akka.Event;
using Akka.Pattern;
using Akka.Persistence.Query;
using Akka.Streams;
using Caas.Actors.Calls;
using Caas.Streams.Kafka;
using Caas.Streams.ReadModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Caas.Streams.Calls;

/// <summary>The file facts of a <c>stored</c> record (no name, no bytes: as on media.events).</summary>
public sealed record RecordingFileFacts(
    [property: JsonPropertyName("size")] long Size,
    [property: JsonPropertyName("sha256")] string Sha256,
    [property: JsonPropertyName("content_type")] string ContentType);

/// <summary>
/// One <c>webrtc.recording.events</c> record: key <c>tenant|recording|seq</c> (seq: the event's sequence in the call
/// entity's journal), partition by <c>tenant|recording</c>, value JSON <c>{type: requested|consented|declined|started|
/// stopped|stored|deleted, tenant_id, recording_id, call_id, conversation_id, actor_id, user_id?, user_ids?, consent?,
/// how?, reason?, occurred_at, seq, file?: {size, sha256, content_type}}</c>. <c>user_id</c>: the requester, the one
/// answering, who stopped or deleted it; <c>user_ids</c>: who declined or did not answer (declined), who joined
/// unasked (stopped, reason <c>consent_pending</c>). Absent fields are left out.
/// </summary>
public sealed record RecordingEventRecord(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("tenant_id")] string TenantId,
    [property: JsonPropertyName("recording_id")] string RecordingId,
    [property: JsonPropertyName("call_id")] string CallId,
    [property: JsonPropertyName("conversation_id")] string ConversationId,
    [property: JsonPropertyName("actor_id")] string ActorId,
    [property: JsonPropertyName("user_id")] string? UserId,
    [property: JsonPropertyName("user_ids")] IReadOnlyList<string>? UserIds,
    [property: JsonPropertyName("consent")] bool? Consent,
    [property: JsonPropertyName("how")] string? How,
    [property: JsonPropertyName("reason")] string? Reason,
    [property: JsonPropertyName("occurred_at")] DateTimeOffset OccurredAt,
    [property: JsonPropertyName("seq")] long Seq,
    [property: JsonPropertyName("file")] RecordingFileFacts? File)
{
    public const string Requested = "requested", Consented = "consented", Declined = "declined", Started = "started", Stopped = "stopped",
        Stored = "stored", Deleted = "deleted";

    private static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public string Key => $"{TenantId}|{RecordingId}|{Seq}";

    public string PartitionKey => $"{TenantId}|{RecordingId}";

    /// <summary>The record of a recording event; null for the call's other events.</summary>
    public static RecordingEventRecord? From(EventEnvelope envelope)
    {
        if (envelope.Event is not ICallEvent e) return null;
        var conversation = envelope.PersistenceId.Split('|') is ["calls", _, var c] ? c : CallIds.TryParse(e.CallId, out var fromId) ? fromId : "";
        RecordingEventRecord Of(string type, string recordingId) => new(type, e.Meta.TenantId, recordingId, e.CallId, conversation, e.Meta.ActorId,
            null, null, null, null, null, e.Meta.OccurredAt, envelope.SequenceNr, null);
        return e switch
        {
            CallRecordingRequested q => Of(Requested, q.RecordingId) with { UserId = q.RequestedBy, UserIds = q.Awaiting },
            CallRecordingConsented k => Of(Consented, k.RecordingId) with { UserId = k.UserId, Consent = k.Consent, How = k.How },
            CallRecordingDeclined d => Of(Declined, d.RecordingId) with { UserIds = d.UserIds, Reason = d.Reason },
            CallRecordingStarted s => Of(Started, s.RecordingId),
            CallRecordingStopped p => Of(Stopped, p.RecordingId) with { UserId = p.By, UserIds = p.Awaiting, Reason = p.Reason },
            CallRecordingStored st => Of(Stored, st.RecordingId) with { File = new RecordingFileFacts(st.File.Size, st.File.Sha256, st.File.ContentType) },
            CallRecordingDeleted x => Of(Deleted, x.RecordingId) with { UserId = x.By, Reason = x.Reason },
            _ => null,
        };
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The record as UTF-8 JSON, the bytes <see cref="ToJson"/> would encode to.</summary>
    public byte[] ToUtf8Json() => JsonSerializer.SerializeToUtf8Bytes(this, Json);
}

/// <summary>
/// The outbound <c>webrtc.recording.events</c> projection, built as <see cref="MediaEventsProjection"/> is: the
/// journal's events tagged <c>call</c>, in batches through <see cref="ProjectionRunner"/>, the offset
/// (<c>recording-events</c>) stored only after the broker acknowledged the batch, retried under backoff behind a circuit
/// breaker. At-least-once: a replayed batch repeats records with the same keys.
/// </summary>
public sealed class RecordingEventsProjection : ReceiveActor
{
    public const string Name = "recording-events";

    /// <summary>The topic (<c>CAAS_KAFKA_TOPIC_RECORDING_EVENTS</c>, default <c>webrtc.recording.events</c>).</summary>
    public static string TopicFromEnvironment(Func<string, string?>? env = null) =>
        (env ?? Environment.GetEnvironmentVariable)("CAAS_KAFKA_TOPIC_RECORDING_EVENTS") is { Length: > 0 } t ? t : "webrtc.recording.events";

    private static readonly Counter Published = Metrics.CreateCounter("caas_kafka_recording_events_published_total",
        "webrtc.recording.events records acknowledged by the broker.");

    private readonly ProjectionOffsetStore _offsets;
    private readonly ProjectionSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly KafkaSink _sink;
    private readonly OrderedWriter _outbound;
    private UniqueKillSwitch? _killSwitch;
    private readonly IMaterializer _materializer = Context.Materializer();
    private ICancelable? _sweeping;

    public RecordingEventsProjection(KafkaPublisher publisher, ProjectionOffsetStore offsets, KafkaSettings kafka, string topic, ProjectionSettings settings,
        Func<CancellationToken, Task<System.Data.Common.DbConnection>>? openJournal = null)
    {
        (_offsets, _settings) = (offsets, settings);
        _sink = new KafkaSink(Context.System.Scheduler, publisher, kafka, settings, Name, topic, _log, Published);
        _outbound = OutboundProjection.Create(Name, "calls|", Context.System, _materializer, offsets, _sink, Records, settings, openJournal, _log);
        ReceiveAsync<SweepLateCommits>(_ => _outbound.SweepOrLogAsync());
        ReceiveAny(_ => { });
    }

    public static Props PropsFor(KafkaPublisher publisher, ProjectionOffsetStore offsets, KafkaSettings kafka, string topic, ProjectionSettings settings,
        Func<CancellationToken, Task<System.Data.Common.DbConnection>>? openJournal = null) =>
        Props.Create(() => new RecordingEventsProjection(publisher, offsets, kafka, topic, settings, openJournal));

    protected override void PreStart()
    {
        var system = Context.System;
        _killSwitch = ProjectionRunner.Run(Name, CallRoomActor.KindTag, system, _settings, () => _offsets.LoadAsync(Name),
            list => _outbound.WriteAsync(list), _materializer, _log);
        _sweeping = _outbound.ScheduleSweeps(_settings, Self, Context.System.Scheduler);
    }

    private static Task<IReadOnlyList<KafkaPublisher.OutboundRecord>> Records(IReadOnlyList<EventEnvelope> list) =>
        Task.FromResult<IReadOnlyList<KafkaPublisher.OutboundRecord>>(list.Select(RecordingEventRecord.From).OfType<RecordingEventRecord>()
            .Select(r => new KafkaPublisher.OutboundRecord(r.Key, r.PartitionKey, r.ToUtf8Json(),
                new Dictionary<string, string> { ["tenant_id"] = r.TenantId, ["type"] = r.Type }))
            .ToList());

    protected override void PostStop()
    {
        _sweeping?.Cancel();
        _killSwitch?.Shutdown();
    }
}

/// <summary>
/// Starts <see cref="RecordingEventsProjection"/> as a cluster singleton on the projections role when Kafka is on (the
/// node registered <see cref="KafkaSettings"/>); does nothing otherwise. Its topic is created like the others
/// (AdminClient on a modern broker, the broker's auto-create on 0.9), in the background, as the projection retries anyway.
/// </summary>
public sealed class RecordingEventsOutbound(IServiceProvider services, ILogger<RecordingEventsOutbound> logger) : IHostedService
{
    private KafkaPublisher? _publisher;

    public Task StartAsync(CancellationToken ct)
    {
        if (services.GetService<KafkaSettings>() is not { } settings) return Task.CompletedTask;
        var topic = RecordingEventsProjection.TopicFromEnvironment();
        _ = Task.Run(async () =>
        {
            try
            {
                await KafkaTopics.EnsureAsync(settings, [topic], logger);
            }
            catch (Exception e)
            {
                logger.LogWarning("Kafka topic {Topic} not ensured ({Reason}); relying on the broker's auto-create", topic, e.Message);
            }
        }, CancellationToken.None);
        var system = services.GetRequiredService<ActorSystem>();
        _publisher = new KafkaPublisher(settings, logger);
        system.ActorOf(ClusterSingletonManager.Props(
                RecordingEventsProjection.PropsFor(_publisher, new ProjectionOffsetStore(services.GetRequiredService<ReadModelStore>()), settings, topic,
                    ProjectionSettings.From(system.Settings.Config), Kafka.KafkaOutbound.OpenJournal(services)),
                PoisonPill.Instance,
                ClusterSingletonManagerSettings.Create(system).WithRole(KafkaOutbound.ProjectionsRole)),
            "recording-events-projection");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken ct)
    {
        _publisher?.Dispose();
        return Task.CompletedTask;
    }
}
