using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using Caas.Actors.Conversations;
using Caas.Node;
using Caas.Web.Auth;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.IntegrationTests;

/// <summary>One real node (<see cref="NodeHost"/>: Kestrel on a loopback port, an Akka system named caas) in the test process.</summary>
public sealed class TestNode : IAsyncDisposable
{
    public const string Secret = "integration-secret-integration-secret-0123456789";
    public static readonly JwtSettings Jwt = new(Secret, null, null, null);

    private bool _stopped;

    private TestNode(string name, WebApplication app)
    {
        Name = name;
        App = app;
        BaseAddress = new Uri(app.Urls.First());
        System = app.Services.GetRequiredService<ActorSystem>();
        Conversations = app.Services.GetRequiredService<IRequiredActor<ConversationRegion>>().ActorRef;
    }

    public string Name { get; }
    public WebApplication App { get; }
    public Uri BaseAddress { get; }
    public ActorSystem System { get; }
    public Cluster Cluster => Cluster.Get(System);
    public IActorRef Conversations { get; }

    /// <param name="devSecret">Leave the node without a configured secret, so it uses (or makes) the dev secret in its data directory.</param>
    public static async Task<TestNode> StartAsync(string name, NodeOptions options, bool devSecret = false)
    {
        var app = await NodeHost.BuildAsync(options with
        {
            Urls = "http://127.0.0.1:0",
            JwtSecret = devSecret ? options.JwtSecret : options.JwtSecret ?? Secret,
            MasterKey = devSecret ? options.MasterKey : options.MasterKey ?? Caas.Tests.Shared.TestDatabases.MasterKey,
        });
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return new TestNode(name, app);
    }

    /// <summary>A graceful stop: the host runs coordinated shutdown, so a clustered node leaves and hands its shards off.</summary>
    public async Task StopAsync()
    {
        if (_stopped) return;
        _stopped = true;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await App.StopAsync(cts.Token);
        await App.DisposeAsync();
    }

    public ValueTask DisposeAsync() => new(StopAsync());

    /// <summary>The conversation entity ids this node's shard region hosts right now.</summary>
    public async Task<HashSet<string>> HostedConversationsAsync()
    {
        var state = await Conversations.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, TimeSpan.FromSeconds(5));
        return state.Shards.SelectMany(s => s.EntityIds).ToHashSet(StringComparer.Ordinal);
    }

    public Api As(string tenant, string user, params string[] roles) => new(BaseAddress, Jwt.Issue(tenant, user, roles));

    /// <summary>A port for a node to listen on, outside the ephemeral range (see <see cref="Caas.Tests.Shared.TestPorts"/>).</summary>
    public static int FreeTcpPort() => Caas.Tests.Shared.TestPorts.Free();
}

/// <summary>The REST API of one node as one caller (a bearer token).</summary>
public sealed record Api(Uri BaseAddress, string? Token)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(20) };

    public async Task<(int Status, JsonElement Body)> SendAsync(HttpMethod method, string path, object? body = null)
    {
        using var request = new HttpRequestMessage(method, new Uri(BaseAddress, path));
        if (Token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        if (body is string raw) request.Content = new StringContent(raw, Encoding.UTF8, "application/json");
        else if (body is not null) request.Content = JsonContent.Create(body);
        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var json = text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        return ((int)response.StatusCode, json);
    }

    public Task<(int Status, JsonElement Body)> Get(string path) => SendAsync(HttpMethod.Get, path);
    public Task<(int Status, JsonElement Body)> Post(string path, object? body) => SendAsync(HttpMethod.Post, path, body);
    public Task<(int Status, JsonElement Body)> Put(string path, object? body) => SendAsync(HttpMethod.Put, path, body);
    public Task<(int Status, JsonElement Body)> Delete(string path) => SendAsync(HttpMethod.Delete, path);

    /// <summary>The body of a request that must answer <paramref name="expect"/>.</summary>
    public async Task<JsonElement> Expect(int expect, HttpMethod method, string path, object? body = null)
    {
        var (status, json) = await SendAsync(method, path, body);
        Assert.True(status == expect, $"{method} {BaseAddress}{path.TrimStart('/')}: expected {expect}, got {status}: {json}");
        return json;
    }

    public async Task<string> CreateGroupAsync(string title, params string[] members) =>
        (await Expect(201, HttpMethod.Post, "/v1/conversations", new { type = "group", title, members })).GetProperty("id").GetString()!;

    public Task<JsonElement> PostMessageAsync(string conversation, string text, string? messageId = null, int expect = 201) =>
        Expect(expect, HttpMethod.Post, "/v1/messages", new { conversation_id = conversation, content = new { type = "text", text }, message_id = messageId });

    /// <summary>Every message of a conversation, oldest first (catch-up paging with after_seq).</summary>
    public async Task<List<JsonElement>> AllMessagesAsync(string conversation)
    {
        var items = new List<JsonElement>();
        var path = $"/v1/messages/conversations/{conversation}?after_seq=0&limit=200";
        while (true)
        {
            var page = await Expect(200, HttpMethod.Get, path);
            items.AddRange(page.GetProperty("items").EnumerateArray());
            if (page.GetProperty("next_cursor").GetString() is not { } cursor) return items;
            path = $"/v1/messages/conversations/{conversation}?limit=200&cursor={cursor}";
        }
    }
}

public static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> until it holds or <paramref name="within"/> passes (then fails with <paramref name="what"/>).</summary>
    public static async Task HoldsAsync(Func<Task<bool>> condition, TimeSpan within, string what)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            if (await condition()) return;
            if (DateTime.UtcNow > deadline) Assert.Fail($"Not within {within.TotalSeconds:0.#} s: {what}");
            await Task.Delay(100);
        }
    }

    public static Task HoldsAsync(Func<bool> condition, TimeSpan within, string what) =>
        HoldsAsync(() => Task.FromResult(condition()), within, what);
}

public static class JsonAssert
{
    public static string Str(this JsonElement e, string name) => e.GetProperty(name).GetString()!;

    /// <summary>Structural equality through the canonical serialized text.</summary>
    public static void Same(JsonElement expected, JsonElement actual, string what) =>
        Assert.True(JsonSerializer.Serialize(expected) == JsonSerializer.Serialize(actual),
            $"{what} differs:\n expected {expected}\n actual   {actual}");
}
