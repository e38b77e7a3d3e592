namespace Caas.Enrichment;

/// <summary>
/// One enricher of the pipeline's enrich stage. Implementations are thread-safe: the pipeline calls one instance
/// concurrently for many messages, each call under a time budget and behind the enricher's own circuit breaker.
/// </summary>
public interface IEnricher
{
    /// <summary>Stable name, stored with every result so history can be re-enriched by enricher.</summary>
    string Name { get; }

    /// <summary>Changes whenever the output for the same input may change (code, lexicon or model).</summary>
    string Version { get; }

    /// <summary>True for enrichers that only look at attachments and should run off the text hot path.</summary>
    bool NeedsAttachment => false;

    ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct);
}
