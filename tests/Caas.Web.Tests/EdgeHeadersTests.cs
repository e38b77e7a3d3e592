using System.Net;
using Caas.Web.Edge;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests;

/// <summary>A node that allows one browser origin, as <c>CAAS_CORS_ORIGINS=https://app.example</c> would.</summary>
public sealed class CorsNodeFixture : NodeFixture
{
    public const string AllowedOrigin = "https://app.example";

    protected override void Configure(WebApplicationBuilder builder) =>
        builder.Services.AddSingleton(TestEdge with { CorsOrigins = EdgeSettings.ParseOrigins(AllowedOrigin + ", https://other.example:8443") });
}

public sealed class CorsTests(CorsNodeFixture node) : IClassFixture<CorsNodeFixture>
{
    private static HttpRequestMessage Preflight(string path, string origin, string method = "POST") =>
        new(HttpMethod.Options, path)
        {
            Headers =
            {
                { "Origin", origin },
                { "Access-Control-Request-Method", method },
                { "Access-Control-Request-Headers", "authorization,content-type" },
            },
        };

    [Fact]
    public async Task A_preflight_from_an_allowed_origin_is_answered_for_the_api_and_the_hub()
    {
        using var client = node.WithToken(null);
        foreach (var path in new[] { "/v1/conversations", "/hubs/chat/negotiate?negotiateVersion=1" })
        {
            using var response = await client.SendAsync(Preflight(path, CorsNodeFixture.AllowedOrigin));
            Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
            Assert.Equal(CorsNodeFixture.AllowedOrigin, Assert.Single(response.Headers.GetValues("Access-Control-Allow-Origin")));
            Assert.Contains("POST", string.Join(",", response.Headers.GetValues("Access-Control-Allow-Methods")));
            var headers = string.Join(",", response.Headers.GetValues("Access-Control-Allow-Headers")).ToLowerInvariant();
            Assert.Contains("authorization", headers);
            Assert.Contains("content-type", headers);
        }

        // the actual request carries the origin back and exposes the request id
        using var get = new HttpRequestMessage(HttpMethod.Get, "/health/live") { Headers = { { "Origin", "https://other.example:8443" } } };
        using var answer = await client.SendAsync(get);
        Assert.Equal("https://other.example:8443", Assert.Single(answer.Headers.GetValues("Access-Control-Allow-Origin")));
        Assert.Contains("X-Request-Id", string.Join(",", answer.Headers.GetValues("Access-Control-Expose-Headers")));
    }

    [Theory]
    [InlineData("https://evil.example")]
    [InlineData("http://app.example")]
    [InlineData("https://app.example.evil.example")]
    [InlineData("null")]
    public async Task Any_other_origin_gets_no_cors_headers(string origin)
    {
        using var client = node.WithToken(null);
        using var response = await client.SendAsync(Preflight("/v1/conversations", origin));
        Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
    }

    [Fact]
    public void An_origin_with_a_path_or_another_scheme_is_refused_at_start()
    {
        Assert.Throws<ArgumentException>(() => EdgeSettings.ParseOrigins("https://app.example/path"));
        Assert.Throws<ArgumentException>(() => EdgeSettings.ParseOrigins("ftp://app.example"));
        Assert.Throws<ArgumentException>(() => EdgeSettings.ParseOrigins("*"));
        Assert.Empty(EdgeSettings.ParseOrigins(null));
        Assert.Equal(["https://a.example", "http://b.example:8080"], EdgeSettings.ParseOrigins(" https://a.example/ ,http://b.example:8080,https://A.example"));
    }
}

public sealed class EdgeHeadersTests(NodeFixture node) : IClassFixture<NodeFixture>
{
    [Fact]
    public async Task No_origin_is_allowed_by_default()
    {
        using var client = node.WithToken(null);
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/conversations")
        {
            Headers = { { "Origin", CorsNodeFixture.AllowedOrigin }, { "Access-Control-Request-Method", "POST" } },
        };
        using var response = await client.SendAsync(preflight);
        Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
    }

    [Theory]
    [InlineData("/health/live")]
    [InlineData("/v1/conversations")]
    [InlineData("/v1/messages/m-unknown")]
    public async Task Every_answer_carries_the_security_headers(string path)
    {
        using var client = node.Client("t-headers", "alice");
        using var response = await client.GetAsync(path);
        Assert.Equal("nosniff", Assert.Single(response.Headers.GetValues("X-Content-Type-Options")));
        Assert.Equal("DENY", Assert.Single(response.Headers.GetValues("X-Frame-Options")));
        Assert.Equal("no-referrer", Assert.Single(response.Headers.GetValues("Referrer-Policy")));
        Assert.Contains("frame-ancestors 'none'", Assert.Single(response.Headers.GetValues("Content-Security-Policy")));
    }

    [Fact]
    public async Task The_console_has_a_content_security_policy_its_own_files_and_hub_satisfy()
    {
        using var client = node.WithToken(null);
        using var page = await client.GetAsync("/console/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var csp = Assert.Single(page.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("default-src 'none'", csp);
        Assert.Contains("script-src 'self'", csp);
        Assert.Contains("style-src 'self'", csp);
        Assert.Contains($"connect-src 'self' ws://{node.BaseAddress.Authority}", csp);
        Assert.Contains("frame-ancestors 'none'", csp);
        Assert.Contains("frame-src 'self'", csp); // the call panel frames /console/call.html
        Assert.DoesNotContain("unsafe-inline", csp);
        Assert.Equal("DENY", Assert.Single(page.Headers.GetValues("X-Frame-Options")));

        // the call page alone may be framed, and only by this origin
        using var callPage = await client.GetAsync("/console/call.html");
        Assert.Equal(HttpStatusCode.OK, callPage.StatusCode);
        Assert.Equal("SAMEORIGIN", Assert.Single(callPage.Headers.GetValues("X-Frame-Options")));
        Assert.Contains("frame-ancestors 'self'", Assert.Single(callPage.Headers.GetValues("Content-Security-Policy")));

        // what the policy admits is what the page uses: relative scripts and styles, no inline code
        var html = await page.Content.ReadAsStringAsync();
        var scripts = System.Text.RegularExpressions.Regex.Matches(html, "<script([^>]*)>(.*?)</script>", System.Text.RegularExpressions.RegexOptions.Singleline);
        Assert.NotEmpty(scripts);
        foreach (System.Text.RegularExpressions.Match s in scripts)
        {
            Assert.Matches("src=\"[a-z/.]+\"", s.Groups[1].Value);
            Assert.True(string.IsNullOrWhiteSpace(s.Groups[2].Value), "inline script");
        }
        Assert.DoesNotContain(" style=", html);
        Assert.DoesNotMatch(@"<[^>]*\son[a-z]+\s*=", html);
        foreach (var file in new[] { "/console/console.js", "/console/console.css" })
        {
            using var asset = await client.GetAsync(file);
            Assert.Equal(HttpStatusCode.OK, asset.StatusCode);
        }
    }
}
