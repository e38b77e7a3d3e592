using Caas.Actors.Conversations;
using Caas.Enrichment;
using Caas.Enrichment.Attachments;
using Caas.Streams.Media;
using Caas.Streams.Pipeline;
using Microsoft.Extensions.Time.Testing;

namespace Caas.Streams.Tests.Pipeline;

/// <summary>
/// The attachment enrichers' breakers on their own: a real file store (a temporary folder) holds the file, the
/// enrichers are test enrichers that fail or hang on command, and the clock is fake, so call timeouts and resets pass
/// only when the test moves it.
/// </summary>
public sealed class AttachmentEnrichmentTests : IAsyncLifetime
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan Reset = TimeSpan.FromMinutes(1);
    private const string Tenant = "t-attach";

    private readonly string _root = Path.Combine(Path.GetTempPath(), "caas-attach-" + Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _clock = new();
    private FileMediaStore _store = null!;

    public async Task InitializeAsync()
    {
        _store = new FileMediaStore(_root);
        await _store.EnsureReadyAsync();
        await _store.PutAsync(Tenant, "f-1", new MemoryStream("some words in a file"u8.ToArray()));
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_root, recursive: true);
        return Task.CompletedTask;
    }

    private AttachmentEnrichment Enrichment(params IEnricher[] enrichers) => new(enrichers, _store, 1 << 20, CallTimeout,
        PipelineSettings.Default with { BreakerMaxFailures = 2, BreakerReset = Reset }, _clock);

    private static readonly MessageAttachment File = new("f-1", new AttachedMedia("notes.txt", "text/plain", 20, "", null, null, null, null));

    private Task<(System.Collections.Immutable.ImmutableArray<EnricherOutput> Results, System.Collections.Immutable.ImmutableArray<string> Degraded, string Text)>
        RunAsync(AttachmentEnrichment enrichment, CancellationToken ct = default) =>
        enrichment.EnrichAsync(Tenant, "c-1", "alice", File, DateTimeOffset.UnixEpoch, ct);

    /// <summary>Reads the file's text (the bytes it was given), fails while told to, or waits for its release.</summary>
    private sealed class Reader(string name) : IEnricher
    {
        public int Calls;
        public volatile bool Throwing;
        public volatile bool Hanging;
        public readonly SemaphoreSlim Started = new(0);
        public string Name => name;
        public string Version => "1";
        public bool NeedsAttachment => true;

        public async ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
        {
            Interlocked.Increment(ref Calls);
            Started.Release();
            if (Throwing) throw new InvalidOperationException("broken tool");
            // A hung tool: ignores its token and never answers.
            if (Hanging) await new TaskCompletionSource().Task;
            var text = System.Text.Encoding.UTF8.GetString(input.Attachment!.Bytes.Span);
            return EnrichmentResult.From(this, new AttachmentTextPayload(false, ExtractedText.Success(text, 1, name)));
        }
    }

    [Fact]
    public async Task A_failing_enricher_opens_its_breaker_is_skipped_while_open_and_a_good_trial_closes_it()
    {
        var broken = new Reader("ocr") { Throwing = true };
        var good = new Reader("document_text");
        var enrichment = Enrichment(broken, good);

        for (var i = 0; i < 2; i++)
        {
            var failed = await RunAsync(enrichment);
            Assert.Equal(new[] { "ocr" }, failed.Degraded);
            Assert.Equal("some words in a file", failed.Text);
        }
        Assert.True(enrichment.IsBreakerOpen("ocr"));
        Assert.False(enrichment.IsBreakerOpen("document_text"));

        // Open: the tool is not called at all; the other enricher's result still comes through.
        var skipped = await RunAsync(enrichment);
        Assert.Equal(2, broken.Calls);
        Assert.Equal(new[] { "ocr" }, skipped.Degraded);
        Assert.Equal(new[] { "document_text" }, skipped.Results.Select(r => r.Name));

        _clock.Advance(Reset);
        broken.Throwing = false;
        var trial = await RunAsync(enrichment);
        Assert.Equal(3, broken.Calls);
        Assert.Empty(trial.Degraded);
        Assert.False(enrichment.IsBreakerOpen("ocr"));
        Assert.Equal(new[] { "ocr", "document_text" }, trial.Results.Select(r => r.Name));
    }

    [Fact]
    public async Task A_failed_trial_opens_the_breaker_for_another_reset()
    {
        var broken = new Reader("ocr") { Throwing = true };
        var enrichment = Enrichment(broken);
        await RunAsync(enrichment);
        await RunAsync(enrichment);
        _clock.Advance(Reset);

        await RunAsync(enrichment); // the trial, still failing
        Assert.Equal(3, broken.Calls);
        Assert.True(enrichment.IsBreakerOpen("ocr"));
        _clock.Advance(Reset - TimeSpan.FromSeconds(1));
        await RunAsync(enrichment);
        Assert.Equal(3, broken.Calls);
        _clock.Advance(TimeSpan.FromSeconds(1));
        broken.Throwing = false;
        Assert.Empty((await RunAsync(enrichment)).Degraded);
        Assert.Equal(4, broken.Calls);
    }

    [Fact]
    public async Task A_hung_enricher_is_given_up_at_the_call_timeout_and_counts_as_a_failure()
    {
        var hung = new Reader("speech") { Hanging = true };
        var enrichment = Enrichment(hung);

        for (var i = 1; i <= 2; i++)
        {
            var run = RunAsync(enrichment);
            Assert.True(await hung.Started.WaitAsync(TimeSpan.FromMinutes(1)));
            _clock.Advance(CallTimeout - TimeSpan.FromSeconds(1));
            // Not given up before its timeout (the run waits for the clock, not for the machine).
            await Task.Delay(50);
            Assert.False(run.IsCompleted);
            _clock.Advance(TimeSpan.FromSeconds(1));
            var given = await run.WaitAsync(TimeSpan.FromMinutes(1));
            Assert.Equal(new[] { "speech" }, given.Degraded);
            Assert.Empty(given.Results);
        }
        Assert.True(enrichment.IsBreakerOpen("speech"));
        Assert.Equal(new[] { "speech" }, (await RunAsync(enrichment)).Degraded);
        Assert.Equal(2, hung.Calls);
    }

    [Fact]
    public async Task A_stop_asked_by_the_caller_is_no_failure_of_the_enricher()
    {
        var hung = new Reader("speech") { Hanging = true };
        var enrichment = Enrichment(hung);
        for (var i = 0; i < 3; i++)
        {
            using var stop = new CancellationTokenSource();
            var run = RunAsync(enrichment, stop.Token);
            Assert.True(await hung.Started.WaitAsync(TimeSpan.FromMinutes(1)));
            stop.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(TimeSpan.FromMinutes(1)));
        }
        Assert.False(enrichment.IsBreakerOpen("speech"));
        Assert.Equal(3, hung.Calls);
    }

    [Fact]
    public async Task A_file_that_is_gone_is_not_applicable_and_no_enricher_runs()
    {
        var reader = new Reader("ocr");
        var enrichment = Enrichment(reader);
        await _store.DeleteAsync(Tenant, "f-1");
        var gone = await RunAsync(enrichment);
        Assert.Equal(0, reader.Calls);
        Assert.Empty(gone.Degraded);
        Assert.Contains(AttachmentEnrichment.Missing, gone.Results.Single().Data.GetRawText());
    }
}
