using Akka.Configuration;

namespace Caas.Streams.Pipeline;

/// <summary>The graph's sizes and budgets (HOCON <c>caas.pipeline</c>).</summary>
public sealed record PipelineSettings(
    int QueueSize,
    int Parallelism,
    int PersistInFlight,
    int PerConversationInFlight,
    int PersistWaiting,
    int ClaimBatchMax,
    int ClaimBatchParallelism,
    TimeSpan AskTimeout,
    TimeSpan EnrichBudget,
    int BreakerMaxFailures,
    TimeSpan BreakerReset,
    TimeSpan DedupeWindow,
    int DedupeMaxEntries,
    long DedupeMaxBytes,
    TimeSpan ClaimsPurgeInterval)
{
    /// <summary>
    /// The high-water mark of deferred enrichment: while more messages than this are inside this node's graph (ingested,
    /// not yet answered), a message is stored with its enrichment deferred instead of waiting for the enrichers; the
    /// enrichment projection fills the results in afterwards. 0 defers every message; a negative value never defers.
    /// </summary>
    public int EnrichHighWater { get; init; } = 1_000;

    /// <summary>
    /// While this node's graph is above <see cref="EnrichHighWater"/> (a burst), the enrichment projection on this node
    /// waits up to this long before each batch, so the deferred enrichers do not take the cores the burst needs; it
    /// catches up once the graph is below the mark. Zero never waits; so does a high-water mark of 0 or less.
    /// </summary>
    public TimeSpan EnrichYieldMax { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Messages sealed at once by the seal stage (order kept). Sealing is a few microseconds of AES once the author's key
    /// is cached; this bounds how many wait on key loads (the database) together.
    /// </summary>
    public int SealParallelism { get; init; } = 4;

    /// <summary>
    /// The longest an interactive message (REST, the hub) may be expected to wait in the graph (see
    /// <see cref="IngestWaitEstimate"/>); beyond it the sender is answered 503 <c>overloaded</c> at once. Zero turns it off.
    /// </summary>
    public TimeSpan InteractiveWaitBudget { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Below this many messages inside the graph no interactive message is refused for the expected wait.</summary>
    public int InteractiveShedMinInGraph { get; init; } = 256;

    /// <summary>
    /// How long an enricher's circuit breaker lets one call run before counting it as a failure (at least twice
    /// <see cref="EnrichBudget"/>). A message stops waiting at its budget; the breaker judges the enricher by whether it
    /// throws or hangs past this, not by one message's wait (README: "Enrichers' breakers judge the enricher").
    /// </summary>
    public TimeSpan BreakerCallTimeout { get; init; } = TimeSpan.FromSeconds(1);

    public static PipelineSettings Default { get; } = new(10_000, 64, 512, 32, 2_048, 512, 4, TimeSpan.FromSeconds(5),
        TimeSpan.FromMilliseconds(50), 5, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(5), 200_000, 64L * 1024 * 1024,
        TimeSpan.FromMinutes(10));

    public static PipelineSettings From(Config config)
    {
        var c = config.GetConfig("caas.pipeline");
        if (c is null || c.IsEmpty) return Default;
        var d = Default;
        return new PipelineSettings(c.GetInt("queue-size", d.QueueSize), c.GetInt("parallelism", d.Parallelism),
            c.GetInt("persist-in-flight", d.PersistInFlight), c.GetInt("per-conversation-in-flight", d.PerConversationInFlight),
            c.GetInt("persist-waiting", d.PersistWaiting), c.GetInt("claim-batch-max", d.ClaimBatchMax),
            c.GetInt("claim-batch-parallelism", d.ClaimBatchParallelism), c.GetTimeSpan("ask-timeout", d.AskTimeout),
            c.GetTimeSpan("enrich-budget", d.EnrichBudget), c.GetInt("breaker-max-failures", d.BreakerMaxFailures),
            c.GetTimeSpan("breaker-reset", d.BreakerReset), c.GetTimeSpan("dedupe-window", d.DedupeWindow),
            c.GetInt("dedupe-max-entries", d.DedupeMaxEntries), c.GetByteSize("dedupe-max-bytes", d.DedupeMaxBytes) ?? d.DedupeMaxBytes,
            c.GetTimeSpan("claims-purge-interval", d.ClaimsPurgeInterval))
        {
            EnrichHighWater = c.GetInt("enrich-high-water", d.EnrichHighWater),
            EnrichYieldMax = c.GetTimeSpan("enrich-yield-max", d.EnrichYieldMax),
            SealParallelism = Math.Max(1, c.GetInt("seal-parallelism", d.SealParallelism)),
            InteractiveWaitBudget = c.GetTimeSpan("interactive-wait-budget", d.InteractiveWaitBudget),
            InteractiveShedMinInGraph = c.GetInt("interactive-shed-min-in-graph", d.InteractiveShedMinInGraph),
            BreakerCallTimeout = c.GetTimeSpan("breaker-call-timeout", d.BreakerCallTimeout),
        };
    }
}
