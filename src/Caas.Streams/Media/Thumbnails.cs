using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SkiaSharp;

namespace Caas.Streams.Media;

/// <summary>Bounds on thumbnail work: the longest side made, pixels decoded, bytes read, and time spent per file.</summary>
public sealed record ThumbnailLimits
{
    /// <summary>The thumbnail's longest side in pixels (<c>CAAS_MEDIA_THUMB_SIDE</c>, default 320); never upscaled.</summary>
    public int MaxSide { get; init; } = 320;

    /// <summary>Images with more pixels than this are not decoded (<c>CAAS_MEDIA_THUMB_MAX_PIXELS</c>, default 40,000,000): decompression bombs.</summary>
    public long MaxPixels { get; init; } = 40_000_000;

    /// <summary>The largest image file read for a thumbnail (<c>CAAS_MEDIA_THUMB_MAX_IMAGE_MB</c>, default 64).</summary>
    public long MaxImageBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>The largest video or audio file copied for ffmpeg (<c>CAAS_MEDIA_THUMB_MAX_VIDEO_MB</c>, default 1024).</summary>
    public long MaxVideoBytes { get; init; } = 1024L * 1024 * 1024;

    /// <summary>Per file, everything included (<c>CAAS_MEDIA_THUMB_TIMEOUT_SECONDS</c>, default 60); ffmpeg is killed past it.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Files worked on at once per node (<c>CAAS_MEDIA_THUMB_CONCURRENCY</c>, default 2).</summary>
    public int Concurrency { get; init; } = 2;

    /// <summary>How often ready files without a thumbnail outcome are looked for (<c>CAAS_MEDIA_THUMB_SCAN_SECONDS</c>, default 300).</summary>
    public TimeSpan ScanEvery { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>The scan takes files at least this old (newer ones are still queued on the node that took them; default a minute).</summary>
    public TimeSpan ScanMinAge { get; init; } = TimeSpan.FromMinutes(1);

    public int JpegQuality { get; init; } = 80;
}

/// <summary>What was made of a file: the thumbnail's JPEG (or null and why not), and the original's dimensions and duration.</summary>
public sealed record ThumbnailOutcome(byte[]? Jpeg, int ThumbWidth, int ThumbHeight, int? Width, int? Height, long? DurationMs, string? Skipped)
{
    public static ThumbnailOutcome Skip(string why, int? width = null, int? height = null, long? durationMs = null) =>
        new(null, 0, 0, width, height, durationMs, why);
}

/// <summary>
/// Image thumbnails with SkiaSharp: the header is read first and an image over the pixel limit is refused before any
/// pixel is decoded; JPEG is decoded at a reduced scale where the codec can; EXIF orientation is applied; the result
/// is re-encoded as a JPEG (alpha over white) of at most <see cref="ThumbnailLimits.MaxSide"/> pixels a side, so it
/// carries none of the original's metadata (EXIF, GPS, XMP).
/// </summary>
public static class ImageThumbnails
{
    public const string ContentType = "image/jpeg";

    public static ThumbnailOutcome Make(byte[] encoded, ThumbnailLimits limits)
    {
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data);
        if (codec is null) return ThumbnailOutcome.Skip("undecodable");
        var info = codec.Info;
        var origin = codec.EncodedOrigin;
        var swap = origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        var (width, height) = swap ? (info.Height, info.Width) : (info.Width, info.Height);
        if (info.Width <= 0 || info.Height <= 0) return ThumbnailOutcome.Skip("undecodable");
        if ((long)info.Width * info.Height > limits.MaxPixels) return ThumbnailOutcome.Skip("too_many_pixels", width, height);

        // The codec's own downscale (JPEG: 1/2, 1/4, 1/8) toward twice the target, then a good resample.
        var scale = Math.Min(1f, 2f * limits.MaxSide / Math.Max(info.Width, info.Height));
        var decodeSize = codec.GetScaledDimensions(scale);
        if (decodeSize.Width <= 0 || decodeSize.Height <= 0) decodeSize = info.Size;
        var decodeInfo = new SKImageInfo(decodeSize.Width, decodeSize.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var decoded = new SKBitmap(decodeInfo);
        var result = codec.GetPixels(decodeInfo, decoded.GetPixels());
        if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput)) return ThumbnailOutcome.Skip("undecodable", width, height);

