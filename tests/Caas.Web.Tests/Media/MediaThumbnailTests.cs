using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Caas.Actors.Media;
using Caas.Streams.Media;
using Caas.Tests.Shared;
using Caas.Web.Media;
using Microsoft.Extensions.DependencyInjection;
using SkiaSharp;

namespace Caas.Web.Tests.Media;

/// <summary>A media node whose thumbnail scan runs every second and takes files of any age (the restart path, testable).</summary>
public class MediaThumbnailFileNode : MediaFileNode
{
    public MediaThumbnailFileNode() => Settings = Settings with
    {
        Thumbnails = new ThumbnailLimits { ScanEvery = TimeSpan.FromSeconds(1), ScanMinAge = TimeSpan.Zero },
    };
}

/// <summary>The same on S3 (a real radosgw) with upload sessions in Redis.</summary>
public sealed class MediaThumbnailS3Node : MediaThumbnailFileNode
{
    public MediaThumbnailS3Node() => Settings = Settings with { Redis = TestServices.Redis };

    protected override IMediaStore Store() =>
        new S3MediaStore(TestServices.S3Endpoint, TestServices.NewBucket("thumbs"), TestServices.S3AccessKey, TestServices.S3SecretKey);
}

/// <summary>Thumbnails and posters, made off the request path; one suite on the file store and on radosgw.</summary>
public abstract class MediaThumbnailContract(MediaThumbnailFileNode node)
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(2);

    private string Tenant { get; } = "t-thumb-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task A_jpeg_with_exif_orientation_and_gps_gets_an_upright_thumbnail_without_exif_and_the_original_stays_byte_exact()
    {
        using var alice = node.Client(Tenant, "alice");
        using var bob = node.Client(Tenant, "bob");
        using var stranger = node.Client(Tenant, "stranger");
        var conv = await alice.CreateGroupAsync("bob");
        // Stored 400×200, left half red, right half blue; EXIF orientation 6 (rotate 90° clockwise) and a GPS position.
        var original = Images.WithExif(Images.Jpeg(400, 200), orientation: 6);
        Assert.Contains("Exif", Encoding.ASCII.GetString(original));
        var (status, file) = await alice.UploadAsync(conv, original, "photo.jpg", "image/jpeg");
        Assert.True(status == 201, file.ToString());
        var id = file.Str("id");

        var meta = await WaitForThumbnailAsync(alice, id);
        Assert.Equal($"/v1/media/files/{id}/thumbnail", meta.Str("thumbnail_url"));
        Assert.Equal(200, meta.GetProperty("width").GetInt32()); // as displayed: orientation applied
        Assert.Equal(400, meta.GetProperty("height").GetInt32());

        using var response = await bob.GetAsync($"/v1/media/files/{id}/thumbnail");
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("image/jpeg", response.Content.Headers.ContentType!.MediaType);
        var thumb = await response.Content.ReadAsByteArrayAsync();
        using var conditional = new HttpRequestMessage(HttpMethod.Get, $"/v1/media/files/{id}/thumbnail");
        conditional.Headers.IfNoneMatch.Add(response.Headers.ETag!);
        Assert.Equal(304, (int)(await bob.SendAsync(conditional)).StatusCode);
        Assert.DoesNotContain("Exif", Encoding.ASCII.GetString(thumb));
        Assert.DoesNotContain("GPS", Encoding.ASCII.GetString(thumb));
        using var codec = SKCodec.Create(SKData.CreateCopy(thumb));
        Assert.Equal(SKEncodedOrigin.TopLeft, codec.EncodedOrigin);
        using var bitmap = SKBitmap.Decode(thumb);
        Assert.Equal((160, 320), (bitmap.Width, bitmap.Height));
        // Rotated clockwise: the stored left (red) is on top, the right (blue) at the bottom.
        var top = bitmap.GetPixel(80, 60);
        var bottom = bitmap.GetPixel(80, 260);
        Assert.True(top.Red > 200 && top.Blue < 60, $"top {top}");
        Assert.True(bottom.Blue > 200 && bottom.Red < 60, $"bottom {bottom}");

        Assert.Equal(original, await alice.BytesAsync($"/v1/media/download/{id}"));
        var (strangerStatus, strangerBody) = await stranger.ApiGet($"/v1/media/files/{id}/thumbnail");
        Assert.Equal(404, strangerStatus);
        Assert.Equal("not_found", strangerBody.Code());

        // The gallery shows it too, once the read model has the outcome.
        var item = await WaitForAsync(async () =>
        {
            var (_, gallery) = await alice.ApiGet($"/v1/conversations/{conv}/media?type=image");
            return gallery.GetProperty("items").EnumerateArray().FirstOrDefault(i => i.Str("id") == id) is { ValueKind: JsonValueKind.Object } it
                   && it.GetProperty("thumbnail_url").ValueKind == JsonValueKind.String
                ? it
                : (JsonElement?)null;
        });
        Assert.Equal($"/v1/media/files/{id}/thumbnail", item.Str("thumbnail_url"));
        Assert.Equal(200, item.GetProperty("width").GetInt32());
    }

    [Fact]
    public async Task A_png_from_a_resumable_upload_gets_a_thumbnail_that_fits_the_limit()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        var png = Images.Png(1000, 500);
        var (started, start) = await alice.ApiPost("/v1/media/upload/chunk",
            new { file_name = "wide.png", size = png.Length, content_type = "image/png", conversation_id = conv });
        Assert.True(started == 201, start.ToString());
        var upload = start.Str("upload_id");
        Assert.Equal(200, (await alice.ChunkAsync(upload, 0, png)).Status);
        var (completed, file) = await alice.ApiPost($"/v1/media/upload/complete/{upload}", null);
        Assert.True(completed == 201, file.ToString());
        var id = file.Str("id");

        var meta = await WaitForThumbnailAsync(alice, id);
        Assert.Equal(1000, meta.GetProperty("width").GetInt32());
        Assert.Equal(500, meta.GetProperty("height").GetInt32());
        using var bitmap = SKBitmap.Decode(await alice.BytesAsync($"/v1/media/files/{id}/thumbnail"));
        Assert.Equal((320, 160), (bitmap.Width, bitmap.Height));
        // Transparent pixels are flattened on white (JPEG has no alpha).
        var corner = bitmap.GetPixel(2, 2);
        Assert.True(corner is { Red: > 240, Green: > 240, Blue: > 240 }, corner.ToString());
    }

    [Fact]
    public async Task A_decompression_bomb_is_never_decoded_gets_no_thumbnail_and_the_node_keeps_working()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        // A 60,000 × 60,000 PNG (3.6 billion pixels, over 10 GB decoded) in a few hundred bytes.
        var bomb = Images.PngHeaderBomb(60_000, 60_000);
        Assert.True(bomb.Length < 10_000);
        var (status, file) = await alice.UploadAsync(conv, bomb, "bomb.png", "image/png");
        Assert.True(status == 201, file.ToString());
        var id = file.Str("id");
        Assert.Equal(404, (await alice.ApiGet($"/v1/media/files/{id}/thumbnail")).Status);

        // The header is read (its dimensions are recorded); no thumbnail is made.
        var meta = await WaitForAsync(async () =>
        {
            var (_, m) = await alice.ApiGet($"/v1/media/files/{id}");
            return m.GetProperty("width").ValueKind == JsonValueKind.Number ? m : (JsonElement?)null;
        });
        Assert.Equal(60_000, meta.GetProperty("width").GetInt32());
        Assert.Equal(JsonValueKind.Null, meta.GetProperty("thumbnail_url").ValueKind);
        var (thumbStatus, thumbBody) = await alice.ApiGet($"/v1/media/files/{id}/thumbnail");
        Assert.Equal(404, thumbStatus);
        Assert.Equal("not_found", thumbBody.Code());
        Assert.Null(await node.MediaStore.SizeAsync(Tenant, ThumbnailKeys.Of(id)));

        // The node goes on: the next image gets its thumbnail.
        var (_, next) = await alice.UploadAsync(conv, Images.Jpeg(64, 48), "small.jpg", "image/jpeg");
        await WaitForThumbnailAsync(alice, next.Str("id"));
    }

    [Fact]
    public async Task A_video_gets_a_poster_and_its_duration_and_audio_its_duration()
    {
        Assert.True(new FfmpegTools().Available, "ffmpeg and ffprobe are needed on PATH (scripts/deps/ffmpeg.sh installs them).");
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        var video = await Ffmpeg.MakeAsync("mp4", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "2", "-c:v", "mpeg4", "-f", "mp4");
        var (status, file) = await alice.UploadAsync(conv, video, "clip.mp4", "video/mp4");
        Assert.True(status == 201, file.ToString());
        var id = file.Str("id");

        var meta = await WaitForThumbnailAsync(alice, id);
        Assert.Equal(320, meta.GetProperty("width").GetInt32());
        Assert.Equal(240, meta.GetProperty("height").GetInt32());
        Assert.InRange(meta.GetProperty("duration_ms").GetInt64(), 1500, 2500);
        using var poster = SKBitmap.Decode(await alice.BytesAsync($"/v1/media/files/{id}/thumbnail"));
        Assert.Equal((320, 240), (poster.Width, poster.Height));
        Assert.Equal(video, await alice.BytesAsync($"/v1/media/download/{id}"));

        var audio = await Ffmpeg.MakeAsync("wav", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-f", "wav");
        var (audioStatus, audioFile) = await alice.UploadAsync(conv, audio, "tone.wav", "audio/wav");
        Assert.True(audioStatus == 201, audioFile.ToString());
        var audioMeta = await WaitForAsync(async () =>
        {
            var (_, m) = await alice.ApiGet($"/v1/media/files/{audioFile.Str("id")}");
            return m.GetProperty("duration_ms").ValueKind == JsonValueKind.Number ? m : (JsonElement?)null;
        });
        Assert.InRange(audioMeta.GetProperty("duration_ms").GetInt64(), 900, 1100);
        Assert.Equal(JsonValueKind.Null, audioMeta.GetProperty("thumbnail_url").ValueKind);
    }

    [Fact]
    public async Task Deleting_a_file_or_erasing_its_owner_removes_the_thumbnail_from_the_store()
    {
        using var alice = node.Client(Tenant, "alice");
        using var bob = node.Client(Tenant, "bob");
        using var admin = node.Client(Tenant, "root", "admin");
        var conv = await alice.CreateGroupAsync("bob");
        var (_, a) = await alice.UploadAsync(conv, Images.Jpeg(100, 80), "a.jpg", "image/jpeg");
        var (_, b) = await bob.UploadAsync(conv, Images.Jpeg(120, 90), "b.jpg", "image/jpeg");
        await WaitForThumbnailAsync(alice, a.Str("id"));
        await WaitForThumbnailAsync(bob, b.Str("id"));
        Assert.NotNull(await node.MediaStore.SizeAsync(Tenant, ThumbnailKeys.Of(a.Str("id"))));
        Assert.NotNull(await node.MediaStore.SizeAsync(Tenant, ThumbnailKeys.Of(b.Str("id"))));

        Assert.Equal(204, (await alice.ApiDelete($"/v1/media/files/{a.Str("id")}")).Status);
        Assert.Null(await node.MediaStore.SizeAsync(Tenant, ThumbnailKeys.Of(a.Str("id"))));
        Assert.Equal(404, (await alice.ApiGet($"/v1/media/files/{a.Str("id")}/thumbnail")).Status);

        var (erased, report) = await admin.ApiDelete("/v1/admin/users/bob");
        Assert.True(erased == 200, report.ToString());
        Assert.Equal(1, report.GetProperty("files_erased").GetInt32());
        Assert.Null(await node.MediaStore.SizeAsync(Tenant, ThumbnailKeys.Of(b.Str("id"))));
    }

    [Fact]
    public async Task A_ready_file_whose_queued_work_was_lost_gets_its_thumbnail_from_the_scan()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        // As after a crash: the bytes are stored and the file registered, but nothing was queued on this node.
        var bytes = Images.Jpeg(300, 300);
        var id = "f_" + Guid.NewGuid().ToString("N");
        var store = node.Services.GetRequiredService<IMediaStore>();
        await store.PutAsync(Tenant, id, new MemoryStream(bytes));
        var reply = await node.Services.GetRequiredService<MediaGateway>().AskAsync(
            new RegisterMedia(Tenant, id, "alice", conv, "lost.jpg", "image/jpeg", bytes.Length, MediaHttp.Sha(bytes)));
        Assert.IsType<MediaFile>(reply);

        var meta = await WaitForThumbnailAsync(alice, id);
        Assert.Equal(300, meta.GetProperty("width").GetInt32());
        using var thumb = SKBitmap.Decode(await alice.BytesAsync($"/v1/media/files/{id}/thumbnail"));
        Assert.Equal((300, 300), (thumb.Width, thumb.Height)); // never upscaled
    }

    private static Task<JsonElement> WaitForThumbnailAsync(HttpClient client, string id) => WaitForAsync(async () =>
    {
        var (status, meta) = await client.ApiGet($"/v1/media/files/{id}");
        Assert.True(status == 200, meta.ToString());
        return meta.GetProperty("thumbnail_url").ValueKind == JsonValueKind.String ? meta : (JsonElement?)null;
    });

    /// <summary>Polls until <paramref name="probe"/> gives a value; fails after two minutes (never a timed assertion on speed).</summary>
    private static async Task<JsonElement> WaitForAsync(Func<Task<JsonElement?>> probe)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            if (await probe() is { } found) return found;
            if (watch.Elapsed > Patience) throw new TimeoutException($"Not there after {Patience}.");
            await Task.Delay(200);
        }
    }
}

