using System.Collections.Immutable;
using System.Text.Json;
using Akka.Actor;
using Akka.Pattern;
using Caas.Actors.Conversations;
using Caas.Enrichment;
using Prometheus;

namespace Caas.Streams.Pipeline;

/// <summary>
/// Runs the registered enrichers of a message concurrently under one time budget. Each enricher sits behind its own
/// circuit breaker: a slow or failing one is cut off and the message goes on marked "not enriched by X", never held.
/// </summary>
public sealed class EnrichStage
{
    private static readonly Counter Degraded = Metrics.CreateCounter("caas_enrichment_degraded_total",
        "Messages that went on without an enricher's result.", "enricher", "why");
    private static readonly Gauge BreakerOpen = Metrics.CreateGauge("caas_enrichment_breaker_open",
        "1 while an enricher's circuit breaker is open.", "enricher");

    private readonly (IEnricher Enricher, CircuitBreaker Breaker)[] _enrichers;
    private readonly TimeSpan _budget;

    public EnrichStage(IEnumerable<IEnricher> enrichers, IScheduler scheduler, PipelineSettings settings)
    {
        _budget = settings.EnrichBudget;
        _enrichers = enrichers.Where(e => !e.NeedsAttachment).Select(e =>
        {
            var breaker = new CircuitBreaker(scheduler, settings.BreakerMaxFailures, settings.EnrichBudget, settings.BreakerReset);
            var name = e.Name;
            breaker.OnOpen(() => BreakerOpen.WithLabels(name).Set(1));
            breaker.OnClose(() => BreakerOpen.WithLabels(name).Set(0));
            return (e, breaker);
        }).ToArray();
    }

    public IReadOnlyList<string> Names => _enrichers.Select(e => e.Enricher.Name).ToList();

    public async Task<MessageEnrichment?> EnrichAsync(IngestMessage m, string timeZone, string phoneRegion, DateTimeOffset? at = null)
    {
        if (_enrichers.Length == 0 || m.Content.Text is null) return null;
        var input = new EnrichmentInput(m.TenantId, m.ConversationId, m.SenderId, m.Content.Text, at ?? DateTimeOffset.UtcNow, timeZone, phoneRegion);
        using var budget = new CancellationTokenSource(_budget);
        var runs = _enrichers.Select(e => RunAsync(e.Enricher, e.Breaker, input, budget.Token)).ToArray();
        var outcomes = await Task.WhenAll(runs);
        var results = ImmutableArray.CreateBuilder<EnricherOutput>();
        var degraded = ImmutableArray.CreateBuilder<string>();
        foreach (var (name, output, why) in outcomes)
        {
            if (output is not null) results.Add(output);
            else
            {
                degraded.Add(name);
                Degraded.WithLabels(name, why!).Inc();
            }
        }
        return new MessageEnrichment(results.ToImmutable(), degraded.ToImmutable());
    }

    private static async Task<(string Name, EnricherOutput? Output, string? Why)> RunAsync(IEnricher enricher, CircuitBreaker breaker,
        EnrichmentInput input, CancellationToken budget)
    {
        if (breaker.IsOpen) return (enricher.Name, null, "breaker_open");
        try
        {
            // The enricher may ignore cancellation: WaitAsync stops waiting for it at the budget either way.
            var result = await breaker.WithCircuitBreaker(ct =>
            {
                var both = CancellationTokenSource.CreateLinkedTokenSource(ct, budget);
                return enricher.EnrichAsync(input, both.Token).AsTask().WaitAsync(both.Token).ContinueWith(t =>
                {
                    both.Dispose();
                    return t;
                }, TaskScheduler.Default).Unwrap();
            });
            var data = JsonSerializer.SerializeToElement(result.Payload, result.Payload.GetType(), EnrichmentJson.Options);
            return (enricher.Name, new EnricherOutput(result.Enricher, result.Version, data), null);
        }
        catch (OperationCanceledException)
        {
            return (enricher.Name, null, "over_budget");
        }
        catch (TimeoutException)
        {
            return (enricher.Name, null, "over_budget");
        }
        catch (OpenCircuitException)
        {
            return (enricher.Name, null, "breaker_open");
        }
        catch (Exception)
        {
            return (enricher.Name, null, "failed");
        }
    }
}
