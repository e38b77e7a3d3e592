using System.Text;
using Akka.Actor;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
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
        "chat.messages records by outcome (persisted, duplicate, dead_lettered; out_of_turn: a pipelined record sent again after the one before it).", "outcome");

    private static readonly Gauge HeldGauge = Metrics.CreateGauge("caas_kafka_ingest_held",
        "chat.messages records the ingest holds now: submitted, or waiting in their conversation's lane (at most KafkaSettings.MaxHeld).");
    private static readonly Gauge SubmittedGauge = Metrics.CreateGauge("caas_kafka_ingest_submitted",
        "chat.messages records in the pipeline now (at most CAAS_KAFKA_PARALLELISM).");

    /// <summary>Records the ingest holds now, in this process (<c>caas_kafka_ingest_held</c>).</summary>
    public static int Held => (int)HeldGauge.Value;
    /// <summary>Records in the pipeline now, in this process (<c>caas_kafka_ingest_submitted</c>).</summary>
    public static int Submitted => (int)SubmittedGauge.Value;

    /// <summary>Records by outcome so far in this process (<c>caas_kafka_ingest_total</c>: persisted, duplicate, dead_lettered, out_of_turn).</summary>
    public static IEnumerable<(string Outcome, double Count)> Outcomes() =>
        Records.GetAllLabelValues().Select(labels => (labels[0], Records.WithLabels(labels).Value));

    private static readonly Counter Restarts = Metrics.CreateCounter("caas_kafka_ingest_restarts_total",
        "Times the Kafka ingest stream failed and was started again.");

    private volatile KafkaConsumerControl? _control;
    private readonly CancellationTokenSource _stopping = new();
    private Task? _supervision;

    /// <summary>The running stream's consumer (a new one after each restart).</summary>
    public KafkaConsumerControl? Control => _control;

    public async Task StartAsync(CancellationToken ct)
    {
        await KafkaTopics.EnsureAsync(settings, [settings.MessagesTopic, settings.EventsTopic, settings.DeadLetterTopic, settings.MediaEventsTopic], logger);
        var system = services.GetRequiredService<ActorSystem>();
        var ingest = services.GetRequiredService<IMessageIngest>();
        var letters = services.GetRequiredService<DeadLetterStore>();
        _supervision = Supervise(() => Run(settings, ingest, letters, system.Materializer(), logger), control => _control = control,
            settings, logger, _stopping.Token);
        logger.LogInformation("Kafka ingest from {Topic} on {Bootstrap} (group {Group}, profile {Profile})", settings.MessagesTopic,
            settings.Bootstrap, settings.GroupId, settings.Profile);
    }

    public async Task StopAsync(CancellationToken ct)
    {
        if (_supervision is null) return;
        _stopping.Cancel();
        if (_control is { } control) await control.StopAsync().WaitAsync(ct);
        await _supervision.WaitAsync(ct);
    }

    /// <summary>
    /// Keeps the ingest stream running: when it fails (the consumer or a stage threw), it is started again after a
    /// backoff (<see cref="KafkaSettings.RestartMinBackoff"/> doubling to <see cref="KafkaSettings.RestartMaxBackoff"/>,
    /// reset once a stream has run for a minute). The new consumer rejoins the group and resumes from the committed
    /// offsets; records that were in flight are read again, which their message_id makes harmless. Ends when stopped.
    /// </summary>
    public static async Task Supervise(Func<(KafkaConsumerControl Control, Task Completion)> run, Action<KafkaConsumerControl> started,
        KafkaSettings settings, ILogger logger, CancellationToken stopping)
    {
        var backoff = settings.RestartMinBackoff;
        while (!stopping.IsCancellationRequested)
        {
            var since = DateTime.UtcNow;
            Exception? failure = null;
            KafkaConsumerControl? current = null;
            try
            {
                var (control, completion) = run();
                current = control;
                started(control);
                if (stopping.IsCancellationRequested) await control.StopAsync();
                await completion;
                // A stream that completes without being stopped has lost its consumer: start it again as well.
                if (stopping.IsCancellationRequested) return;
            }
            catch (Exception e)
            {
                failure = e;
            }
            // The failed stream's consumer leaves the group (committing what completed), so the next one gets its partitions.
            if (current is not null)
                try
                {
                    await current.StopAsync();
                }
                catch (Exception e)
                {
                    logger.LogWarning(e, "Stopping the failed Kafka ingest consumer failed");
                }
            if (stopping.IsCancellationRequested) return;
            if (DateTime.UtcNow - since > TimeSpan.FromMinutes(1)) backoff = settings.RestartMinBackoff;
            Restarts.Inc();
            logger.LogError(failure, "Kafka ingest stream stopped unexpectedly; starting it again in {Backoff}", backoff);
            try
            {
                await Task.Delay(backoff, stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, settings.RestartMaxBackoff.Ticks));
        }
    }

    /// <summary>
    /// The ingest graph: consumer source → read → submit (many conversations at once, one record at a time per
    /// conversation) → dead-letter → complete. Records finish out of order (the source commits a partition only up to
    /// its lowest incomplete record), so a conversation that waits — a retry, a slow entity — holds back only its own
    /// later records, never the other conversations' (no head-of-line blocking across lanes). The stage holds up to
    /// <see cref="KafkaSettings.MaxHeld"/> records, of which at most <see cref="KafkaSettings.Parallelism"/> are
    /// submitted at once: a record waiting behind its conversation's earlier one takes no submission slot.
    /// </summary>
    public static (KafkaConsumerControl Control, Task Completion) Run(KafkaSettings settings, IMessageIngest ingest, DeadLetterStore letters,
        IMaterializer materializer, ILogger logger, string? clientId = null)
    {
        var lanes = new ConversationLanes(settings.PerConversationInFlight);
        var slots = new SemaphoreSlim(settings.Parallelism, settings.Parallelism);
        var (control, done) = KafkaConsumerSource.Create(settings, [settings.MessagesTopic], logger, clientId)
            .SelectAsyncUnordered(Math.Max(settings.MaxHeld, settings.Parallelism),
                record => HandleAsync(record, settings, ingest, letters, lanes, slots, logger))
            .ToMaterialized(Sink.Ignore<CommittableRecord>(), Keep.Both)
            .Run(materializer);
        return (control, done);
    }

    private static async Task<CommittableRecord> HandleAsync(CommittableRecord record, KafkaSettings settings, IMessageIngest ingest,
        DeadLetterStore letters, ConversationLanes lanes, SemaphoreSlim slots, ILogger logger)
    {
        HeldGauge.Inc();
        try
        {
            return await HandleCoreAsync(record, settings, ingest, letters, lanes, slots, logger);
        }
        finally
        {
            HeldGauge.Dec();
        }
    }

    private static async Task<CommittableRecord> HandleCoreAsync(CommittableRecord record, KafkaSettings settings, IMessageIngest ingest,
        DeadLetterStore letters, ConversationLanes lanes, SemaphoreSlim slots, ILogger logger)
    {
        var read = ChatMessageRecord.Read(record.Topic, record.Key, record.Value, settings);
        if (read.Message is not { } message)
        {
            await DeadLetterAsync(letters, read.TenantId, read.Code!, read.Reason!, RawPayload(record), logger, record);
            record.Complete();
            return record;
        }
        // The stage calls this as records arrive, in offset order, so each conversation's lane takes its records in that order.
        return await lanes.RunAsync(message.TenantId + "\u001f" + message.ConversationId, message.MessageId, async lane =>
        {
            if (lane.AfterMessageId is { } after)
            {
                // Pipelined: the record before it is still on its way, so this one goes now, to be stored only after it.
                var first = await InSlotAsync(slots, () =>
                {
                    var submitted = ingest.SubmitAsync(message with { AfterMessageId = after });
                    lane.Entered();
                    return submitted;
                });
                // Stored, or refused for itself (nothing stored: its place in the lane does not matter).
                if (await SettleAsync(record, message, first, letters, logger)) return record;
                // The one before it was not stored yet (refused, retried, or dead-lettered), or this one was refused for
                // now: wait until that one has its outcome, then go one at a time as below. No slot is held meanwhile.
                Records.WithLabels("out_of_turn").Inc();
                await lane.Previous;
            }
            return await InSlotAsync(slots, () => SubmitAsync(record, message, ingest, letters, logger, lane.Entered));
        });
    }

    /// <summary>Runs <paramref name="work"/> in one of the ingest's submission slots (<c>caas_kafka_ingest_submitted</c>).</summary>
    private static async Task<T> InSlotAsync<T>(SemaphoreSlim slots, Func<Task<T>> work)
    {
        await slots.WaitAsync();
        SubmittedGauge.Inc();
        try
        {
            return await work();
        }
        finally
        {
            SubmittedGauge.Dec();
            slots.Release();
        }
    }

    private static async Task<CommittableRecord> SubmitAsync(CommittableRecord record, IngestMessage message, IMessageIngest ingest,
        DeadLetterStore letters, ILogger logger, Action entered)
    {
        var backoff = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            var submitted = ingest.SubmitAsync(message);
            entered();
            if (await SettleAsync(record, message, await submitted, letters, logger)) return record;
            // Not the record's fault: wait and submit it again (the message_id makes a repeat harmless); the
            // conversation's later records wait in its lane.
            await Task.Delay(backoff);
            backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 2_000));
        }
    }

    /// <summary>
    /// Completes the record when its outcome is final (stored, or refused for itself and dead-lettered); false when it
    /// is to be submitted again: refused for now (<c>overloaded</c>, <c>unavailable</c>) or, pipelined, for its turn.
    /// </summary>
    private static async Task<bool> SettleAsync(CommittableRecord record, IngestMessage message, IngestOutcome outcome, DeadLetterStore letters,
        ILogger logger)
    {
        switch (outcome)
        {
            case Persisted p:
                Records.WithLabels(p.Ack.Repeat ? "duplicate" : "persisted").Inc();
                break;
            case Rejected { Rejection.Code: PostMessage.OutOfOrder or ErrorCodes.Overloaded or ErrorCodes.Unavailable }:
                return false;
            case Rejected r:
                await DeadLetterAsync(letters, message.TenantId, r.Rejection.Code, r.Rejection.Message, DeadLetterStore.PayloadOf(message),
                    logger, record);
                break;
        }
        record.Complete();
        return true;
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

    /// <summary>
    /// The record's value as text when it is UTF-8 without NUL, otherwise base64 (marked), so the letter keeps it
    /// whole (PostgreSQL <c>text</c> holds neither NUL nor invalid UTF-8).
    /// </summary>
    private static string RawPayload(CommittableRecord record)
    {
        if (record.Value is null) return "";
        try
        {
            if (Array.IndexOf(record.Value, (byte)0) >= 0) return "base64:" + Convert.ToBase64String(record.Value);
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
