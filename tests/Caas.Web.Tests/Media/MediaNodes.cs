using System.Net.Http.Headers;
using System.Security.Cryptography;
using Caas.Streams.Media;
using Caas.Tests.Shared;
using Caas.Web.Media;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests.Media;

/// <summary>A node with media on the file store and upload sessions in the operational store (the embedded default).</summary>
public class MediaFileNode : NodeFixture
{
    public string Root { get; } = Path.Combine(Path.GetTempPath(), "caas-media-api-" + Guid.NewGuid().ToString("N"));

    public MediaSettings Settings { get; protected set; } = new()
    {
        // 5 MiB: the smallest chunk S3 takes, so the same tests run on both stores.
        ChunkBytes = 5 * 1024 * 1024,
        MaxSingleBytes = 2 * 1024 * 1024,
        RetentionSweepEvery = TimeSpan.FromSeconds(1),
    };

    protected virtual IMediaStore Store() => new FileMediaStore(Root);

    /// <summary>The node's store, to prove bytes are gone after an erasure.</summary>
    public IMediaStore MediaStore { get; private set; } = null!;

    protected override void Configure(WebApplicationBuilder builder)
    {
        MediaStore = Store();
        builder.Services.AddSingleton(Settings);
        builder.Services.AddSingleton(MediaStore);
    }
}

/// <summary>The same on S3 (a real radosgw) with upload sessions in Redis.</summary>
public sealed class MediaS3Node : MediaFileNode
{
    public MediaS3Node() => Settings = Settings with { Redis = TestServices.Redis };

    protected override IMediaStore Store() =>
        new S3MediaStore(TestServices.S3Endpoint, TestServices.NewBucket("api"), TestServices.S3AccessKey, TestServices.S3SecretKey);
}

/// <summary>A user quota of 1,000 bytes, and a Redis nobody listens on (single uploads do not use it; resumable ones answer 503).</summary>
public sealed class MediaQuotaNode : MediaFileNode
{
    public MediaQuotaNode() => Settings = Settings with
    {
        UserQuota = new MediaQuota(1000, 100),
        TenantQuota = new MediaQuota(10_000, 3),
        Redis = "127.0.0.1:9,connectTimeout=500,syncTimeout=2000,asyncTimeout=2000",
    };
}

public static class MediaHttp
{
    public static byte[] Png(int size, int seed = 1)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }.CopyTo(bytes, 0);
        return bytes;
    }

    public static byte[] Pdf(int size, int seed = 2)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        "%PDF-1.7\n"u8.CopyTo(bytes);
        return bytes;
    }

    public static string Sha(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));

    public static async Task<(int Status, System.Text.Json.JsonElement Body)> UploadAsync(this HttpClient c, string conversation, byte[] bytes,
        string fileName = "a.png", string? contentType = "image/png")
    {
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent(conversation), "conversation_id");
        var file = new ByteArrayContent(bytes);
        if (contentType is not null) file.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        form.Add(file, "file", fileName);
        using var response = await c.PostAsync("/v1/media/upload", form);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? default : System.Text.Json.JsonDocument.Parse(text).RootElement.Clone());
    }

    public static async Task<(int Status, System.Text.Json.JsonElement Body)> ChunkAsync(this HttpClient c, string uploadId, int index, byte[] bytes)
    {
        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await c.PostAsync($"/v1/media/upload/chunk/{uploadId}?index={index}", content);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? default : System.Text.Json.JsonDocument.Parse(text).RootElement.Clone());
    }

    public static async Task<byte[]> BytesAsync(this HttpClient c, string path, int expect = 200)
    {
        using var response = await c.GetAsync(path);
        Assert.Equal(expect, (int)response.StatusCode);
        return await response.Content.ReadAsByteArrayAsync();
    }
}

/// <summary>HTTP/1.1 over a bare socket, to see when the server answers while a request body is still being sent.</summary>
public sealed class RawHttp : IDisposable
{
    private readonly System.Net.Sockets.Socket socket;
    private readonly string host;
    private readonly string? authorization;
    private readonly List<byte> pending = [];

    private RawHttp(System.Net.Sockets.Socket socket, string host, string? authorization) =>
        (this.socket, this.host, this.authorization) = (socket, host, authorization);

