using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Caas.Web.Auth;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Caas.Web.Tests;

public sealed class AuthTests(NodeFixture node) : IClassFixture<NodeFixture>
{
    private static string Unsigned(string tenant, string user)
    {
        static string B64(string s) => Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes(s));
        var exp = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeSeconds();
        return B64("{\"alg\":\"none\",\"typ\":\"JWT\"}") + "." + B64($"{{\"sub\":\"{user}\",\"tenant_id\":\"{tenant}\",\"exp\":{exp}}}") + ".";
    }

    private static string Signed(string secret, string alg, Dictionary<string, object> claims, DateTime? expires)
    {
        var handler = new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false };
        return handler.CreateToken(new SecurityTokenDescriptor
        {
            Claims = claims,
            Expires = expires,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), alg),
        });
    }

    public static TheoryData<string, string?> BadTokens()
    {
        var claims = new Dictionary<string, object> { ["sub"] = "alice", ["tenant_id"] = "acme" };
        return new TheoryData<string, string?>
        {
            { "missing", null },
            { "garbage", "not-a-jwt" },
            { "alg none", Unsigned("acme", "alice") },
            { "forged (other secret)", Signed("another-secret-another-secret-another-secret", SecurityAlgorithms.HmacSha256, claims, DateTime.UtcNow.AddHours(1)) },
            { "expired", Signed(NodeFixture.Secret, SecurityAlgorithms.HmacSha256, claims, DateTime.UtcNow.AddMinutes(-5)) },
            { "no exp", Signed(NodeFixture.Secret, SecurityAlgorithms.HmacSha256, claims, null) },
            { "other algorithm (HS512)", Signed(NodeFixture.Secret + NodeFixture.Secret, SecurityAlgorithms.HmacSha512, claims, DateTime.UtcNow.AddHours(1)) },
            { "no tenant", Signed(NodeFixture.Secret, SecurityAlgorithms.HmacSha256, new() { ["sub"] = "alice" }, DateTime.UtcNow.AddHours(1)) },
            { "bad tenant id", Signed(NodeFixture.Secret, SecurityAlgorithms.HmacSha256, new() { ["sub"] = "alice", ["tenant_id"] = "a/b" }, DateTime.UtcNow.AddHours(1)) },
        };
    }

    [Theory]
    [MemberData(nameof(BadTokens))]
    public async Task Bad_tokens_get_401_problem_and_change_nothing(string why, string? token)
    {
        using var client = node.WithToken(token);
        var (status, body) = await client.ApiPost("/v1/conversations", new { type = "group", title = why });
        Assert.Equal(401, status);
        Assert.Equal("unauthenticated", body.Code());

        using var alice = node.Client("acme", "alice");
        var (_, list) = await alice.ApiGet("/v1/conversations?limit=200");
        Assert.DoesNotContain(list.GetProperty("items").EnumerateArray(), c => c.GetProperty("title").GetString() == why);
    }

    public static TheoryData<string, Dictionary<string, object>> SignedTokensWithoutAValidCaller() => new()
    {
        { "no tenant", new() { ["sub"] = "alice" } },
        { "no sub", new() { ["tenant_id"] = "acme" } },
        { "sub with a NUL", new() { ["sub"] = "alice\0", ["tenant_id"] = "acme" } },
        { "tenant with a newline", new() { ["sub"] = "alice", ["tenant_id"] = "acme\n" } },
    };

    /// <summary>The hub's negotiate used to accept what REST refused: the token validation itself refuses them now.</summary>
    [Theory]
    [MemberData(nameof(SignedTokensWithoutAValidCaller))]
    public async Task A_signed_token_without_a_valid_caller_is_refused_by_REST_and_the_hub_alike(string why, Dictionary<string, object> claims)
    {
        var token = Signed(NodeFixture.Secret, SecurityAlgorithms.HmacSha256, claims, DateTime.UtcNow.AddHours(1));
        using var client = node.WithToken(token);
        var (status, body) = await client.ApiGet("/v1/users/me");
        Assert.Equal(401, status);
        Assert.Equal("unauthenticated", body.Code());

        using var negotiate = await client.PostAsync("/hubs/chat/negotiate?negotiateVersion=1", null);
        Assert.True(negotiate.StatusCode == System.Net.HttpStatusCode.Unauthorized, $"{why}: negotiate answered {(int)negotiate.StatusCode}");
        using var byQuery = node.WithToken(null);
        using var negotiateByQuery = await byQuery.PostAsync($"/hubs/chat/negotiate?negotiateVersion=1&access_token={Uri.EscapeDataString(token)}", null);
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, negotiateByQuery.StatusCode);
    }

    [Fact]
    public async Task The_node_answers_a_clients_repeated_token_from_memory_and_still_refuses_a_bad_one()
    {
        var handler = node.Services.GetRequiredService<Microsoft.Extensions.Options.IOptionsMonitor<Microsoft.AspNetCore.Authentication.JwtBearer.JwtBearerOptions>>()
            .Get(Microsoft.AspNetCore.Authentication.JwtBearer.JwtBearerDefaults.AuthenticationScheme).TokenHandlers.OfType<ValidatedTokens>().Single();
        using var carol = node.Client("acme", "carol");
        Assert.Equal(200, (await carol.ApiGet("/v1/conversations")).Status);
        var hits = handler.Hits;
        var (status, created) = await carol.ApiPost("/v1/conversations", new { type = "group", title = "remembered", members = new[] { "dave" } });
        Assert.Equal(201, status);
        Assert.True(handler.Hits > hits);
        Assert.Equal("carol", created.GetProperty("members").EnumerateArray().First(m => m.GetProperty("role").GetString() == "owner")
            .GetProperty("user_id").GetString());

        // A token of the same claims signed with another secret is refused, remembered or not.
        using var forged = node.WithToken(ValidatedTokensTests.Token("carol", DateTime.UtcNow.AddHours(1), secret: NodeFixture.Secret + "-forged"));
        Assert.Equal(401, (await forged.ApiGet("/v1/conversations")).Status);
    }

    [Fact]
    public async Task A_valid_token_passes_and_health_is_public()
    {
        using var client = node.Client("acme", "alice");
        Assert.Equal(200, (await client.ApiGet("/v1/conversations")).Status);
        using var anonymous = node.WithToken(null);
        var (status, health) = await anonymous.ApiGet("/health");
        Assert.Equal(200, status);
        Assert.Equal("up", health.GetProperty("checks").GetProperty("cluster").GetString());
        Assert.Equal(200, (await anonymous.ApiGet("/health/live")).Status);
        Assert.Equal(200, (await anonymous.ApiGet("/health/ready")).Status);
        var (openApi, doc) = await anonymous.ApiGet("/openapi/v1.json");
        Assert.Equal(200, openApi);
        Assert.True(doc.GetProperty("paths").TryGetProperty("/v1/messages", out _));
        var metrics = await anonymous.GetStringAsync("/metrics");
        Assert.Contains("http_requests_received_total", metrics);
        // .NET's per-request instruments are not republished (MeterFilter); the runtime's observable ones are.
        Assert.Contains("system_runtime_dotnet_gc_collections", metrics);
        // (Named in full: another test's own meter of the same name publishes an observable gauge.)
        Assert.DoesNotContain("microsoft_aspnetcore_routing_aspnetcore_routing_match_attempts", metrics);
        Assert.DoesNotContain("microsoft_aspnetcore_hosting_http_server_request_duration", metrics);
    }

    [Fact]
    public void Only_instruments_that_cost_nothing_per_request_are_republished()
    {
        using var routing = new System.Diagnostics.Metrics.Meter("Microsoft.AspNetCore.Routing");
        using var kestrel = new System.Diagnostics.Metrics.Meter("Microsoft.AspNetCore.Server.Kestrel");
        using var hosting = new System.Diagnostics.Metrics.Meter("Microsoft.AspNetCore.Hosting");
        Assert.False(Caas.Web.Edge.MeterFilter.Publishes(routing.CreateCounter<long>("aspnetcore.routing.match_attempts")));
        Assert.False(Caas.Web.Edge.MeterFilter.Publishes(hosting.CreateHistogram<double>("http.server.request.duration")));
        Assert.True(Caas.Web.Edge.MeterFilter.Publishes(hosting.CreateObservableGauge("observed", () => 1)));
        Assert.True(Caas.Web.Edge.MeterFilter.Publishes(kestrel.CreateUpDownCounter<long>("kestrel.active_connections")));
    }

    [Fact]
    public async Task Admin_routes_need_the_admin_role()
    {
        using var member = node.Client("acme", "alice");
        var (status, body) = await member.ApiGet("/v1/admin/tenant/settings");
        Assert.Equal(403, status);
        Assert.Equal("forbidden", body.Code());
        using var admin = node.Client("acme", "root", "admin");
        Assert.Equal(200, (await admin.ApiGet("/v1/admin/tenant/settings")).Status);
    }
}

