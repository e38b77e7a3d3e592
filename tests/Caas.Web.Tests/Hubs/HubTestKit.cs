using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Threading.Channels;
using Caas.Node;
using Caas.Tests.Shared;
using Caas.Web.Auth;
using Caas.Web.Hubs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests.Hubs;

/// <summary>A real node (Kestrel on a loopback port, PostgreSQL) for hub tests, with hub settings of the test's choosing.</summary>
public class HubNode : IAsyncLifetime
{
    public const string Secret = NodeFixture.Secret;
    private readonly Dictionary<string, string?> _hubSettings;
    private readonly Func<NodeOptions, NodeOptions> _options;

    public HubNode() : this(new Dictionary<string, string?>())
    {
    }

    protected HubNode(Dictionary<string, string?> hubSettings, Func<NodeOptions, NodeOptions>? options = null)
    {
        _hubSettings = hubSettings;
        _options = options ?? (o => o);
    }

    public JwtSettings Jwt { get; } = new(Secret, null, null, null);
    public WebApplication App { get; private set; } = null!;
    public Uri BaseAddress { get; private set; } = null!;

    public virtual async Task InitializeAsync()
    {
        App = await StartAsync(_options(new NodeOptions
        {
            Postgres = TestDatabases.NewPostgresDatabase("hub"),
            Urls = "http://127.0.0.1:0",
            JwtSecret = Secret,
            LogLevel = "Warning",
            RequestLimits = new RequestLimits(PermitsPerSecond: 5_000, Burst: 5_000),
        }), _hubSettings);
        BaseAddress = new Uri(App.Urls.First());
    }

    public static async Task<WebApplication> StartAsync(NodeOptions options, IReadOnlyDictionary<string, string?> hubSettings)
    {
        // Per-connection call limits high enough that no test depends on how fast the machine sends; a test about the
        // limits sets its own, which replace these.
        var settings = new Dictionary<string, string?>
        {
            ["DefaultLimit:PermitsPerSecond"] = "100000",
            ["DefaultLimit:Burst"] = "100000",
        };
        foreach (var method in new HubSettings().Limits.Keys)
        {
            settings[$"Limits:{method}:PermitsPerSecond"] = "100000";
            settings[$"Limits:{method}:Burst"] = "100000";
        }
        foreach (var (key, value) in hubSettings) settings[key] = value;
        // As NodeFixture's nodes: a loaded machine's slow first entity is not what these tests are about.
        options = options with { ExtraHocon = NodeFixture.PatientPipeline + "\n" + options.ExtraHocon };
        var app = await NodeHost.BuildAsync(options, b =>
        {
            b.Services.AddSingleton(NodeFixture.TestEdge);
            b.Configuration.AddInMemoryCollection(settings.ToDictionary(kv => "Caas:Hub:" + kv.Key, kv => kv.Value));
        });
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return app;
    }

    public virtual async Task DisposeAsync()
    {
        if (App is null) return;
        await App.StopAsync();
        await App.DisposeAsync();
    }

    public HttpClient Rest(string tenant, string user, params string[] roles)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Jwt.Issue(tenant, user, roles));
        return client;
    }

    public Task<HubClient> ConnectAsync(string tenant, string user, TimeSpan? lifetime = null) =>
        HubClient.ConnectAsync(BaseAddress, Jwt.Issue(tenant, user, lifetime: lifetime));

    /// <summary>A port for a node to listen on, outside the ephemeral range (see <see cref="Caas.Tests.Shared.TestPorts"/>).</summary>
    public static int FreeTcpPort() => Caas.Tests.Shared.TestPorts.Free();
}

/// <summary>A chat client on the official .NET SignalR client, recording every server event it receives.</summary>
public sealed class HubClient : IAsyncDisposable
{
    public static readonly string[] Events =
    [
        "newMessage", "messagePersisted", "messagePersistFailed", "messageEdited", "messageDeleted", "reactionChanged",
        "memberJoined", "memberLeft", "memberAdded", "memberRemoved", "memberRoleChanged", "userMuted", "userUnmuted",
        "userBanned", "userUnbanned", "userKicked", "typing", "readReceipt", "delivered", "presenceChanged", "roomError",
        "sessionExpired", "conversationUpdated", "callUpdated",
    ];

