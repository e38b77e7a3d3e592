using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Caas.Actors.Common;
using Caas.Actors.Media;
using Caas.Streams.Media;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;
using Prometheus;

namespace Caas.Web.Media;

/// <summary>
/// Makes thumbnails off the request path. A file that becomes ready (a single upload, a completed resumable one) is
/// enqueued on the node that took it; <see cref="ThumbnailLimits.Concurrency"/> workers take files from a bounded queue,
/// read the original from the store, make the thumbnail (SkiaSharp for images, ffmpeg's first frame for video, ffprobe's
/// duration for audio and video), store it beside the original (<c>{tenant}/{file id}_thumb</c>) and record the outcome
/// on the file's entity (<see cref="MediaProcessed"/>). Every file gets one outcome: a thumbnail, or why there is none.
/// Restarts: a scan of the read model (at start, then every <see cref="ThumbnailLimits.ScanEvery"/>) enqueues ready
/// files without an outcome, so work lost with a node is done later; the entity answers a second outcome with the
/// first, so a file processed twice (two nodes scanning) is recorded once.
/// </summary>
public sealed class ThumbnailQueue(MediaSettings settings, IMediaStore store, MediaGateway media, MediaReadModel readModel,
    ILogger<ThumbnailQueue> log) : BackgroundService
{
    private static readonly Counter Outcomes = Metrics.CreateCounter("caas_media_thumbnails_total", "Thumbnail work done, by kind and outcome.", "kind", "outcome");
    private static readonly Histogram Seconds = Metrics.CreateHistogram("caas_media_thumbnail_seconds", "Time to make and record one thumbnail.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.01, 2, 14) });

    private readonly Channel<(string TenantId, string FileId)> _queue = Channel.CreateBounded<(string, string)>(
        new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly ConcurrentDictionary<(string, string), byte> _queued = new();
    private readonly FfmpegTools _ffmpeg = new();

    private ThumbnailLimits Limits => settings.Thumbnails;

    /// <summary>Queues a file (no-op when it is queued already; a full queue drops it and the next scan finds it).</summary>
    public void Enqueue(string tenantId, string fileId)
    {
        if (!_queued.TryAdd((tenantId, fileId), 0)) return;
        if (!_queue.Writer.TryWrite((tenantId, fileId))) _queued.TryRemove((tenantId, fileId), out _);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_ffmpeg.Available) log.LogInformation("No ffmpeg/ffprobe on PATH: videos get no poster, audio no duration.");
        var workers = Enumerable.Range(0, Math.Max(1, Limits.Concurrency)).Select(_ => Task.Run(() => WorkAsync(stoppingToken), stoppingToken));
        return Task.WhenAll(workers.Append(ScanAsync(stoppingToken)));
    }

    private async Task ScanAsync(CancellationToken stop)
    {
        try
        {
            // Let the node join and the projection catch up first.
            await Task.Delay(TimeSpan.FromSeconds(Math.Min(5, Limits.ScanEvery.TotalSeconds)), stop);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    // Only files older than ScanMinAge: newer ones are still in the queue of the node that took them.
                    foreach (var (tenant, file) in await readModel.PendingThumbnailsAsync(DateTimeOffset.UtcNow - Limits.ScanMinAge, 1000, stop))
                        Enqueue(tenant, file);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    log.LogWarning(e, "The thumbnail scan failed; it runs again in {Every}.", Limits.ScanEvery);
                }
                await Task.Delay(Limits.ScanEvery, stop);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private async Task WorkAsync(CancellationToken stop)
    {
        try
        {
            await foreach (var item in _queue.Reader.ReadAllAsync(stop))
            {
                try
                {
                    await ProcessAsync(item.TenantId, item.FileId, stop);
                }
                catch (Exception e) when (e is not OperationCanceledException || !stop.IsCancellationRequested)
                {
                    // A store or cluster outage: no outcome is recorded, so the next scan tries again.
                    Outcomes.WithLabels("any", "error").Inc();
                    log.LogWarning(e, "Thumbnail of {Tenant}/{File} failed; the next scan retries it.", item.TenantId, item.FileId);
                }
                finally
                {
                    _queued.TryRemove(item, out _);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>Makes, stores and records one file's thumbnail outcome.</summary>
    public async Task ProcessAsync(string tenantId, string fileId, CancellationToken stop)
    {
        if (await media.AskAsync(new GetMedia(tenantId, fileId), stop) is not MediaFile file || file.Processed) return;
        if (file.Kind is not ("image" or "video" or "audio")) return;
        var watch = Stopwatch.StartNew();
        ThumbnailOutcome outcome;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop))
        {
            timeout.CancelAfter(Limits.Timeout);
            try
            {
                outcome = file.Kind == "image" ? await ImageAsync(file, timeout.Token) : await TimedMediaAsync(file, timeout.Token);
            }
            catch (OperationCanceledException) when (!stop.IsCancellationRequested)
            {
                outcome = ThumbnailOutcome.Skip("timeout");
            }
        }

        var thumbnail = outcome.Jpeg is { } jpeg
            ? new MediaThumbnail(ImageThumbnails.ContentType, outcome.ThumbWidth, outcome.ThumbHeight, jpeg.Length)
            : null;
        if (outcome.Jpeg is { } bytes)
            await store.PutAsync(tenantId, ThumbnailKeys.Of(fileId), new MemoryStream(bytes, writable: false), stop);
        var reply = await media.AskAsync(new RecordThumbnail(tenantId, fileId, thumbnail, outcome.Width, outcome.Height, outcome.DurationMs,
            outcome.Skipped), stop);
        if (reply is Rejection r)
        {
            // Deleted meanwhile: the purge may have run before the thumbnail was written, so it goes now.
            if (thumbnail is not null && r.Code == ErrorCodes.NotFound)
                await store.DeleteAsync(tenantId, ThumbnailKeys.Of(fileId), CancellationToken.None);
            if (r.Code != ErrorCodes.NotFound) throw new InvalidOperationException($"Recording the thumbnail: {r.Code} {r.Message}");
            return;
        }
        Outcomes.WithLabels(file.Kind, outcome.Skipped ?? "thumbnail").Inc();
        Seconds.Observe(watch.Elapsed.TotalSeconds);
    }

    private async Task<ThumbnailOutcome> ImageAsync(MediaFile file, CancellationToken ct)
    {
        if (file.Size > Limits.MaxImageBytes) return ThumbnailOutcome.Skip("too_large");
        var bytes = new byte[file.Size];
        await using (var original = await store.OpenReadAsync(file.TenantId, file.FileId, 0, null, ct))
        {
            if (original is null) return ThumbnailOutcome.Skip("not_applicable");
            await original.ReadExactlyAsync(bytes, ct);
        }
        // Decoding is bounded by the pixel limit, checked on the header before any pixel is decoded.
        return ImageThumbnails.Make(bytes, Limits);
    }

    /// <summary>Video (poster and duration) and audio (duration): the file is copied to a temporary file for ffmpeg.</summary>
    private async Task<ThumbnailOutcome> TimedMediaAsync(MediaFile file, CancellationToken ct)
    {
        var isVideo = file.Kind == "video";
        if (!_ffmpeg.Available) return ThumbnailOutcome.Skip(isVideo ? "no_ffmpeg" : "not_applicable");
        if (file.Size > Limits.MaxVideoBytes) return ThumbnailOutcome.Skip("too_large");
        var dir = Path.Combine(Path.GetTempPath(), "caas-thumbnails");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, Guid.NewGuid().ToString("N"));
        try
        {
            await using (var original = await store.OpenReadAsync(file.TenantId, file.FileId, 0, null, ct))
            {
                if (original is null) return ThumbnailOutcome.Skip("not_applicable");
                await using var copy = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 128 * 1024, useAsync: true);
                await original.CopyToAsync(copy, 128 * 1024, ct);
            }
            var (width, height, duration) = await _ffmpeg.ProbeAsync(path, ct);
            if (!isVideo) return ThumbnailOutcome.Skip("not_applicable", null, null, duration);
            var poster = await _ffmpeg.PosterAsync(path, ct);
            if (poster is null) return ThumbnailOutcome.Skip("undecodable", width, height, duration);
            var made = ImageThumbnails.Make(poster, Limits);
            return made with { Width = width ?? made.Width, Height = height ?? made.Height, DurationMs = duration };
        }
        finally
        {
            try { File.Delete(path); } catch (IOException) { }
        }
    }
}

/// <summary>GET /v1/media/files/{id}/thumbnail: the stored thumbnail, or 404 <c>not_found</c> while there is none.</summary>
public static class ThumbnailEndpoint
{
    public static async Task<IResult> ServeAsync(HttpContext http, IMediaStore store, MediaFile file)
    {
        if (file.Thumbnail is not { } thumb) return Problems.NotFound("thumbnail");
        // The thumbnail never changes once made: its tag derives from the original's SHA-256.
        var etag = new EntityTagHeaderValue("\"" + file.Sha256[..32] + "-t\"");
        http.Response.Headers.XContentTypeOptions = "nosniff";
        http.Response.Headers.CacheControl = "private, max-age=0, must-revalidate";
        http.Response.Headers.ETag = etag.ToString();
        if (http.Request.GetTypedHeaders().IfNoneMatch is { Count: > 0 } inm
            && inm.Any(t => t.Equals(EntityTagHeaderValue.Any) || t.Compare(etag, useStrongComparison: false)))
            return Results.StatusCode(StatusCodes.Status304NotModified);
        var body = await store.OpenReadAsync(file.TenantId, ThumbnailKeys.Of(file.FileId), 0, null, http.RequestAborted);
        if (body is null) return Problems.NotFound("thumbnail");
        return Results.Stream(body, thumb.ContentType);
    }
}
