using System.Net.Http.Headers;
using System.Text.Json;
using Caas.Node;
using Caas.Tests.Shared;
using Caas.Web.Auth;
using Microsoft.AspNetCore.Builder;

namespace Caas.Web.Tests.Search;

/// <summary>One real node for the search tests: PostgreSQL (full text, pg_trgm) or SQLite (FTS5), the same tests on both.</summary>
public abstract class SearchNodeFixture : IAsyncLifetime
{
    private WebApplication? _app;

    protected abstract bool Postgres { get; }

    public bool IsPostgres => Postgres;

    /// <summary>The tests poll searches until the index has caught up: only the rate test's nodes keep the default budget.</summary>
    protected virtual Caas.Web.Api.SearchLimits Limits => new(SearchesPerMinute: 1_000_000, SuggestionsPerMinute: 1_000_000);

    public JwtSettings Jwt { get; } = new(NodeFixture.Secret, null, null, null);
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>The node's services (a test that damages a table to see a rebuild restore it).</summary>
    public IServiceProvider Services => _app!.Services;

    /// <summary>The node's PostgreSQL database (null on SQLite).</summary>
    public string? PostgresConnection { get; private set; }

    public async Task InitializeAsync()
    {
        PostgresConnection = Postgres ? TestDatabases.NewPostgresDatabase("search") : null;
        _app = await NodeHost.BuildAsync(new NodeOptions
        {
            Postgres = PostgresConnection,
            DataDir = TestDatabases.NewSqliteDirectory(),
            Urls = "http://127.0.0.1:0",
            JwtSecret = NodeFixture.Secret,
            LogLevel = "Warning",
            RequestLimits = new RequestLimits(PermitsPerSecond: 5_000, Burst: 5_000),
            ExtraHocon = "caas.pipeline.enrich-budget = 10s",
            SearchLimits = Limits,
        });
        await _app.StartAsync();
        BaseAddress = new Uri(_app.Urls.First());
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    public HttpClient Client(string tenant, string user, params string[] roles)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Jwt.Issue(tenant, user, roles));
        return client;
    }
}

public sealed class PostgresSearchNode : SearchNodeFixture
{
    protected override bool Postgres => true;
}

public sealed class SqliteSearchNode : SearchNodeFixture
{
    protected override bool Postgres => false;
}

public sealed class PostgresRateLimitedNode : SearchNodeFixture
{
    protected override bool Postgres => true;
    protected override Caas.Web.Api.SearchLimits Limits => new();
}

public sealed class SqliteRateLimitedNode : SearchNodeFixture
{
    protected override bool Postgres => false;
    protected override Caas.Web.Api.SearchLimits Limits => new();
}

public static class SearchHttp
{
    /// <summary>
    /// Searches until the answer satisfies <paramref name="done"/> (the index trails the journal by a batch), for up to
    /// two minutes; answers the last body either way, so the caller's assertion says what was found.
    /// </summary>
    public static async Task<JsonElement> SearchUntilAsync(this HttpClient client, string path, Func<JsonElement, bool> done)
    {
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (true)
        {
            var (status, body) = await client.ApiGet(path);
            Assert.True(status == 200, $"{path}: {status} {body}");
            if (done(body) || DateTime.UtcNow > until) return body;
            await Task.Delay(100);
        }
    }

    public static List<JsonElement> Items(this JsonElement body) => body.GetProperty("items").EnumerateArray().Select(e => e.Clone()).ToList();

    public static List<string> Ids(this JsonElement body) => body.Items().Select(i => i.Str("message_id")).ToList();

    public static string Q(string q) => Uri.EscapeDataString(q);
}