    private readonly ConcurrentDictionary<string, Channel<JsonElement>> _inbox = new();
    private readonly TaskCompletionSource<Exception?> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private HubClient(HubConnection connection)
    {
        Connection = connection;
        foreach (var name in Events)
        {
            var channel = Inbox(name);
            connection.On<JsonElement>(name, payload =>
            {
                channel.Writer.TryWrite(payload);
                // Messages also go to a channel per conversation, so reading one room never skips another's.
                if (name == "newMessage") Inbox("newMessage:" + payload.Str("conversation_id")).Writer.TryWrite(payload);
                All.Enqueue((name, payload));
            });
        }
        // A room's joins, leaves and presence changes come batched per tick (roomActivity); the kit also files each
        // one under its own name, as a client SDK would hand them to an app.
        connection.On<JsonElement>("roomActivity", batch =>
        {
            All.Enqueue(("roomActivity", batch));
            Inbox("roomActivity").Writer.TryWrite(batch);
            var room = batch.Str("conversation_id");
            foreach (var (list, name) in new[] { ("joined", "memberJoined"), ("left", "memberLeft") })
                foreach (var user in batch.GetProperty(list).EnumerateArray())
                    File(name, JsonSerializer.SerializeToElement(new { conversation_id = room, user_id = user.GetString() }));
            foreach (var presence in batch.GetProperty("presence").EnumerateArray()) File("presenceChanged", presence.Clone());
        });
        connection.Closed += e =>
        {
            _closed.TrySetResult(e);
            return Task.CompletedTask;
        };
    }

    public HubConnection Connection { get; }

    private void File(string name, JsonElement payload)
    {
        Inbox(name).Writer.TryWrite(payload);
        All.Enqueue((name, payload));
    }

    /// <summary>Every event in arrival order.</summary>
    public ConcurrentQueue<(string Name, JsonElement Payload)> All { get; } = new();

    public Task<Exception?> Closed => _closed.Task;

    public static HubConnection Build(Uri baseAddress, string? token, HttpTransportType transport = HttpTransportType.WebSockets) =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(baseAddress, "/hubs/chat"), o =>
            {
                o.Transports = transport;
                o.AccessTokenProvider = () => Task.FromResult(token);
            })
            .AddJsonProtocol(o => o.PayloadSerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower)
            .Build();

    public static async Task<HubClient> ConnectAsync(Uri baseAddress, string token)
    {
        var client = new HubClient(Build(baseAddress, token));
        await client.Connection.StartAsync().WaitAsync(TimeSpan.FromSeconds(20));
        return client;
    }

    public async Task<JsonElement> Call(string method, object args)
    {
        var result = await Connection.InvokeAsync<JsonElement>(method, args).WaitAsync(TimeSpan.FromSeconds(20));
        return result;
    }

    /// <summary>Calls and asserts success.</summary>
    public async Task<JsonElement> Ok(string method, object args)
    {
        var result = await Call(method, args);
        Assert.True(result.GetProperty("success").GetBoolean(), $"{method} failed: {result}");
        return result;
    }

    /// <summary>Calls and asserts failure with <paramref name="code"/>.</summary>
    public async Task<JsonElement> Fails(string method, object args, string code)
    {
        var result = await Call(method, args);
        Assert.False(result.GetProperty("success").GetBoolean(), $"{method} should fail with {code}: {result}");
        Assert.Equal(code, result.GetProperty("error").GetProperty("code").GetString());
        return result;
    }

    public Task<JsonElement> JoinAsync(string conversation) => Ok("JoinRoom", new { conversation_id = conversation });

    public Task<JsonElement> SendAsync(string conversation, string text, string? messageId = null) =>
        Ok("SendMessage", new { conversation_id = conversation, content = new { type = "text", text }, message_id = messageId });

    public Channel<JsonElement> Inbox(string name) => _inbox.GetOrAdd(name, _ => Channel.CreateUnbounded<JsonElement>());

    /// <summary>The next <paramref name="name"/> event that matches, skipping others of that name.</summary>
    public async Task<JsonElement> NextAsync(string name, Func<JsonElement, bool>? match = null, TimeSpan? within = null)
    {
        using var cts = new CancellationTokenSource(within ?? TimeSpan.FromSeconds(15));
        try
        {
            while (true)
            {
                var e = await Inbox(name).Reader.ReadAsync(cts.Token);
                if (match is null || match(e)) return e;
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"No {name} event within {(within ?? TimeSpan.FromSeconds(15)).TotalSeconds} s; got: " +
                        string.Join(", ", All.Select(a => a.Name)));
            throw;
        }
    }

    /// <summary>The next <paramref name="count"/> newMessage events of a conversation.</summary>
    public async Task<List<JsonElement>> MessagesAsync(string conversation, int count, TimeSpan? within = null)
    {
        var list = new List<JsonElement>();
        while (list.Count < count) list.Add(await NextAsync("newMessage:" + conversation, within: within));
        return list;
    }

    public ValueTask DisposeAsync() => Connection.DisposeAsync();
}

public static class HubJson
{
    public static long Seq(this JsonElement e) => e.GetProperty("seq").GetInt64();
}
