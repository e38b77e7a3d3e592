using System.Net.Http.Headers;
using Caas.Enrichment;
using Caas.Node;
using Caas.Streams.Pipeline;
using Caas.Tests.Shared;
using Caas.Web;
using Caas.Web.Auth;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Streams.Tests;

/// <summary>A real node on PostgreSQL whose pipeline has the test's enrichers registered.</summary>
public sealed class PipelineNode : IAsyncDisposable
{
    public const string Secret = "pipeline-secret-pipeline-secret-pipeline-secret";
    private readonly WebApplication _app;

    private PipelineNode(WebApplication app) => _app = app;

    public static Task<PipelineNode> StartAsync(string hocon = "", params IEnricher[] enrichers) =>
        StartAsync(hocon, services => { }, enrichers);

    public static Task<PipelineNode> StartAsync(string hocon, Action<IServiceCollection> configure, params IEnricher[] enrichers) =>
        StartOnAsync(TestDatabases.NewPostgresDatabase("pipe"), hocon, configure, enrichers);

    /// <summary>A node on the given PostgreSQL database (a restart: the same master key every time).</summary>
    public static async Task<PipelineNode> StartOnAsync(string postgres, string hocon, Action<IServiceCollection> configure, params IEnricher[] enrichers)
    {
        var app = await NodeHost.BuildAsync(new NodeOptions
        {
            Postgres = postgres,
            MasterKey = TestDatabases.MasterKey,
            Urls = "http://127.0.0.1:0",
            JwtSecret = Secret,
            LogLevel = "Warning",
            // A loaded CI machine can be slow to persist: a generous ask timeout keeps "overloaded" for real overload.
            ExtraHocon = "caas.pipeline.ask-timeout = 20s\n" + hocon,
            RequestLimits = new RequestLimits(10_000, 10_000),
            // A test's own enrichers count or hold their calls: the start-up warm-up must not be one of them.
            WarmUpEnrichers = enrichers.Length == 0,
        }, builder =>
        {
            foreach (var e in enrichers) builder.Services.AddSingleton(e);
            configure(builder.Services);
        });
        await app.StartAsync();
        return new PipelineNode(app);
    }

    public IMessageIngest Ingest => _app.Services.GetRequiredService<IMessageIngest>();

    public IServiceProvider Services => _app.Services;

    public HttpClient Client(string tenant, string user, params string[] roles)
    {
        var client = new HttpClient { BaseAddress = new Uri(_app.Urls.First()), Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            new JwtSettings(Secret, null, null, null).Issue(tenant, user, roles));
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>Real enrichers with known behaviour, for the degradation tests.</summary>
public sealed class WordCountEnricher : IEnricher
{
    public string Name => "word-count";
    public string Version => "1";

    public ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct) =>
        ValueTask.FromResult(EnrichmentResult.From(this, new { words = input.Text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length }));
}

public sealed class HangingEnricher : IEnricher
{
    public string Name => "hangs";
    public string Version => "1";

    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Calls that have returned; none does before <see cref="Release"/>.</summary>
    public int Returned;

    /// <summary>Calls made.</summary>
    public int Calls;

    public async ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        Interlocked.Increment(ref Calls);
        // Ignores cancellation on purpose, and never returns while the test looks: the stage must stop waiting on its own.
        await _released.Task;
        Interlocked.Increment(ref Returned);
        return EnrichmentResult.From(this, new { });
    }

    public void Release() => _released.TrySetResult();
}

public sealed class ThrowingEnricher : IEnricher
{
    public int Calls;
    public string Name => "throws";
    public string Version => "1";

    public ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        Interlocked.Increment(ref Calls);
        throw new InvalidOperationException("this enricher always fails");
    }
}

/// <summary>
/// Its first <c>stalls</c> calls wait until their token is cancelled (they stop at the budget, as asked: a stall of the
/// machine, not a broken enricher); later calls answer at once.
/// </summary>
public sealed class StallingEnricher(int stalls) : IEnricher
{
    public int Calls;
    public string Name => "stalls";
    public string Version => "1";

    public async ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        if (Interlocked.Increment(ref Calls) <= stalls) await Task.Delay(Timeout.Infinite, ct);
        return EnrichmentResult.From(this, new { ok = true });
    }
}