/// <summary>The per-client request limiter (ASP.NET Core RateLimiter), on a node with a small bucket.</summary>
public sealed class RequestLimitTests : IAsyncLifetime
{
    private Microsoft.AspNetCore.Builder.WebApplication? _app;

    public async Task InitializeAsync()
    {
        _app = await Caas.Node.NodeHost.BuildAsync(new Caas.Node.NodeOptions
        {
            DataDir = Caas.Tests.Shared.TestDatabases.NewSqliteDirectory(),
            Urls = "http://127.0.0.1:0",
            JwtSecret = NodeFixture.Secret,
            LogLevel = "Warning",
            RequestLimits = new RequestLimits(PermitsPerSecond: 1, Burst: 5),
        });
        await _app.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
    }

    [Fact]
    public async Task A_client_over_its_request_budget_gets_429_with_retry_after()
    {
        var jwt = new JwtSettings(NodeFixture.Secret, null, null, null);
        using var client = new HttpClient { BaseAddress = new Uri(_app!.Urls.First()) };
        client.DefaultRequestHeaders.Authorization = new("Bearer", jwt.Issue("t-limit", "alice"));
        var statuses = new List<int>();
        for (var i = 0; i < 8; i++) statuses.Add((int)(await client.GetAsync("/v1/conversations")).StatusCode);
        Assert.Contains(429, statuses);
        Assert.Equal(200, statuses[0]);
        using var response = await client.GetAsync("/v1/conversations");
        Assert.Equal(429, (int)response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Contains("rate_limited", await response.Content.ReadAsStringAsync());
    }
}
