using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Caas.Node;
using Caas.Tests.Shared;
using Caas.Web.Auth;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Caas.Web;
using Caas.Web.Edge;

namespace Caas.Web.Tests;

/// <summary>One real node (Kestrel on a loopback port, PostgreSQL journal and read model) shared by a test class.</summary>
public class NodeFixture : IAsyncLifetime
{
    public const string Secret = "test-secret-test-secret-test-secret-0123456789";
    private WebApplication? _app;

    /// <summary>
    /// The edge's settings on a test node. The product's 5 s limit on an ask of the cluster answers a busy cluster with
    /// 503 overloaded; on a loaded CI machine a fresh test node's first entity (its shard allocated, its empty journal
    /// read, its first event written) once took longer (CI, 2026-12-07: creating a group answered 503 after 5 s). No
    /// test here is about that limit, so a test node waits up to 20 s, under the clients' 30 s.
    /// </summary>
    public static EdgeSettings TestEdge { get; } = new() { AskTimeout = TimeSpan.FromSeconds(20) };

    /// <summary>The pipeline's own ask of the entity likewise (HOCON; a test's own settings after it still win).</summary>
    public const string PatientPipeline = "caas.pipeline.ask-timeout = 20s";

    public JwtSettings Jwt { get; } = new(Secret, null, null, null);
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>The running node's services (to reach what the API does not show, e.g. the media store).</summary>
    public IServiceProvider Services => _app!.Services;

    public async Task InitializeAsync()
    {
        _app = await NodeHost.BuildAsync(new NodeOptions
        {
            Postgres = TestDatabases.NewPostgresDatabase("web"),
            Urls = "http://127.0.0.1:0",
            JwtSecret = Secret,
            LogLevel = "Warning",
            // The paging test posts 1,000 messages as fast as it can; the per-client limiter has its own test.
            RequestLimits = new RequestLimits(PermitsPerSecond: 5_000, Burst: 5_000),
            // Tests that read enrichment results must not depend on the machine's speed; the budget's cut-off has its
            // own tests in Caas.Streams.Tests.
            ExtraHocon = "caas.pipeline.enrich-budget = 10s\n" + PatientPipeline,
        }, builder =>
        {
            builder.Services.AddSingleton(TestEdge);
            Configure(builder);
        });
        await _app.StartAsync();
        BaseAddress = new Uri(_app.Urls.First());
    }

    /// <summary>A fixture for a node configured otherwise (services replaced before the node starts).</summary>
    protected virtual void Configure(WebApplicationBuilder builder)
    {
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    public HttpClient Client(string tenant, string user, params string[] roles) => WithToken(Jwt.Issue(tenant, user, roles));

    public HttpClient WithToken(string? token)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        if (token is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }
}

public static class Http
{
    public static async Task<(int Status, JsonElement Body)> SendAsync(this HttpClient client, HttpMethod method, string path, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is string raw) request.Content = new StringContent(raw, Encoding.UTF8, "application/json");
        else if (body is not null) request.Content = JsonContent.Create(body);
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var json = text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        return ((int)response.StatusCode, json);
    }

    public static Task<(int Status, JsonElement Body)> ApiPost(this HttpClient c, string path, object? body) => c.SendAsync(HttpMethod.Post, path, body);
    public static Task<(int Status, JsonElement Body)> ApiGet(this HttpClient c, string path) => c.SendAsync(HttpMethod.Get, path);
    public static Task<(int Status, JsonElement Body)> ApiPut(this HttpClient c, string path, object? body) => c.SendAsync(HttpMethod.Put, path, body);
    public static Task<(int Status, JsonElement Body)> ApiDelete(this HttpClient c, string path) => c.SendAsync(HttpMethod.Delete, path);

    public static string Str(this JsonElement e, string name) => e.GetProperty(name).GetString()!;

    public static string Code(this JsonElement problem) => problem.GetProperty("code").GetString()!;

    public static async Task<string> CreateGroupAsync(this HttpClient c, params string[] members)
    {
        var (status, body) = await c.ApiPost("/v1/conversations", new { type = "group", title = "g", members });
        Assert.Equal(201, status);
        return body.Str("id");
    }

    public static async Task<JsonElement> PostMessageAsync(this HttpClient c, string conversation, string text, string? messageId = null, int expect = 201)
    {
        var (status, body) = await c.ApiPost("/v1/messages", new { conversation_id = conversation, content = new { type = "text", text }, message_id = messageId });
        Assert.True(status == expect, $"expected {expect}, got {status}: {body}");
        return body;
    }
}