        var jpeg = Render(decoded, origin, limits, out var tw, out var th);
        return new ThumbnailOutcome(jpeg, tw, th, width, height, null, null);
    }

    /// <summary>Scales <paramref name="source"/> to fit the limit, applies the orientation, flattens on white and encodes a JPEG.</summary>
    public static byte[] Render(SKBitmap source, SKEncodedOrigin origin, ThumbnailLimits limits, out int width, out int height)
    {
        var swap = origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        var (ow, oh) = swap ? (source.Height, source.Width) : (source.Width, source.Height);
        var fit = Math.Min(1.0, (double)limits.MaxSide / Math.Max(ow, oh));
        width = Math.Max(1, (int)Math.Round(ow * fit));
        height = Math.Max(1, (int)Math.Round(oh * fit));
        // Drawn size before the orientation's rotation.
        var (dw, dh) = swap ? (height, width) : (width, height);

        using var surfaceBitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(surfaceBitmap))
        {
            canvas.Clear(SKColors.White);
            canvas.SetMatrix(OrientationMatrix(origin, dw, dh));
            using var image = SKImage.FromBitmap(source);
            canvas.DrawImage(image, new SKRect(0, 0, dw, dh), new SKSamplingOptions(SKCubicResampler.Mitchell));
            canvas.Flush();
        }
        using var output = SKImage.FromBitmap(surfaceBitmap);
        using var encoded = output.Encode(SKEncodedImageFormat.Jpeg, limits.JpegQuality);
        return encoded.ToArray();
    }

    /// <summary>The transform that draws a <paramref name="w"/>×<paramref name="h"/> image stored with <paramref name="origin"/> upright.</summary>
    private static SKMatrix OrientationMatrix(SKEncodedOrigin origin, float w, float h) => origin switch
    {
        SKEncodedOrigin.TopRight => new SKMatrix(-1, 0, w, 0, 1, 0, 0, 0, 1),
        SKEncodedOrigin.BottomRight => new SKMatrix(-1, 0, w, 0, -1, h, 0, 0, 1),
        SKEncodedOrigin.BottomLeft => new SKMatrix(1, 0, 0, 0, -1, h, 0, 0, 1),
        // Transpose.
        SKEncodedOrigin.LeftTop => new SKMatrix(0, 1, 0, 1, 0, 0, 0, 0, 1),
        // Rotate 90° clockwise: the stored left column becomes the top row.
        SKEncodedOrigin.RightTop => new SKMatrix(0, -1, h, 1, 0, 0, 0, 0, 1),
        // Transverse.
        SKEncodedOrigin.RightBottom => new SKMatrix(0, -1, h, -1, 0, w, 0, 0, 1),
        // Rotate 90° counter-clockwise.
        SKEncodedOrigin.LeftBottom => new SKMatrix(0, 1, 0, -1, 0, w, 0, 0, 1),
        _ => SKMatrix.Identity,
    };
}

/// <summary>
/// Debian's <c>ffprobe</c> and <c>ffmpeg</c> as processes: the duration and size of a video or audio file, and a
/// video's poster frame. Each run is killed (with its children) when the token is cancelled. Without the binaries on
/// PATH, <see cref="Available"/> is false and nothing runs.
/// </summary>
public sealed class FfmpegTools
{
    public string? Ffmpeg { get; } = Find("ffmpeg");

    public string? Ffprobe { get; } = Find("ffprobe");

    public bool Available => Ffmpeg is not null && Ffprobe is not null;

    private static string? Find(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    /// <summary>The first video stream's display size (rotation applied) and the duration in ms, where ffprobe gives them.</summary>
    public async Task<(int? Width, int? Height, long? DurationMs)> ProbeAsync(string path, CancellationToken ct)
    {
        var (code, output) = await RunAsync(Ffprobe!, ["-v", "error", "-print_format", "json", "-show_format", "-show_streams", path], ct);
        if (code != 0 || output.Length == 0) return (null, null, null);
        using var doc = JsonDocument.Parse(output);
        long? duration = doc.RootElement.TryGetProperty("format", out var format) && format.TryGetProperty("duration", out var d)
                         && double.TryParse(d.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds)
            ? (long)Math.Round(seconds * 1000)
            : null;
        int? width = null, height = null;
        if (doc.RootElement.TryGetProperty("streams", out var streams))
        {
            foreach (var s in streams.EnumerateArray())
            {
                if (s.TryGetProperty("codec_type", out var type) && type.GetString() == "video" && s.TryGetProperty("width", out var w)
                    && s.TryGetProperty("height", out var h))
                {
                    (width, height) = (w.GetInt32(), h.GetInt32());
                    if (Rotation(s) is 90 or 270) (width, height) = (height, width);
                    break;
                }
            }
        }
        return (width, height, duration);
    }

    private static int Rotation(JsonElement stream)
    {
        if (stream.TryGetProperty("side_data_list", out var side))
            foreach (var item in side.EnumerateArray())
                if (item.TryGetProperty("rotation", out var r) && r.TryGetInt32(out var deg)) return ((deg % 360) + 360) % 360;
        if (stream.TryGetProperty("tags", out var tags) && tags.TryGetProperty("rotate", out var rotate)
            && int.TryParse(rotate.GetString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var tagged))
            return ((tagged % 360) + 360) % 360;
        return 0;
    }

    /// <summary>A PNG of the first frame (ffmpeg applies the stream's rotation), scaled to fit 640×640; null when there is none.</summary>
    public async Task<byte[]?> PosterAsync(string path, CancellationToken ct)
    {
        var (code, output) = await RunAsync(Ffmpeg!, ["-nostdin", "-v", "error", "-i", path, "-map", "0:v:0", "-frames:v", "1",
            "-vf", "scale=640:640:force_original_aspect_ratio=decrease", "-f", "image2pipe", "-c:v", "png", "-"], ct);
        return code == 0 && output.Length > 0 ? output : null;
    }

    private static async Task<(int Code, byte[] Output)> RunAsync(string file, string[] args, CancellationToken ct)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start.");
        try
        {
            using var output = new MemoryStream();
            var copy = process.StandardOutput.BaseStream.CopyToAsync(output, ct);
            var errors = process.StandardError.ReadToEndAsync(ct);
            await Task.WhenAll(copy, errors, process.WaitForExitAsync(ct));
            return (process.ExitCode, output.ToArray());
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw;
        }
    }
}

/// <summary>Where a file's thumbnail lives in the store: beside the original, under the same tenant.</summary>
public static class ThumbnailKeys
{
    /// <summary>The thumbnail's object id (a file id is <c>f_</c> and 32 hex digits, so no file id ends like this).</summary>
    public static string Of(string fileId) => fileId + "_thumb";
}
