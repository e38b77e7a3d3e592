using System.Collections.Immutable;
using System.Text.Json;
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
    private static readonly Gauge Late = Metrics.CreateGauge("caas_enrichment_late_runs",
        "Enricher runs still going after their message went on at its budget, until they end or reach the call timeout.");
    /// <summary>Shared with the attachment enrichers' breakers (<see cref="AttachmentEnrichment"/>).</summary>
    internal static readonly Gauge BreakerOpen = Metrics.CreateGauge("caas_enrichment_breaker_open",
        "1 while an enricher's circuit breaker is open.", "enricher");

    private readonly (IEnricher Enricher, EnricherBreaker Breaker)[] _enrichers;
    private readonly TimeSpan _budget;
    private readonly TimeSpan _callTimeout;
    private readonly TimeProvider _time;
    private int _lateRuns;

    public EnrichStage(IEnumerable<IEnricher> enrichers, PipelineSettings settings, TimeProvider? time = null)
    {
        _budget = settings.EnrichBudget;
        _time = time ?? TimeProvider.System;
        // Well past the budget, so a run that stops at its budget when asked is judged before its call timeout.
        _callTimeout = settings.BreakerCallTimeout > 2 * settings.EnrichBudget ? settings.BreakerCallTimeout : 2 * settings.EnrichBudget;
        _enrichers = enrichers.Where(e => !e.NeedsAttachment).Select(e =>
        {
            var name = e.Name;
            var breaker = new EnricherBreaker(settings.BreakerMaxFailures, settings.BreakerReset, _time,
                onOpen: () => BreakerOpen.WithLabels(name).Set(1), onClose: () => BreakerOpen.WithLabels(name).Set(0));
            return (e, breaker);
        }).ToArray();
    }

    public IReadOnlyList<string> Names => _enrichers.Select(e => e.Enricher.Name).ToList();

    /// <summary>Whether the named enricher's breaker refuses calls now (open, or half-open with its trial out).</summary>
    public bool IsBreakerOpen(string enricher) => _enrichers.Any(e => e.Enricher.Name == enricher && e.Breaker.IsOpen);

    /// <summary>Runs that outlived their message's budget and are not judged yet (<c>caas_enrichment_late_runs</c>).</summary>
    public int LateRuns => Volatile.Read(ref _lateRuns);

    /// <summary>This process's skipped enricher runs so far, by enricher and reason (<c>caas_enrichment_degraded_total</c>).</summary>
    public static IEnumerable<(string Enricher, string Why, double Count)> Skips() =>
        Degraded.GetAllLabelValues().Select(labels => (labels[0], labels[1], Degraded.WithLabels(labels).Value));

    private readonly record struct Outcome(string Name, EnricherOutput? Output, string? Why);

    public async Task<MessageEnrichment?> EnrichAsync(IngestMessage m, string timeZone, string phoneRegion, DateTimeOffset? at = null)
    {
        if (_enrichers.Length == 0 || m.Content.Text is null) return null;
        var input = new EnrichmentInput(m.TenantId, m.ConversationId, m.SenderId, m.Content.Text, at ?? DateTimeOffset.UtcNow, timeZone, phoneRegion);
        using var budget = new CancellationTokenSource(_budget, _time);
        var started = _time.GetTimestamp();
        // Every enricher is started before any is awaited: those that answer at once cost no task; those that go off
        // the thread (entities) run meanwhile.
        var runs = new ValueTask<Outcome>[_enrichers.Length];
        for (var i = 0; i < runs.Length; i++)
            runs[i] = RunAsync(_enrichers[i].Enricher, _enrichers[i].Breaker, input, budget.Token, started);
        var results = ImmutableArray.CreateBuilder<EnricherOutput>(runs.Length);
        var degraded = ImmutableArray.CreateBuilder<string>();
        foreach (var run in runs)
        {
            var (name, output, why) = await run;
            if (output is not null) results.Add(output);
            else
            {
                degraded.Add(name);
                Degraded.WithLabels(name, why!).Inc();
            }
        }
        return new MessageEnrichment(results.ToImmutable(), degraded.ToImmutable());
    }

    // The breaker judges the enricher, not this message's wait. The enricher runs with the message's budget as its token
    // (its work stops there when it honours it); this message stops waiting at the budget either way. A failure is an
    // exception, or a run still going after the call timeout (a hang); stopping at the budget when asked is not a
    // failure. So a stall of the whole machine (a GC pause, the disk), which cuts every message in flight at its budget
    // at once, cannot open every breaker and switch enrichment off for breaker-reset (README: "Enrichers' breakers
    // judge the enricher"). A run that ends while its message waits is judged then; only a run that outlives its
    // message's budget is timed, until its call timeout.
    private async ValueTask<Outcome> RunAsync(IEnricher enricher, EnricherBreaker breaker, EnrichmentInput input,
        CancellationToken budget, long started)
    {
        if (!breaker.TryEnter(out var trial)) return new Outcome(enricher.Name, null, "breaker_open");
        ValueTask<EnrichmentResult> call;
        try
        {
            call = enricher.EnrichAsync(input, budget);
        }
        catch (Exception e)
        {
            return Ended(enricher, breaker, trial, e, budget);
        }
        if (call.IsCompleted)
        {
            EnrichmentResult answered;
            try
            {
                answered = call.Result;
            }
            catch (Exception e)
            {
                return Ended(enricher, breaker, trial, e, budget);
            }
            breaker.Succeeded(trial);
            return Output(enricher, answered);
        }
        var run = call.AsTask();
        try
        {
            var answered = await run.WaitAsync(budget);
            breaker.Succeeded(trial);
            return Output(enricher, answered);
        }
        catch (OperationCanceledException) when (budget.IsCancellationRequested && !run.IsCompleted)
        {
            _ = JudgeLateAsync(breaker, trial, run, budget, started);
            return new Outcome(enricher.Name, null, "over_budget");
        }
        catch (Exception e)
        {
            return Ended(enricher, breaker, trial, e, budget);
        }
    }

    // A run that ended without an answer: stopped at the budget it was asked to honour (not a failure), or failed.
    private static Outcome Ended(IEnricher enricher, EnricherBreaker breaker, bool trial, Exception e, CancellationToken budget)
    {
        if (StoppedAsAsked(e, budget))
        {
            breaker.Succeeded(trial);
            return new Outcome(enricher.Name, null, "over_budget");
        }
        breaker.Failed(trial);
        return new Outcome(enricher.Name, null, "failed");
    }

    // A cancellation (null: the task was cancelled) once the budget asked for it.
    private static bool StoppedAsAsked(Exception? e, CancellationToken budget) =>
        budget.IsCancellationRequested && (e is null or OperationCanceledException);

    // The message went on without this run at its budget: the breaker hears how the run ends, or that it was still
    // going at the call timeout.
    private async Task JudgeLateAsync(EnricherBreaker breaker, bool trial, Task<EnrichmentResult> run, CancellationToken budget, long started)
    {
        Interlocked.Increment(ref _lateRuns);
        Late.Inc();
        try
        {
            var left = _callTimeout - _time.GetElapsedTime(started);
            if (left > TimeSpan.Zero) await run.WaitAsync(left, _time);
        }
        catch (Exception)
        {
            // the call timeout, or the run's own end: either way judged from the run below
        }
        if (!run.IsCompleted)
        {
            breaker.Failed(trial); // a hang
            _ = run.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
                TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        else if (run.IsCompletedSuccessfully || StoppedAsAsked(run.IsCanceled ? null : run.Exception?.InnerException, budget)) breaker.Succeeded(trial);
        else breaker.Failed(trial);
        Late.Dec();
        Interlocked.Decrement(ref _lateRuns);
    }

    private static Outcome Output(IEnricher enricher, EnrichmentResult result)
    {
        try
        {
            var data = JsonSerializer.SerializeToElement(result.Payload, result.Payload.GetType(), EnrichmentJson.Options);
            return new Outcome(enricher.Name, new EnricherOutput(result.Enricher, result.Version, data), null);
        }
        catch (Exception)
        {
            return new Outcome(enricher.Name, null, "failed"); // the enricher answered: not the breaker's failure
        }
    }
}
