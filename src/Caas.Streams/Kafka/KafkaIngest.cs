using System.Text;
using Akka.Actor;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Streams.DeadLetters;
using Caas.Streams.Pipeline;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Caas.Streams.Kafka;

/// <summary>
/// Kafka into the pipeline: every <c>chat.messages</c> record is read, submitted through the one ingest path and
/// completed — so its offset may be committed — only once it is persisted (or a repeat) or dead-lettered with its
/// reason. An overloaded pipeline is waited out, not dead-lettered.
/// </summary>
public sealed class KafkaIngest(KafkaSettings settings, IServiceProvider services, ILogger<KafkaIngest> logger) : IHostedService
{
    private static readonly Counter Records = Metrics.CreateCounter("caas_kafka_ingest_total",
        "chat.messages records by outcome (persisted, duplicate, dead_lettered).", "outcome");

    private KafkaConsumerControl? _control;
    private Task? _completion;

    public KafkaConsumerControl? Control => _control;

    public async Task StartAsync(CancellationToken ct)
    {
        await KafkaTopics.EnsureAsync(settings, [settings.MessagesTopic, settings.EventsTopic, settings.DeadLetterTopic], logger);
        var system = services.GetRequiredService<ActorSystem>();
        var ingest = services.GetRequiredService<IMessageIngest>();
        var letters = services.GetRequiredService<DeadLetterStore>();
        (_control, _completion) = Run(settings, ingest, letters, system.Materializer(), logger);
        logger.LogInformation("Kafka ingest from {Topic} on {Bootstrap} (group {Group}, profile {Profile})", settings.MessagesTopic,
            settings.Bootstrap, settings.GroupId, settings.Profile);
    }

    public async Task StopAsync(CancellationToken ct)
    {
        if (_control is null) return;
        await _control.StopAsync().WaitAsync(ct);
        await _completion!.WaitAsync(ct);
    }

    /// <summary>The ingest graph: consumer source → read → submit (in order, many at once) → dead-letter → complete.</summary>
    public static (KafkaConsumerControl Control, Task Completion) Run(KafkaSettings settings, IMessageIngest ingest, DeadLetterStore letters,
        IMaterializer materializer, ILogger logger, string? clientId = null)
    {
        var (control, done) = KafkaConsumerSource.Create(settings, [settings.MessagesTopic], logger, clientId)
            .SelectAsync(settings.Parallelism, record => HandleAsync(record, settings, ingest, letters, logger))
            .ToMaterialized(Sink.Ignore<CommittableRecord>(), Keep.Both)
            .Run(materializer);
        return (control, done);
    }

    private static async Task<CommittableRecord> HandleAsync(CommittableRecord record, KafkaSettings settings, IMessageIngest ingest,
        DeadLetterStore letters, ILogger logger)
    {
        var read = ChatMessageRecord.Read(record.Topic, record.Key, record.Value, settings);
        if (read.Message is not { } message)
        {
            await DeadLetterAsync(letters, read.TenantId, read.Code!, read.Reason!, RawPayload(record), logger, record);
            record.Complete();
            return record;
        }
        var backoff = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            var outcome = await ingest.SubmitAsync(message);
            switch (outcome)
            {
                case Persisted p:
                    Records.WithLabels(p.Ack.Repeat ? "duplicate" : "persisted").Inc();
                    record.Complete();
                    return record;
                case Rejected { Rejection.Code: ErrorCodes.Overloaded }:
                    // Not the record's fault: wait and submit it again (the message_id makes a repeat harmless).
                    await Task.Delay(backoff);
                    backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 2_000));
                    continue;
                case Rejected r:
                    await DeadLetterAsync(letters, message.TenantId, r.Rejection.Code, r.Rejection.Message, DeadLetterStore.PayloadOf(message),
                        logger, record);
                    record.Complete();
                    return record;
            }
        }
    }

    /// <summary>Stores the dead letter; a database outage is retried — the record stays incomplete, so its offset holds.</summary>
    private static async Task DeadLetterAsync(DeadLetterStore letters, string? tenant, string code, string reason, string payload,
        ILogger logger, CommittableRecord record)
    {
        var backoff = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                await letters.AddAsync(tenant, IngestSource.Kafka, code, reason, payload, record.Topic);
                Records.WithLabels("dead_lettered").Inc();
                logger.LogInformation("Kafka record {Record} dead-lettered: {Code} {Reason}", record, code, reason);
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Dead-lettering {Record} failed; retrying", record);
                await Task.Delay(backoff);
                backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 5_000));
            }
        }
    }

    /// <summary>The record's value as text when it is UTF-8, otherwise base64 (marked), so the letter keeps it whole.</summary>
    private static string RawPayload(CommittableRecord record)
    {
        if (record.Value is null) return "";
        try
        {
            return new UTF8Encoding(false, true).GetString(record.Value);
        }
        catch (DecoderFallbackException)
        {
            return "base64:" + Convert.ToBase64String(record.Value);
        }
    }
}

/// <summary>Kafka ingest on a node.</summary>
public static class KafkaHostingExtensions
{
    public static IServiceCollection AddKafkaIngest(this IServiceCollection services, KafkaSettings settings)
    {
        services.AddSingleton(settings);
        services.AddSingleton<KafkaIngest>();
        services.AddHostedService(sp => sp.GetRequiredService<KafkaIngest>());
        services.AddSingleton<KafkaOutbound>();
        services.AddHostedService(sp => sp.GetRequiredService<KafkaOutbound>());
        return services;
    }
}
