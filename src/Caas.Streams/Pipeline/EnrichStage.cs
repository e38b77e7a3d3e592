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
            // Well past the budget, so a run that stops at its budget when asked is judged before the breaker's timeout.
            var callTimeout = settings.BreakerCallTimeout > 2 * settings.EnrichBudget ? settings.BreakerCallTimeout : 2 * settings.EnrichBudget;
            var breaker = new CircuitBreaker(scheduler, settings.BreakerMaxFailures, callTimeout, settings.BreakerReset);
            var name = e.Name;
            breaker.OnOpen(() => BreakerOpen.WithLabels(name).Set(1));
            breaker.OnClose(() => BreakerOpen.WithLabels(name).Set(0));
            return (e, breaker);
        }).ToArray();
    }

    public IReadOnlyList<string> Names => _enrichers.Select(e => e.Enricher.Name).ToList();

    /// <summary>This process's skipped enricher runs so far, by enricher and reason (<c>caas_enrichment_degraded_total</c>).</summary>
    public static IEnumerable<(string Enricher, string Why, double Count)> Skips() =>
        Degraded.GetAllLabelValues().Select(labels => (labels[0], labels[1], Degraded.WithLabels(labels).Value));

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
        // The breaker judges the enricher, not this message's wait. The enricher runs with the message's budget as its
        // token (its work stops there when it honours it); this message stops waiting at the budget either way. The
        // breaker sees the whole run: a failure is an exception, or a run still going after its call timeout (a hang);
        // stopping at the budget when asked is not a failure. So a stall of the whole machine (a GC pause, the disk),
        // which cuts every message in flight at its budget at once, cannot open every breaker and switch enrichment
        // off for breaker-reset, as it did when each cut-off counted.
        Task<EnrichmentResult>? run = null;
        Task<bool> judged;
        try
        {
            // (The breaker's own token ends at its call timeout, after the budget: the enricher gets the budget.)
            judged = breaker.WithCircuitBreaker(_ =>
            {
                run = Start(enricher, input, budget);
                return Judge(run, budget);
            });
        }
        catch (OpenCircuitException)
        {
            return (enricher.Name, null, "breaker_open"); // half-open: another message's call is the one trial
        }
        // Observed here: this message may stop waiting before the breaker's verdict.
        _ = judged.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        if (run is null) return (enricher.Name, null, "breaker_open"); // opened meanwhile: not called
        try
        {
            var result = await run.WaitAsync(budget);
            var data = JsonSerializer.SerializeToElement(result.Payload, result.Payload.GetType(), EnrichmentJson.Options);
            return (enricher.Name, new EnricherOutput(result.Enricher, result.Version, data), null);
        }
        catch (OperationCanceledException) when (budget.IsCancellationRequested)
        {
            return (enricher.Name, null, "over_budget");
        }
        catch (Exception)
        {
            return (enricher.Name, null, "failed");
        }
    }

    private static Task<EnrichmentResult> Start(IEnricher enricher, EnrichmentInput input, CancellationToken budget)
    {
        try
        {
            return enricher.EnrichAsync(input, budget).AsTask();
        }
        catch (Exception e)
        {
            return Task.FromException<EnrichmentResult>(e);
        }
    }

    // What the breaker is told about a run: success when it answered or stopped at the budget it was given.
    private static async Task<bool> Judge(Task<EnrichmentResult> run, CancellationToken budget)
    {
        try
        {
            await run;
        }
        catch (OperationCanceledException) when (budget.IsCancellationRequested)
        {
        }
        return true;
    }
}