    public static async Task<RawHttp> ConnectAsync(HttpClient like)
    {
        var uri = like.BaseAddress!;
        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(uri.Host, uri.Port);
        return new RawHttp(socket, uri.Authority, like.DefaultRequestHeaders.Authorization?.ToString());
    }

    public Task SendHeadAsync(string method, string path, long? contentLength, string? contentType)
    {
        var head = new System.Text.StringBuilder($"{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
        if (authorization is not null) head.Append($"Authorization: {authorization}\r\n");
        if (contentType is not null) head.Append($"Content-Type: {contentType}\r\n");
        if (contentLength is { } n) head.Append($"Content-Length: {n}\r\n");
        head.Append("\r\n");
        return SendAsync(System.Text.Encoding.ASCII.GetBytes(head.ToString()));
    }

    public async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty) bytes = bytes[await socket.SendAsync(bytes)..];
    }

    /// <summary>What has been received and not read yet.</summary>
    public string Received => System.Text.Encoding.ASCII.GetString(pending.ToArray());

    /// <summary>Whether any byte of an answer arrives within <paramref name="wait"/>.</summary>
    public async Task<bool> AnswerArrivesWithinAsync(TimeSpan wait)
    {
        using var cts = new CancellationTokenSource(wait);
        var buffer = new byte[4096];
        try
        {
            var n = await socket.ReceiveAsync(buffer, System.Net.Sockets.SocketFlags.None, cts.Token);
            pending.AddRange(buffer.AsSpan(0, n).ToArray());
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Reads one response (a Content-Length or a chunked body), bounded at 60 s.</summary>
    public async Task<(int Status, string Body)> ReadResponseAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var head = await ReadLineBlockAsync(cts.Token);
        var lines = head.Split("\r\n");
        var status = int.Parse(lines[0].Split(' ', 3)[1], System.Globalization.CultureInfo.InvariantCulture);
        string? Header(string name) => lines.Skip(1).Select(l => l.Split(':', 2))
            .Where(p => p.Length == 2 && p[0].Trim().Equals(name, StringComparison.OrdinalIgnoreCase)).Select(p => p[1].Trim()).FirstOrDefault();
        var body = new List<byte>();
        if (Header("Transfer-Encoding") is { } te && te.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            while (true)
            {
                var size = Convert.ToInt32((await ReadLineAsync(cts.Token)).Split(';')[0].Trim(), 16);
                if (size == 0)
                {
                    while ((await ReadLineAsync(cts.Token)).Length > 0) { } // trailers, then the empty line
                    break;
                }
                body.AddRange(await ReadExactlyAsync(size, cts.Token));
                await ReadLineAsync(cts.Token);
            }
        }
        else if (Header("Content-Length") is { } length)
        {
            body.AddRange(await ReadExactlyAsync(int.Parse(length, System.Globalization.CultureInfo.InvariantCulture), cts.Token));
        }
        return (status, System.Text.Encoding.UTF8.GetString(body.ToArray()));
    }

    private async Task<string> ReadLineBlockAsync(CancellationToken ct)
    {
        var lines = new List<string>();
        while (await ReadLineAsync(ct) is { Length: > 0 } line) lines.Add(line);
        return string.Join("\r\n", lines);
    }

    private async Task<string> ReadLineAsync(CancellationToken ct)
    {
        int end;
        while ((end = IndexOfLineEnd()) < 0) await ReceiveAsync(ct);
        var line = System.Text.Encoding.ASCII.GetString(pending.GetRange(0, end).ToArray());
        pending.RemoveRange(0, end + 2);
        return line;
    }

    private async Task<byte[]> ReadExactlyAsync(int count, CancellationToken ct)
    {
        while (pending.Count < count) await ReceiveAsync(ct);
        var bytes = pending.GetRange(0, count).ToArray();
        pending.RemoveRange(0, count);
        return bytes;
    }

    private async Task ReceiveAsync(CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        var n = await socket.ReceiveAsync(buffer, System.Net.Sockets.SocketFlags.None, ct);
        if (n == 0) throw new IOException("The server closed the connection.");
        pending.AddRange(buffer.AsSpan(0, n).ToArray());
    }

    private int IndexOfLineEnd()
    {
        for (var i = 0; i + 1 < pending.Count; i++)
            if (pending[i] == '\r' && pending[i + 1] == '\n') return i;
        return -1;
    }

    public void Dispose() => socket.Dispose();
}
