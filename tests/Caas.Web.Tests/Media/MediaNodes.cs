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

    /// <summary>
    /// Sends one chunk as a resumable-upload client does: a chunk is idempotent, so a request that fails at the
    /// connection (a kept-alive connection the server closed after a refused request, met by the next request while its
    /// body is being written: HTTP/1.1's reuse race) is sent once more on a new connection.
    /// </summary>
    public static async Task<(int Status, System.Text.Json.JsonElement Body)> ChunkAsync(this HttpClient c, string uploadId, int index, byte[] bytes)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var content = new ByteArrayContent(bytes);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/media/upload/chunk/{uploadId}?index={index}") { Content = content };
            if (attempt > 1) request.Headers.ConnectionClose = true;
            HttpResponseMessage response;
            try
            {
                response = await c.SendAsync(request);
            }
            catch (HttpRequestException e) when (attempt == 1 && e.InnerException is IOException)
            {
                continue;
            }
            using (response)
            {
                var text = await response.Content.ReadAsStringAsync();
                return ((int)response.StatusCode, text.Length == 0 ? default : System.Text.Json.JsonDocument.Parse(text).RootElement.Clone());
            }
        }
    }

    public static async Task<byte[]> BytesAsync(this HttpClient c, string path, int expect = 200)
    {
        using var response = await c.GetAsync(path);
        Assert.Equal(expect, (int)response.StatusCode);
        return await response.Content.ReadAsByteArrayAsync();
    }
}
