using Akka;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Prometheus;

namespace Caas.Streams.Pipeline;

/// <summary>
/// The one graph every message travels, whichever way it came in (REST, the hub, bulk NDJSON, Kafka):
/// <code>
///   ingest (bounded queue: full → 503 + Retry-After; an interactive message expected to wait past its budget → 503 at once)
///     → recall   (the sender's own retry answered from the dedupe window)
///     → validate (structure, size, tenant limits)
///     → admit    (the conversation entity: member, not banned or muted; a refusal costs nothing more)
///     → attach   (an attachment's file: same tenant and conversation, complete; its metadata copied in)
///     → claim    (tenant-wide message_id claim, many per statement; a stored id stays taken for good)
///     → rate     (the sender's UserSession entity: per minute and per hour)
///     → enrich   (enrichers under a time budget, behind breakers)
///     → seal     (content and enrichment under the sender's data key; the key loaded asynchronously on a miss)
///     → order + persist (FIFO per conversation, no head-of-line blocking → the conversation entity persists)
///     → record   (the stored ids become permanently taken, many per statement; then the sender has its ack)
/// </code>
/// What follows the journal — read model, search, outbound topics — are projections with stored offsets; fan-out
/// to sockets is the entity's publish.
/// </summary>
public sealed class MessageGraph : IMessageIngest
{
    private static readonly Gauge Queued = Metrics.CreateGauge("caas_pipeline_in_flight", "Messages inside the pipeline graph.");
    private static readonly Counter Refused = Metrics.CreateCounter("caas_pipeline_overloaded_total", "Messages refused at ingest because the queue was full.");

    private static readonly Counter Shed = Metrics.CreateCounter("caas_pipeline_shed_total",
        "Interactive messages refused at ingest because their expected wait in the graph was past the budget.");

    private readonly ISourceQueueWithComplete<Submission> _ingest;
    private readonly PipelineStages _stages;
    private readonly PipelineSettings _settings;
    private readonly IngestWaitEstimate _wait = new();

    public MessageGraph(PipelineStages stages, PipelineSettings settings, IMaterializer materializer)
    {
        _stages = stages;
        _settings = settings;
        _ingest = Source.Queue<Submission>(settings.QueueSize, OverflowStrategy.DropNew)
            .Via(stages.Recall())
            .Via(stages.Validate())
            .Via(stages.Admit())
            .Via(stages.Attach())
            .Via(stages.Claim())
            .Via(stages.RateLimit())
            .Via(stages.Enrich())
            .Via(stages.Seal())
            .Via(stages.OrderAndPersist())
            .Via(stages.RecordClaims())
            .To(Sink.Ignore<Submission>())
            .Run(materializer);
        // Every node purges; the deletes are idempotent.
        Source.Tick(settings.ClaimsPurgeInterval, settings.ClaimsPurgeInterval, NotUsed.Instance)
            .SelectAsync(1, _ => stages.PurgeStaleClaimsAsync())
            .To(Sink.Ignore<int>())
            .Run(materializer);
    }

    /// <summary>How long a message entering now is expected to wait (null while the graph holds few).</summary>
    public TimeSpan? ExpectedWait => _wait.ExpectedWait(_stages.InGraph, _settings.InteractiveShedMinInGraph);

    public async Task<IngestOutcome> SubmitAsync(IngestMessage message, CancellationToken ct = default)
    {
        if (message.Source is IngestSource.Rest or IngestSource.Hub && _settings.InteractiveWaitBudget > TimeSpan.Zero
            && ExpectedWait is { } wait && wait > _settings.InteractiveWaitBudget)
        {
            Shed.Inc();
            var retryAfter = wait == TimeSpan.MaxValue ? 2 : Math.Clamp(Math.Ceiling((wait - _settings.InteractiveWaitBudget).TotalSeconds), 1, 30);
            return new Rejected(new Rejection(ErrorCodes.Overloaded,
                "The node is behind; retry shortly (a repeated message_id is safe).", RetryAfterSeconds: retryAfter));
        }
        var submission = new Submission(message);
        // Counted before it is offered, so a message always counts itself when it reaches the enrich stage.
        _stages.Entered();
        IQueueOfferResult offered;
        try
        {
            offered = await _ingest.OfferAsync(submission);
        }
        catch
        {
            _stages.Left();
            throw;
        }
        if (offered is not QueueOfferResult.Enqueued)
        {
            _stages.Left();
            Refused.Inc();
            return new Rejected(new Rejection(ErrorCodes.Overloaded, "The ingest queue is full; retry shortly.", RetryAfterSeconds: 1));
        }
        Queued.Inc();
        try
        {
            // The caller may stop waiting; the message still completes its way through the graph.
            return await submission.Outcome.WaitAsync(ct);
        }
        finally
        {
            Queued.Dec();
            _stages.Left();
            _wait.Answered();
        }
    }

    public void Complete() => _ingest.Complete();
}