public sealed class FileStoreMediaThumbnailTests(MediaThumbnailFileNode node) : MediaThumbnailContract(node), IClassFixture<MediaThumbnailFileNode>;

public sealed class S3MediaThumbnailTests(MediaThumbnailS3Node node) : MediaThumbnailContract(node), IClassFixture<MediaThumbnailS3Node>;

/// <summary>Test images made with SkiaSharp, and hand-built EXIF and PNG headers.</summary>
public static class Images
{
    /// <summary>A JPEG, left half red, right half blue.</summary>
    public static byte[] Jpeg(int width, int height)
    {
        using var bitmap = new SKBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            using var red = new SKPaint { Color = SKColors.Red };
            using var blue = new SKPaint { Color = SKColors.Blue };
            canvas.DrawRect(0, 0, width / 2f, height, red);
            canvas.DrawRect(width / 2f, 0, width - width / 2f, height, blue);
        }
        using var image = SKImage.FromBitmap(bitmap);
        return image.Encode(SKEncodedImageFormat.Jpeg, 95).ToArray();
    }

    /// <summary>A PNG with a transparent background and a green disc.</summary>
    public static byte[] Png(int width, int height)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.Transparent);
            using var green = new SKPaint { Color = SKColors.Green, IsAntialias = true };
            canvas.DrawCircle(width / 2f, height / 2f, Math.Min(width, height) / 3f, green);
        }
        using var image = SKImage.FromBitmap(bitmap);
        return image.Encode(SKEncodedImageFormat.Png, 100).ToArray();
    }

    /// <summary>The JPEG with an EXIF APP1 segment right after SOI: the orientation and a GPS latitude (48°51'30" N).</summary>
    public static byte[] WithExif(byte[] jpeg, ushort orientation)
    {
        var tiff = new List<byte>();
        void U16(int v) { tiff.Add((byte)(v >> 8)); tiff.Add((byte)v); }
        void U32(int v) { U16(v >> 16); U16(v & 0xFFFF); }
        tiff.AddRange("MM"u8.ToArray());
        U16(42);
        U32(8);
        // IFD0 at 8: orientation, GPS IFD pointer.
        U16(2);
        U16(0x0112); U16(3); U32(1); U16(orientation); U16(0);
        U16(0x8825); U16(4); U32(1); U32(8 + 2 + 24 + 4);
        U32(0);
        // GPS IFD at 38: latitude ref, latitude (three rationals at 68).
        U16(2);
        U16(0x0001); U16(2); U32(2); tiff.AddRange("N\0\0\0"u8.ToArray());
        U16(0x0002); U16(5); U32(3); U32(38 + 2 + 24 + 4);
        U32(0);
        foreach (var n in new[] { 48, 51, 30 }) { U32(n); U32(1); }

        var payload = "Exif\0\0"u8.ToArray().Concat(tiff).ToArray();
        var segment = new byte[4 + payload.Length];
        segment[0] = 0xFF;
        segment[1] = 0xE1;
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(2), (ushort)(payload.Length + 2));
        payload.CopyTo(segment, 4);
        return jpeg[..2].Concat(segment).Concat(jpeg[2..]).ToArray();
    }

    /// <summary>A PNG whose header claims <paramref name="width"/>×<paramref name="height"/> RGB pixels, with one row of data.</summary>
    public static byte[] PngHeaderBomb(int width, int height)
    {
        using var png = new MemoryStream();
        png.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // RGB
        Chunk(png, "IHDR", ihdr);
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true))
            z.Write(new byte[1 + 3 * width]); // one filter byte and one row of black
        Chunk(png, "IDAT", compressed.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream png, string type, byte[] data)
    {
        Span<byte> u32 = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(u32, data.Length);
        png.Write(u32);
        var typed = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        png.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(u32, System.IO.Hashing.Crc32.HashToUInt32(typed));
        png.Write(u32);
    }
}

/// <summary>Makes small media files with Debian's ffmpeg.</summary>
public static class Ffmpeg
{
    public static async Task<byte[]> MakeAsync(string extension, params string[] args)
    {
        var path = Path.Combine(Path.GetTempPath(), "caas-thumb-test-" + Guid.NewGuid().ToString("N") + "." + extension);
        var start = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-nostdin", "-v", "error", "-y" }.Concat(args).Append(path)) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var errors = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(cts.Token);
        Assert.True(process.ExitCode == 0, "ffmpeg: " + await errors);
        try
        {
            return await File.ReadAllBytesAsync(path);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
