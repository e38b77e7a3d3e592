using Caas.Actors.Conversations;
using Caas.Enrichment;
using Caas.Streams.Pipeline;
using Microsoft.Extensions.Time.Testing;

namespace Caas.Streams.Tests.Pipeline;

/// <summary>
/// The enrich stage and its breakers on their own, on a fake clock: budgets, call timeouts and resets pass only when
/// the test moves the clock, so nothing here depends on the machine's speed.
/// </summary>
public sealed class EnrichStageTests
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Reset = TimeSpan.FromMinutes(1);

    private static PipelineSettings Settings(int maxFailures = 3) => PipelineSettings.Default with
    {
        EnrichBudget = Budget,
        BreakerMaxFailures = maxFailures,
        BreakerReset = Reset,
        BreakerCallTimeout = CallTimeout,
    };

    private static IngestMessage Message(int i) =>
        new("t-stage", "c-1", "alice", $"m-{i}", new MessageContent("text", "three little words"), IngestSource.Rest);

    private static Task<MessageEnrichment?> EnrichAsync(EnrichStage stage, int i) => stage.EnrichAsync(Message(i), "UTC", "US");

    private sealed record Words(int Count);

    /// <summary>Answers at once (a completed value task), or throws at once while <see cref="Throwing"/>.</summary>
    private sealed class Inline(string name) : IEnricher
    {
        public int Calls;
        public volatile bool Throwing;
        public string Name => name;
        public string Version => "1";

        public ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
        {
            Interlocked.Increment(ref Calls);
            if (Throwing) throw new InvalidOperationException("broken");
            return ValueTask.FromResult(EnrichmentResult.From(this, new Words(input.Text.Split(' ').Length)));
        }
    }

    /// <summary>Answers off the caller's thread once released; honours its token unless told to ignore it.</summary>
    private sealed class Gated(string name, bool ignoresToken = false) : IEnricher
    {
        public int Calls;
        public int Answered;
        private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public string Name => name;
        public string Version => "1";

        public void Release() => _gate.TrySetResult();

        public async ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
        {
            Interlocked.Increment(ref Calls);
            await Task.Yield();
            if (ignoresToken) await _gate.Task;
            else await _gate.Task.WaitAsync(ct);
            Interlocked.Increment(ref Answered);
            return EnrichmentResult.From(this, new Words(3));
        }
    }

    private static async Task EventuallyAsync(Func<bool> condition)
    {
        // Waits for work the test already caused (a continuation on the thread pool), bounded far past any machine.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task Enrichers_that_answer_at_once_are_recorded_and_their_results_serialized()
    {
        var stage = new EnrichStage([new Inline("a"), new Inline("b")], Settings(), new FakeTimeProvider());
        var enrichment = await EnrichAsync(stage, 0);
        Assert.NotNull(enrichment);
        Assert.Empty(enrichment.Degraded);
        Assert.Equal(["a", "b"], enrichment.Results.Select(r => r.Name));
        Assert.All(enrichment.Results, r => Assert.Equal(3, r.Data.GetProperty("count").GetInt32()));
    }

    [Fact]
    public async Task A_throwing_enricher_is_cut_off_after_max_failures_in_a_row_and_tried_once_after_the_reset()
    {
        var time = new FakeTimeProvider();
        var broken = new Inline("broken") { Throwing = true };
        var fine = new Inline("fine");
        var stage = new EnrichStage([broken, fine], Settings(maxFailures: 3), time);

        for (var i = 0; i < 5; i++)
        {
            var e = await EnrichAsync(stage, i);
            Assert.Equal(["broken"], e!.Degraded.ToArray());
            Assert.Equal(["fine"], e.Results.Select(r => r.Name)); // the other enricher is not held back
        }
        Assert.Equal(3, broken.Calls); // the fourth and fifth messages did not call it
        Assert.Equal(5, fine.Calls);

        // After the reset one message tries it again: still broken, so it stays cut off for another reset.
        time.Advance(Reset);
        await EnrichAsync(stage, 5);
        await EnrichAsync(stage, 6);
        Assert.Equal(4, broken.Calls);

        // Mended: the next trial closes the breaker and every message calls it again.
        broken.Throwing = false;
        time.Advance(Reset);
        for (var i = 7; i < 10; i++)
        {
            var e = await EnrichAsync(stage, i);
            Assert.Empty(e!.Degraded.ToArray());
        }
        Assert.Equal(7, broken.Calls);
    }

    [Fact]
    public async Task A_success_between_failures_starts_the_count_again()
    {
        var flaky = new Inline("flaky");
        var stage = new EnrichStage([flaky], Settings(maxFailures: 2), new FakeTimeProvider());
        for (var i = 0; i < 6; i++)
        {
            flaky.Throwing = i % 2 == 0; // fail, answer, fail, answer, ...
            await EnrichAsync(stage, i);
        }
        Assert.Equal(6, flaky.Calls); // never two failures in a row: never opened
    }

    [Fact]
    public async Task Runs_that_stop_at_their_budget_when_asked_are_not_failures()
    {
        var time = new FakeTimeProvider();
        var stalled = new Gated("stalled");
        var stage = new EnrichStage([stalled, new Inline("fine")], Settings(maxFailures: 1), time);
        for (var i = 0; i < 3; i++)
        {
            var pending = EnrichAsync(stage, i);
            await EventuallyAsync(() => Volatile.Read(ref stalled.Calls) == i + 1);
            time.Advance(Budget); // the budget: the message stops waiting and the enricher stops, as asked
            var e = await pending;
            Assert.Equal(["stalled"], e!.Degraded.ToArray());
            Assert.Equal(["fine"], e.Results.Select(r => r.Name));
        }
        Assert.Equal(3, stalled.Calls); // one failure would have opened it (max 1): none was counted
    }

    [Fact]
    public async Task A_run_that_ignores_its_budget_is_judged_at_its_call_timeout()
    {
        var time = new FakeTimeProvider();
        var hanging = new Gated("hanging", ignoresToken: true);
        var stage = new EnrichStage([hanging], Settings(maxFailures: 2), time);

        // Two messages, each cut at its budget while the enricher runs on (it ignores its token).
        for (var i = 0; i < 2; i++)
        {
            var pending = EnrichAsync(stage, i);
            await EventuallyAsync(() => Volatile.Read(ref hanging.Calls) == i + 1);
            time.Advance(Budget);
            Assert.Equal(["hanging"], (await pending)!.Degraded.ToArray()); // the message went on at its budget
        }
        // Both runs are still going, neither past its call timeout: not judged, the breaker is closed.
        Assert.Equal(2, stage.LateRuns);
        Assert.False(stage.IsBreakerOpen("hanging"));

        // Past the call timeout both count as failures (max 2): the breaker opens, and messages no longer call it.
        time.Advance(CallTimeout);
        await EventuallyAsync(() => stage.LateRuns == 0);
        Assert.True(stage.IsBreakerOpen("hanging"));
        for (var i = 2; i < 5; i++) Assert.Equal(["hanging"], (await EnrichAsync(stage, i))!.Degraded.ToArray());
        Assert.Equal(2, Volatile.Read(ref hanging.Calls));
        hanging.Release();
    }

    [Fact]
    public async Task A_run_that_answers_after_its_budget_but_before_its_call_timeout_is_a_success()
    {
        var time = new FakeTimeProvider();
        var late = new Gated("late", ignoresToken: true);
        var stage = new EnrichStage([late], Settings(maxFailures: 1), time);
        var pending = EnrichAsync(stage, 0);
        await EventuallyAsync(() => Volatile.Read(ref late.Calls) == 1);
        time.Advance(Budget);
        Assert.Equal(["late"], (await pending)!.Degraded.ToArray());
        Assert.Equal(1, stage.LateRuns);
        late.Release(); // answers now, before its call timeout
        await EventuallyAsync(() => stage.LateRuns == 0);
        time.Advance(CallTimeout);
        // Judged a success: the breaker (max 1) stayed closed, and the next message calls it and gets its answer.
        Assert.False(stage.IsBreakerOpen("late"));
        var next = await EnrichAsync(stage, 1);
        Assert.Equal(2, Volatile.Read(ref late.Calls));
        Assert.Equal(["late"], next!.Results.Select(r => r.Name));
    }
}

