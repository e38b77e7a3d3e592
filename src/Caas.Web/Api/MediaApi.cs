using System.Globalization;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Media;
using Caas.Streams.Media;
using Caas.Streams.ReadModel;
using Caas.Web.Auth;
using Caas.Web.Errors;
using Caas.Web.Media;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Net.Http.Headers;
using Prometheus;
using StackExchange.Redis;

namespace Caas.Web.Api;

/// <summary>
/// Media: single and resumable uploads, downloads (conditional), ranged streams, signed links, metadata, soft delete,
/// and a conversation's gallery. Every route is scoped by the caller's tenant; a file is readable by its owner and the
/// members of its conversation, and anyone else (another tenant included) gets 404.
/// </summary>
public static class MediaApi
{
    private static readonly Counter Downloads = Metrics.CreateCounter("caas_media_downloads_total", "Media reads served, by route and status.", "route", "status");

    public static RouteGroupBuilder MapMedia(this RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/media").WithTags("Media").AddEndpointFilter(StoreOutages);
        v1.MapTenantMediaSettings(); // README: Media, tenant settings

        g.MapPost("/upload", (HttpContext http, Caller caller, MediaUploads uploads) => uploads.SingleAsync(http, caller)).DisableAntiforgery();

        g.MapPost("/upload/chunk", async (HttpRequest req, Caller caller, MediaUploads uploads) =>
        {
            var (body, error) = await Body.ReadAsync<MediaUploads.StartBody>(req);
            return error ?? await uploads.StartAsync(caller, body!, req.HttpContext.RequestAborted);
        });

        g.MapPost("/upload/chunk/{uploadId}", (string uploadId, HttpContext http, Caller caller, MediaUploads uploads) =>
            uploads.ChunkAsync(http, caller, uploadId, int.TryParse(http.Request.Query["index"], NumberStyles.None, CultureInfo.InvariantCulture, out var i) ? i : null));

        g.MapPost("/upload/complete/{uploadId}", (string uploadId, HttpContext http, Caller caller, MediaUploads uploads) =>
            uploads.CompleteAsync(caller, uploadId, http.RequestAborted));

        g.MapGet("/upload/{uploadId}/progress", (string uploadId, HttpContext http, Caller caller, MediaUploads uploads) =>
            uploads.ProgressAsync(caller, uploadId, http.RequestAborted));

        g.MapGet("/download/{id}", async (string id, HttpContext http, Caller caller, MediaUploads uploads) =>
        {
            var (file, _, problem) = await uploads.ReadableAsync(caller, id, http.RequestAborted);
            if (problem is not null) return problem;
            await ServeAsync(http, uploads.Store, file!, ranges: false, "download");
            return Results.Empty;
        });

        g.MapGet("/stream/{id}", async (string id, HttpContext http, Caller caller, MediaUploads uploads) =>
        {
            var (file, _, problem) = await uploads.ReadableAsync(caller, id, http.RequestAborted);
            if (problem is not null) return problem;
            await ServeAsync(http, uploads.Store, file!, ranges: true, "stream");
            return Results.Empty;
        });

        g.MapGet("/download/{id}/signed", async (string id, HttpContext http, Caller caller, MediaUploads uploads, SignedLinks links, string? ttl) =>
        {
            var seconds = uploads.Settings.DefaultLinkTtl.TotalSeconds;
            if (ttl is not null && (!double.TryParse(ttl, NumberStyles.None, CultureInfo.InvariantCulture, out seconds) || seconds < 1
                                    || seconds > uploads.Settings.MaxLinkTtl.TotalSeconds))
                return Problems.Invalid("ttl", $"Seconds, from 1 to {uploads.Settings.MaxLinkTtl.TotalSeconds}.");
            var (file, _, problem) = await uploads.ReadableAsync(caller, id, http.RequestAborted);
            if (problem is not null) return problem;
            var (url, expires) = links.Create(caller.TenantId, file!.FileId, TimeSpan.FromSeconds(seconds), DateTimeOffset.UtcNow);
            return Results.Json(new { url, expires_at = Views.Utc(expires) }, Json.Options);
        });

        g.MapGet("/files/{id}", async (string id, HttpContext http, Caller caller, MediaUploads uploads) =>
        {
            var (file, _, problem) = await uploads.ReadableAsync(caller, id, http.RequestAborted);
            return problem ?? Results.Json(MediaUploads.View(file!), Json.Options);
        });

        g.MapGet("/files/{id}/thumbnail", async (string id, HttpContext http, Caller caller, MediaUploads uploads) =>
        {
            var (file, _, problem) = await uploads.ReadableAsync(caller, id, http.RequestAborted);
            if (problem is not null) return problem;
            return await ThumbnailEndpoint.ServeAsync(http, uploads.Store, file!);
        });

        g.MapDelete("/files/{id}", async (string id, HttpContext http, Caller caller, MediaUploads uploads, MediaGateway media) =>
        {
            var (file, role, problem) = await uploads.ReadableAsync(caller, id, http.RequestAborted);
            if (problem is not null) return problem;
            var reply = await media.AskAsync(new DeleteMedia(caller.TenantId, file!.FileId, caller.UserId, role >= Caas.Actors.Common.Role.Moderator), http.RequestAborted);
            if (reply is Rejection r) return Problems.From(r);
            // Downloads answer 404 from the event on; the bytes go now, or after the tenant's retention (README: Media).
            await uploads.AfterDeleteAsync(file, CancellationToken.None);
            return Results.NoContent();
        });

        v1.MapGet("/conversations/{id}/media", async (string id, HttpContext http, Caller caller, MediaUploads uploads, MediaReadModel model,
            string? type, int? limit, string? cursor) =>
        {
            if (type is not null and not ("image" or "video" or "audio" or "file")) return Problems.Invalid("type", "One of image, video, audio, file.");
            var n = limit ?? 50;
            if (n is < 1 or > 200) return Problems.Invalid("limit", "Between 1 and 200.");
            (long, string)? before = null;
            if (cursor is not null)
            {
                if (!Cursor.TryDecode(cursor, "g", out var raw) || raw.Split(':', 2) is not [var ms, var last]
                    || !long.TryParse(ms, NumberStyles.None, CultureInfo.InvariantCulture, out var at) || !Ids.IsValid(last))
                    return Problems.Invalid("cursor", "Not a cursor this API issued.");
                before = (at, last);
            }
            if (await uploads.AccessAsync(caller, id, http.RequestAborted) is Rejection denied) return Problems.From(denied);
            var rows = await model.GalleryAsync(caller.TenantId, id, type, n, before, http.RequestAborted);
            return Results.Json(new
            {
                items = rows.Select(f => new
                {
                    id = f.FileId, conversation_id = f.ConversationId, owner_id = f.OwnerId, file_name = f.FileName, content_type = f.ContentType,
                    kind = f.Kind, size = f.Size, sha256 = f.Sha256, width = f.Width, height = f.Height, duration_ms = f.DurationMs,
                    state = MediaFile.Ready, created_at = Views.Utc(f.CreatedAt),
                    thumbnail_url = f.HasThumbnail ? MediaUploads.ThumbnailUrl(f.FileId) : null,
                }),
                next_cursor = rows.Count == n
                    ? Cursor.Encode("g", rows[^1].CreatedAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture) + ":" + rows[^1].FileId)
                    : null,
            }, Json.Options);
        }).WithTags("Media").AddEndpointFilter(StoreOutages);
        return g;
    }

    /// <summary>Signed links: served without a token; an altered or expired link is 403, a deleted file 404.</summary>
    public static IEndpointRouteBuilder MapMediaLinks(this IEndpointRouteBuilder app)
    {
        app.MapGet("/media/signed/{tenantId}/{id}", async (string tenantId, string id, HttpContext http, SignedLinks links, MediaGateway media,
            MediaUploads uploads, string? expires, string? sig) =>
        {
            if (!Ids.IsValid(tenantId) || !Ids.IsValid(id) || !links.Verify(tenantId, id, expires, sig, DateTimeOffset.UtcNow))
                return Problems.From(Rejection.Forbidden("The link is altered or expired."));
            var reply = await media.AskAsync(new GetMedia(tenantId, id), http.RequestAborted);
            if (reply is Rejection r) return Problems.From(r);
            await ServeAsync(http, uploads.Store, (MediaFile)reply, ranges: true, "signed");
            return Results.Empty;
        }).AllowAnonymous().WithTags("Media").AddEndpointFilter(StoreOutages).ExcludeFromDescription();
        return app;
    }

    /// <summary>A store, Redis or database outage: 503 <c>unavailable</c> with Retry-After; nothing half-committed.</summary>
    private static async ValueTask<object?> StoreOutages(EndpointFilterInvocationContext ctx, EndpointFilterDelegate next)
    {
        try
        {
            return await next(ctx);
        }
        catch (Exception e) when (e is MediaStoreUnavailableException or RedisException or RedisTimeoutException || StoreBreaker.IsOutage(e))
        {
            MediaUploads.CountStoreError();
            if (ctx.HttpContext.Response.HasStarted) throw;
            return Problems.Of(ErrorCodes.Unavailable, "A media store (S3, Redis or the database) is unavailable; nothing was changed. Retry shortly.",
                retryAfter: 2);
        }
    }

    /// <summary>
    /// Writes the file: validators (ETag = its SHA-256, Last-Modified), 304 on a matching conditional GET, and with
    /// <paramref name="ranges"/> one byte range (206; 416 beyond the end; a malformed or multi-range header is ignored:
    /// 200 with the whole file). Types a browser could run go out as sandboxed attachments.
    /// </summary>
    private static async Task ServeAsync(HttpContext http, IMediaStore store, MediaFile file, bool ranges, string route)
    {
        var response = http.Response;
        var etag = new EntityTagHeaderValue("\"" + file.Sha256 + "\"");
        var lastModified = DateTimeOffset.FromUnixTimeSeconds(file.CreatedAt.ToUnixTimeSeconds());
        var headers = response.GetTypedHeaders();
        headers.ETag = etag;
        headers.LastModified = lastModified;
        response.Headers.CacheControl = "private, max-age=0, must-revalidate";
        var active = ContentSniffer.IsActive(file.ContentType);
        var disposition = new ContentDispositionHeaderValue(active || !Inline(file.ContentType) ? "attachment" : "inline");
        disposition.SetHttpFileName(file.FileName);
        response.Headers.ContentDisposition = disposition.ToString();
        response.Headers.XContentTypeOptions = "nosniff";
        if (active) response.Headers.ContentSecurityPolicy = "sandbox; default-src 'none'";
        if (ranges) response.Headers.AcceptRanges = "bytes";

        var request = http.Request.GetTypedHeaders();
        if (request.IfNoneMatch is { Count: > 0 } inm
                ? inm.Any(t => t.Equals(EntityTagHeaderValue.Any) || t.Compare(etag, useStrongComparison: false))
                : request.IfModifiedSince is { } since && lastModified <= since)
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            Downloads.WithLabels(route, "304").Inc();
            return;
        }

        long offset = 0, length = file.Size;
        if (ranges && RangeOf(http.Request.Headers.Range.ToString(), file.Size) is { } range)
        {
            if (range.Start < 0)
            {
                response.StatusCode = StatusCodes.Status416RangeNotSatisfiable;
                response.Headers.ContentRange = $"bytes */{file.Size}";
                Downloads.WithLabels(route, "416").Inc();
                return;
            }
            (offset, length) = (range.Start, range.Length);
            response.StatusCode = StatusCodes.Status206PartialContent;
            response.Headers.ContentRange = $"bytes {offset}-{offset + length - 1}/{file.Size}";
        }
        await using var body = await store.OpenReadAsync(file.TenantId, file.FileId, offset, length, http.RequestAborted);
        if (body is null)
        {
            response.StatusCode = StatusCodes.Status404NotFound;
            Downloads.WithLabels(route, "404").Inc();
            return;
        }
        response.ContentType = file.ContentType;
        response.ContentLength = length;
        Downloads.WithLabels(route, response.StatusCode.ToString(CultureInfo.InvariantCulture)).Inc();
        await body.CopyToAsync(response.Body, 128 * 1024, http.RequestAborted);
    }

    private static bool Inline(string contentType) =>
        MediaFile.KindOf(contentType) is "image" or "video" or "audio" || contentType is "application/pdf" or "text/plain";

    /// <summary>
    /// One range of a Range header: (start, length); start -1 when it lies beyond the end (416); null when the header is
    /// absent, malformed or asks for several ranges (then the whole file is served).
    /// </summary>
    public static (long Start, long Length)? RangeOf(string header, long size)
    {
        if (string.IsNullOrWhiteSpace(header) || !header.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase)) return null;
        var spec = header[6..].Trim();
        if (spec.Contains(',')) return null;
        var dash = spec.IndexOf('-');
        if (dash < 0) return null;
        var (a, b) = (spec[..dash].Trim(), spec[(dash + 1)..].Trim());
        static bool Num(string s, out long v) => long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v);
        if (a.Length == 0)
        {
            // A suffix: the last N bytes.
            if (!Num(b, out var suffix)) return null;
            if (suffix == 0) return (-1, 0);
            var n = Math.Min(suffix, size);
            return (size - n, n);
        }
        if (!Num(a, out var start)) return null;
        if (b.Length > 0 && (!Num(b, out var endCheck) || endCheck < start)) return null;
        if (start >= size) return (-1, 0);
        var end = b.Length == 0 ? size - 1 : Math.Min(long.Parse(b, CultureInfo.InvariantCulture), size - 1);
        return (start, end - start + 1);
    }
}
