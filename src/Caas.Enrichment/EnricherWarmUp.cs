using System.Diagnostics;

namespace Caas.Enrichment;

/// <summary>
/// Runs each text enricher once on a sample message when a node starts, off the request path: the first real message
/// otherwise pays for the enrichers' first use (JIT, the phone-number metadata, the recognisers' patterns, the lexicons)
/// and on a loaded node that went past the enrich budget, so it was stored marked "not enriched by entities".
/// </summary>
public static class EnricherWarmUp
{
    /// <summary>A message that touches every recogniser: a date and time, a phone number, an email, a link, money, a question.</summary>
    public const string Sample = "Can we meet tomorrow at 5pm at 1 Main Street? Call me on +1 415 555 0100 or mail ana@example.com; the plan is at https://example.com/plan and costs $20.";

    /// <summary>The tenant the warm-up message names: not a valid tenant id, so no tenant's model or data is touched.</summary>
    public const string Tenant = "~warm-up";

    public sealed record Warmed(string Enricher, TimeSpan Took, string? Error);

    /// <summary>How long the warm-up waits for one enricher before it goes on to the next (the call itself is not stopped).</summary>
    public static readonly TimeSpan PerEnricher = TimeSpan.FromSeconds(30);

    /// <summary>Each text enricher once, one after another (a node starting has little to spare); failures are reported, never thrown.</summary>
    public static async Task<IReadOnlyList<Warmed>> RunAsync(IEnumerable<IEnricher> enrichers, CancellationToken ct)
    {
        var warmed = new List<Warmed>();
        var input = new EnrichmentInput(Tenant, "~warm-up", "~warm-up", Sample, DateTimeOffset.UtcNow, "Europe/Berlin", "US");
        foreach (var enricher in enrichers.Where(e => !e.NeedsAttachment))
        {
            ct.ThrowIfCancellationRequested();
            var clock = Stopwatch.StartNew();
            try
            {
                await enricher.EnrichAsync(input, ct).AsTask().WaitAsync(PerEnricher, ct);
                warmed.Add(new Warmed(enricher.Name, clock.Elapsed, null));
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                warmed.Add(new Warmed(enricher.Name, clock.Elapsed, $"{e.GetType().Name}: {e.Message}"));
            }
        }
        return warmed;
    }
}