public sealed class EnricherBreakerTests
{
    [Fact]
    public void Opens_after_max_failures_refuses_until_the_reset_then_lets_one_trial_through()
    {
        var time = new FakeTimeProvider();
        int opened = 0, closed = 0;
        var breaker = new EnricherBreaker(2, TimeSpan.FromSeconds(10), time, () => opened++, () => closed++);

        Assert.True(breaker.TryEnter(out var trial));
        Assert.False(trial);
        breaker.Failed(trial);
        Assert.False(breaker.IsOpen);
        breaker.Failed(false);
        Assert.True(breaker.IsOpen);
        Assert.Equal(1, opened);
        Assert.False(breaker.TryEnter(out _));

        time.Advance(TimeSpan.FromSeconds(9));
        Assert.False(breaker.TryEnter(out _));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(breaker.TryEnter(out trial));
        Assert.True(trial);
        Assert.False(breaker.TryEnter(out _)); // one trial at a time
        breaker.Failed(trial);
        Assert.True(breaker.IsOpen);
        Assert.False(breaker.TryEnter(out _)); // open for another reset from the trial's failure

        time.Advance(TimeSpan.FromSeconds(10));
        Assert.True(breaker.TryEnter(out trial));
        breaker.Succeeded(trial);
        Assert.False(breaker.IsOpen);
        Assert.Equal(1, closed);
        // the count starts again: one failure does not open it
        breaker.Failed(false);
        Assert.False(breaker.IsOpen);
    }

    [Fact]
    public void Late_failures_of_calls_let_through_before_it_opened_do_not_extend_the_open_time()
    {
        var time = new FakeTimeProvider();
        var breaker = new EnricherBreaker(1, TimeSpan.FromSeconds(10), time);
        breaker.Failed(false);
        time.Advance(TimeSpan.FromSeconds(9));
        breaker.Failed(false); // a call from before the opening, ending now
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(breaker.TryEnter(out var trial));
        Assert.True(trial);
    }

    [Fact]
    public async Task Concurrent_callers_after_the_reset_get_exactly_one_trial()
    {
        var time = new FakeTimeProvider();
        var breaker = new EnricherBreaker(1, TimeSpan.FromSeconds(10), time);
        breaker.Failed(false);
        time.Advance(TimeSpan.FromSeconds(10));
        var entered = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 1000; i++)
                if (breaker.TryEnter(out var t) && t)
                    Interlocked.Increment(ref entered);
        })));
        Assert.Equal(1, entered);
    }
}
