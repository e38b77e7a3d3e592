using System.Text.Json;
using Caas.Web.Media;
using Microsoft.AspNetCore.SignalR.Client;
using Caas.Web.Tests.Hubs;
using Xunit.Abstractions;

namespace Caas.Web.Tests.Media;

/// <summary>A media node with 64 KiB chunks (the file store takes any size), so an upload has several chunks cheaply.</summary>
public sealed class MediaSmallChunkNode : MediaFileNode
{
    public MediaSmallChunkNode() => Settings = Settings with { ChunkBytes = 64 * 1024 };
}

/// <summary>
/// The hub's <c>uploadProgress</c> (the official .NET SignalR client): after each accepted chunk, to every connection of
/// the uploader, and to nobody else; across nodes, to the node the uploader's connection is on.
/// </summary>
public sealed class UploadProgressHubTests(MediaSmallChunkNode node) : IClassFixture<MediaSmallChunkNode>
{
    private const int Chunk = 64 * 1024;

    private static async Task<HubClient> ConnectAsync(Uri address, string token)
    {
        var client = await HubClient.ConnectAsync(address, token);
        var inbox = client.Inbox(UploadProgressPush.Event);
        client.Connection.On<JsonElement>(UploadProgressPush.Event, p =>
        {
            inbox.Writer.TryWrite(p);
            client.All.Enqueue((UploadProgressPush.Event, p));
        });
        return client;
    }

    [Fact]
    public async Task Each_accepted_chunk_is_pushed_to_every_connection_of_the_uploader_and_to_no_one_else()
    {
        var tenant = "t-progress-" + Guid.NewGuid().ToString("N")[..8];
        using var rest = node.Client(tenant, "alice");
        var conv = await rest.CreateGroupAsync("bob");
        await using var phone = await ConnectAsync(node.BaseAddress, node.Jwt.Issue(tenant, "alice"));
        await using var laptop = await ConnectAsync(node.BaseAddress, node.Jwt.Issue(tenant, "alice"));
        await using var bob = await ConnectAsync(node.BaseAddress, node.Jwt.Issue(tenant, "bob"));
        await using var otherTenant = await ConnectAsync(node.BaseAddress, node.Jwt.Issue(tenant + "-x", "alice"));

        var bytes = MediaHttp.Png(2 * Chunk + 100);
        var (started, start) = await rest.ApiPost("/v1/media/upload/chunk",
            new { file_name = "p.png", size = bytes.Length, content_type = "image/png", conversation_id = conv });
        Assert.True(started == 201, start.ToString());
        var upload = start.Str("upload_id");
        Assert.Equal(Chunk, start.GetProperty("chunk_size").GetInt32());

        // Out of order; the same chunk twice is accepted again (and pushed again); a refused one is not pushed.
        var order = new[] { 2, 0, 0, 1 };
        long expectReceived = 0;
        var seen = new HashSet<int>();
        foreach (var (index, step) in order.Select((i, n) => (i, n)))
        {
            var part = bytes.AsSpan(index * Chunk, Math.Min(Chunk, bytes.Length - index * Chunk)).ToArray();
            var (status, body) = await rest.ChunkAsync(upload, index, part);
            Assert.True(status == 200, body.ToString());
            if (seen.Add(index)) expectReceived += part.Length;
            if (step == 1)
                Assert.Equal(400, (await rest.ChunkAsync(upload, 7, part)).Status); // past the declared size: refused, not pushed
            foreach (var client in new[] { phone, laptop })
            {
                var push = await client.NextAsync(UploadProgressPush.Event, within: TimeSpan.FromSeconds(60));
                Assert.Equal(upload, push.Str("upload_id"));
                Assert.Equal(index, push.GetProperty("index").GetInt32());
                Assert.Equal(expectReceived, push.GetProperty("received_bytes").GetInt64());
                Assert.Equal(bytes.Length, push.GetProperty("size").GetInt64());
                Assert.Equal(seen.Count, push.GetProperty("chunks_received").GetInt32());
            }
        }
        Assert.Equal(201, (await rest.ApiPost($"/v1/media/upload/complete/{upload}", null)).Status);

        // Only alice's connections were recipients; the pushes above all arrived, and there was nothing more.
        Assert.False(bob.Inbox(UploadProgressPush.Event).Reader.TryRead(out _));
        Assert.False(otherTenant.Inbox(UploadProgressPush.Event).Reader.TryRead(out _));
        Assert.False(phone.Inbox(UploadProgressPush.Event).Reader.TryRead(out var extra), $"an extra push: {extra}");
    }
}

/// <summary>The uploader's connection on one node, the chunks sent to the other: the push crosses the cluster.</summary>
public sealed class UploadProgressTwoNodeTests(ITestOutputHelper output) : IAsyncLifetime
{
    private TwoNodeCluster? _cluster;
    private readonly Caas.Web.Auth.JwtSettings _jwt = new(HubNode.Secret, null, null, null);

    public async Task InitializeAsync() => _cluster = await TwoNodeCluster.StartAsync("progress2", output);

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    [Fact(Timeout = 180_000)]
    public async Task A_chunk_taken_on_one_node_is_pushed_to_the_uploaders_connection_on_the_other()
    {
        const string tenant = "t-progress-two";
        using var rest = new HttpClient { BaseAddress = _cluster!.Address(0), Timeout = TimeSpan.FromSeconds(60) };
        rest.DefaultRequestHeaders.Authorization = new("Bearer", _jwt.Issue(tenant, "alice"));
        var conv = await rest.CreateGroupAsync();
        var client = await HubClient.ConnectAsync(_cluster.Address(1), _jwt.Issue(tenant, "alice"));
        await using var _ = client;
        var inbox = client.Inbox(UploadProgressPush.Event);
        client.Connection.On<JsonElement>(UploadProgressPush.Event, p => inbox.Writer.TryWrite(p));

        var bytes = MediaHttp.Png(5000);
        var (started, start) = await rest.ApiPost("/v1/media/upload/chunk",
            new { file_name = "p.png", size = bytes.Length, content_type = "image/png", conversation_id = conv });
        Assert.True(started == 201, start.ToString());
        var upload = start.Str("upload_id");
        // A fresh cluster learns of the other node's subscription by gossip: until then a push has nowhere to go. The
        // same chunk again is accepted (and pushed) again, so it is re-sent until a push arrives (bounded: 90 s).
        JsonElement? arrived = null;
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (arrived is null)
        {
            Assert.True(DateTime.UtcNow < deadline, "no uploadProgress reached the other node within 90 s");
            var (status, body) = await rest.ChunkAsync(upload, 0, bytes);
            Assert.True(status == 200, body.ToString());
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            try
            {
                arrived = await inbox.Reader.ReadAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }
        var push = arrived.Value;
        Assert.Equal(upload, push.Str("upload_id"));
        Assert.Equal(0, push.GetProperty("index").GetInt32());
        Assert.Equal(bytes.Length, push.GetProperty("received_bytes").GetInt64());
        Assert.Equal(1, push.GetProperty("chunks_received").GetInt32());
    }
}
