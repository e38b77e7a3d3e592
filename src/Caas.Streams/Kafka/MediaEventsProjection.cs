using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Event;
using Akka.Pattern;
using Akka.Persistence.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Media;
using Caas.Streams.ReadModel;
using Prometheus;

namespace Caas.Streams.Kafka;

/// <summary>
/// One <c>media.events</c> record: key <c>tenant|file|seq</c> (seq: the event's sequence in the file's own journal,
/// 1 for the upload), partition by <c>tenant|file</c>, value JSON
/// <c>{type: uploaded|deleted|erased, tenant_id, file_id, conversation_id, owner_id, actor_id, content_type, kind,
/// size, sha256, occurred_at, seq}</c>. No bytes and no file name: chat.events carries message content only sealed, and
/// a file's name is content of the same kind.
/// </summary>
public sealed record MediaEventRecord(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("tenant_id")] string TenantId,
    [property: JsonPropertyName("file_id")] string FileId,
    [property: JsonPropertyName("conversation_id")] string ConversationId,
    [property: JsonPropertyName("owner_id")] string? OwnerId,
    [property: JsonPropertyName("actor_id")] string ActorId,
    [property: JsonPropertyName("content_type")] string? ContentType,
    [property: JsonPropertyName("kind")] string? Kind,
    [property: JsonPropertyName("size")] long? Size,
    [property: JsonPropertyName("sha256")] string? Sha256,
    [property: JsonPropertyName("occurred_at")] DateTimeOffset OccurredAt,
    [property: JsonPropertyName("seq")] long Seq)
{
    public const string Uploaded = "uploaded", Deleted = "deleted", Erased = "erased";

    private static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    public string Key => $"{TenantId}|{FileId}|{Seq}";

    public string PartitionKey => $"{TenantId}|{FileId}";

    /// <param name="uploadOf">the file's upload event (a deletion carries only the file id; the rest comes from it)</param>
    public static MediaEventRecord? From(EventEnvelope envelope, Func<string, MediaFile?> uploadOf) => envelope.Event switch
    {
        MediaUploaded u => new MediaEventRecord(Uploaded, u.File.TenantId, u.File.FileId, u.File.ConversationId, u.File.OwnerId, u.Meta.ActorId,
            u.File.ContentType, u.File.Kind, u.File.Size, u.File.Sha256, u.Meta.OccurredAt, envelope.SequenceNr),
        MediaDeleted d => uploadOf(envelope.PersistenceId) is var f
            ? new MediaEventRecord(d.Erasure ? Erased : Deleted, d.Meta.TenantId, d.FileId, d.ConversationId, f?.OwnerId, d.Meta.ActorId,
                f?.ContentType, f?.Kind, f?.Size, f?.Sha256, d.Meta.OccurredAt, envelope.SequenceNr)
            : null,
        _ => null,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The record as UTF-8 JSON, the bytes <see cref="ToJson"/> would encode to.</summary>
    public byte[] ToUtf8Json() => JsonSerializer.SerializeToUtf8Bytes(this, Json);
}

/// <summary>
/// The outbound <c>media.events</c> projection, built as <see cref="ChatEventsProjection"/> is: the journal's events
/// tagged <c>media</c>, in batches through <see cref="ProjectionRunner"/>, the offset (<c>media-events</c>) stored only
/// after the broker acknowledged the batch, retried under backoff behind a circuit breaker. At-least-once: a replayed
/// batch repeats records with the same keys.
/// </summary>
public sealed class MediaEventsProjection : ReceiveActor
{
    public const string Name = "media-events";

    private static readonly Counter Published = Metrics.CreateCounter("caas_kafka_media_events_published_total", "media.events records acknowledged by the broker.");

    private readonly ProjectionOffsetStore _offsets;
    private readonly ProjectionSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly KafkaSink _sink;
    private readonly OrderedWriter _outbound;
    private UniqueKillSwitch? _killSwitch;
    private readonly IMaterializer _materializer = Context.Materializer();
    private ICancelable? _sweeping;

    public MediaEventsProjection(KafkaPublisher publisher, ProjectionOffsetStore offsets, KafkaSettings kafka, ProjectionSettings settings,
        Func<CancellationToken, Task<System.Data.Common.DbConnection>>? openJournal = null)
    {
        _offsets = offsets;
        _settings = settings;
        _sink = new KafkaSink(Context.System.Scheduler, publisher, kafka, settings, Name, kafka.MediaEventsTopic, _log, Published);
        var system = Context.System;
        var materializer = _materializer;
        _outbound = OutboundProjection.Create(Name, "media|", system, materializer, offsets, _sink,
            async list => await RecordsAsync(list, system, materializer), settings, openJournal, _log);
        ReceiveAsync<SweepLateCommits>(_ => _outbound.SweepOrLogAsync());
        ReceiveAny(_ => { });
    }

    public static Props PropsFor(KafkaPublisher publisher, ProjectionOffsetStore offsets, KafkaSettings kafka, ProjectionSettings settings,
        Func<CancellationToken, Task<System.Data.Common.DbConnection>>? openJournal = null) =>
        Props.Create(() => new MediaEventsProjection(publisher, offsets, kafka, settings, openJournal));

    protected override void PreStart()
    {
        var system = Context.System;
        _killSwitch = ProjectionRunner.Run(Name, MediaActor.KindTag, system, _settings, () => _offsets.LoadAsync(Name),
            list => _outbound.WriteAsync(list), _materializer, _log);
        _sweeping = _outbound.ScheduleSweeps(_settings, Self, Context.System.Scheduler);
    }

    /// <summary>The batch's records; a deletion's file facts come from its upload (in this batch, else the file's journal).</summary>
    private static async Task<List<KafkaPublisher.OutboundRecord>> RecordsAsync(IReadOnlyList<EventEnvelope> batch, ActorSystem system,
        IMaterializer materializer)
    {
        var uploads = new Dictionary<string, MediaFile>(StringComparer.Ordinal);
        foreach (var e in batch)
            if (e.Event is MediaUploaded u) uploads[e.PersistenceId] = u.File;
        foreach (var e in batch)
        {
            if (e.Event is not MediaDeleted || uploads.ContainsKey(e.PersistenceId)) continue;
            var events = await ProjectionRunner.ReadJournal(system).CurrentEventsByPersistenceId(e.PersistenceId, 0, long.MaxValue)
                .RunWith(Sink.Seq<EventEnvelope>(), materializer);
            if (events.Select(x => x.Event).OfType<MediaUploaded>().FirstOrDefault() is { } found) uploads[e.PersistenceId] = found.File;
        }
        return batch.Select(e => MediaEventRecord.From(e, pid => uploads.GetValueOrDefault(pid))).OfType<MediaEventRecord>()
            .Select(r => new KafkaPublisher.OutboundRecord(r.Key, r.PartitionKey, r.ToUtf8Json(),
                new Dictionary<string, string> { ["tenant_id"] = r.TenantId, ["type"] = r.Type }))
            .ToList();
    }

    protected override void PostStop()
    {
        _sweeping?.Cancel();
        _killSwitch?.Shutdown();
    }
}
