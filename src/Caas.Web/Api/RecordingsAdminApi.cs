using System.Globalization;
using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Calls;
using Caas.Actors.Common;
using Caas.Actors.Media;
using Caas.Streams.Audit;
using Caas.Streams.Calls;
using Caas.Web.Auth;
using Caas.Web.Edge;
using Caas.Web.Errors;
using Caas.Web.Media;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Caas.Web.Api;

/// <summary>
/// A tenant admin's recordings (issue #16): the list (newest first, keyset cursor), one recording with a signed link
/// to its file, the figures of a period, and deletion (the call entity marks it deleted, stopping it if it still runs;
/// its file is deleted and purged through the media entity, so quotas and media.events follow). Reads come from
/// <see cref="RecordingReadModel"/>; one recording is also asked of its call entity, so a deletion reads back at once.
/// Deletions are audited by the admin-action filter (<see cref="AuditApi"/>) and logged.
/// </summary>
public static class RecordingsAdminApi
{
    public const int MaxLimit = 200;

    public static RouteGroupBuilder MapRecordingsAdmin(this RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/admin/recordings").WithTags("Admin");

        g.MapGet("", async (HttpContext http, Caller caller, RecordingReadModel model) =>
        {
            if (!caller.IsAdmin) return Forbidden();
            var q = http.Request.Query;
            var n = 50;
            if (q["limit"].ToString() is { Length: > 0 } limit && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out n) || n is < 1 or > MaxLimit))
                return Problems.Invalid("limit", $"Between 1 and {MaxLimit}.");
            (long, string)? before = null;
            if (q["cursor"].ToString() is { Length: > 0 } cursor)
            {
                if (!Cursor.TryDecode(cursor, "rec", out var raw) || raw.Split(':', 2) is not [var ms, var last]
                    || !long.TryParse(ms, NumberStyles.None, CultureInfo.InvariantCulture, out var at) || !RecordingIds.IsValid(last))
                    return Problems.Invalid("cursor", "Not a cursor this API issued.");
                before = (at, last);
            }
            var conversation = q["conversation_id"].ToString() is { Length: > 0 } c ? c : null;
            if (conversation is not null && !Ids.IsValid(conversation)) return Problems.Invalid("conversation_id", "Not a valid conversation id.");
            var (from, to, problem) = Range(q["from"], q["to"]);
            if (problem is not null) return problem;
            var rows = await model.ListAsync(caller.TenantId, conversation, from, to, n, before, http.RequestAborted);
            return Results.Json(new
            {
                items = rows.Select(r => View(r)),
                next_cursor = rows.Count == n
                    ? Cursor.Encode("rec", rows[^1].RequestedAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture) + ":" + rows[^1].RecordingId)
                    : null,
            }, Json.Options);
        });

        g.MapGet("/stats/summary", async (HttpContext http, Caller caller, RecordingReadModel model) =>
        {
            if (!caller.IsAdmin) return Forbidden();
            var (from, to, problem) = Range(http.Request.Query["from"], http.Request.Query["to"]);
            if (problem is not null) return problem;
            var s = await model.StatsAsync(caller.TenantId, from, to, http.RequestAborted);
            return Results.Json(new
            {
                count = s.Count,
                recorded = s.Recorded,
                declined = s.Declined,
                deleted = s.Deleted,
                total_duration_seconds = Math.Round(s.TotalDurationSeconds, 3),
                average_duration_seconds = s.AverageDurationSeconds is { } avg ? Math.Round(avg, 3) : (double?)null,
                bytes = s.Bytes,
                consent_decline_rate = s.DeclineRate is { } rate ? Math.Round(rate, 4) : (double?)null,
                average_quality = s.AverageQuality is { } aq
                    ? new { rtt_ms = aq.RttMs, jitter_ms = aq.JitterMs, packet_loss_pct = aq.PacketLossPct, bitrate_kbps = aq.BitrateKbps }
                    : null,
            }, Json.Options);
        });

        g.MapGet("/{id}", async (string id, HttpContext http, Caller caller, RecordingReadModel model) =>
        {
            if (!caller.IsAdmin) return Forbidden();
            if (!RecordingIds.IsValid(id) || await model.GetAsync(caller.TenantId, id, http.RequestAborted) is not { } row) return Problems.NotFound("recording");
            var entity = await AskAsync(http.RequestServices, new GetRecording(caller.TenantId, row.ConversationId, caller.UserId, id), http.RequestAborted);
            var current = entity is RecordingInfo info ? Merge(row, info) : row;
            var view = View(current);
            view["download"] = Download(http.RequestServices, current);
            return Results.Json(view, Json.Options);
        });

        g.MapDelete("/{id}", async (string id, HttpContext http, Caller caller) =>
        {
            if (!caller.IsAdmin) return Forbidden();
            if (!RecordingIds.IsValid(id)) return Problems.NotFound("recording");
            var (row, problem) = await DeleteAsync(http.RequestServices, caller.TenantId, id, caller.UserId, "admin", http.RequestAborted);
            if (problem is not null) return Problems.From(problem);
            var view = View(row!);
            view["download"] = null;
            return Results.Json(view, Json.Options);
        });
        return g;
    }

    /// <summary>
    /// Deletes every recording <paramref name="userId"/> appears in (asked for, consented to or was asked about), as
    /// the admin DELETE does (reason <c>erasure</c>); returns how many were deleted now (a repeat finds none).
    /// </summary>
    public static async Task<int> EraseRecordingsOfAsync(IServiceProvider services, string tenantId, string userId, string actorId, CancellationToken ct)
    {
        var deleted = 0;
        foreach (var row in await services.GetRequiredService<RecordingReadModel>().OfUserAsync(tenantId, userId, ct))
        {
            // The read model may not show a deletion the entity already has: only those still there are counted.
            if (await AskAsync(services, new GetRecording(tenantId, row.ConversationId, actorId, row.RecordingId), ct) is RecordingInfo { Status: "deleted" })
                continue;
            var (_, problem) = await DeleteAsync(services, tenantId, row.RecordingId, actorId, "erasure", ct);
            if (problem is { Code: ErrorCodes.NotFound }) continue;
            if (problem is not null) throw new InvalidOperationException($"Erasing recording {row.RecordingId}: {problem.Code} {problem.Message}");
            deleted++;
        }
        return deleted;
    }

    /// <summary>
    /// The one deletion path: the call entity records it (stopping a running recording first; a repeat answers the
    /// deleted recording), then the file is deleted in its media entity and its bytes purged (both idempotent).
    /// </summary>
    public static async Task<(RecordingRow? Row, Rejection? Problem)> DeleteAsync(IServiceProvider services, string tenantId, string recordingId, string actorId,
        string reason, CancellationToken ct)
    {
        if (await services.GetRequiredService<RecordingReadModel>().GetAsync(tenantId, recordingId, ct) is not { } row) return (null, Rejection.NotFound("recording"));
        var reply = await AskAsync(services, new DeleteRecording(tenantId, row.ConversationId, actorId, recordingId, reason), ct);
        if (reply is Rejection r) return (null, r);
        if (reply is not RecordingInfo info) return (null, new Rejection(ErrorCodes.Overloaded, "No answer from the call entity; retry.", RetryAfterSeconds: 1));
        var current = Merge(row, info) with { DeleteReason = row.DeleteReason ?? reason };
        if (info.File is { } file && await PurgeAsync(services, tenantId, file.FileId, actorId, ct) is { } failed) return (null, failed);
        services.GetRequiredService<ILoggerFactory>().CreateLogger("Caas.Web.Api.Recordings")
            .LogInformation("Recording {RecordingId} of tenant {TenantId} deleted by {ActorId} ({Reason}); file {FileId} purged", recordingId, tenantId, actorId,
                reason, info.File?.FileId);
        return (current, null);
    }

    /// <summary>Deletes the file in its media entity (unless it is already) and purges its bytes, as the media API's delete and retention sweep do.</summary>
    private static async Task<Rejection?> PurgeAsync(IServiceProvider services, string tenantId, string fileId, string actorId, CancellationToken ct)
    {
        if (services.GetService<MediaGateway>() is not { } media || services.GetService<MediaUploads>() is not { } uploads) return null;
        var got = await media.AskAsync(new GetMedia(tenantId, fileId, IncludeDeleted: true), ct);
        if (got is Rejection { Code: ErrorCodes.NotFound }) return null;
        if (got is not MediaFile file) return got as Rejection ?? Rejection.NotFound("file");
        if (file.DeletedAt is null && await media.AskAsync(new DeleteMedia(tenantId, fileId, actorId, ActorModerates: true), ct) is Rejection { Code: not ErrorCodes.NotFound } refused)
            return refused;
        // The purge is recorded in the file's entity first, so a crash in between is finished by a repeat (or the retention sweep).
        if (await media.AskAsync(new RecordPurge(tenantId, fileId), ct) is Rejection { Code: ErrorCodes.Overloaded } busy) return busy;
        await uploads.PurgeAsync(tenantId, fileId, file.OwnerId, file.Size, CancellationToken.None);
        return null;
    }

    private static async Task<object> AskAsync(IServiceProvider services, ICallCommand command, CancellationToken ct)
    {
        var timeout = services.GetService<EdgeSettings>()?.AskTimeout ?? TimeSpan.FromSeconds(5);
        try
        {
            return await services.GetRequiredService<IRequiredActor<CallRoomRegion>>().ActorRef.Ask<object>(command, timeout, ct);
        }
        catch (AskTimeoutException)
        {
            return new Rejection(ErrorCodes.Overloaded, "The cluster did not answer in time; retry.", RetryAfterSeconds: 1);
        }
    }

    /// <summary>The read model's row brought up to the call entity's own view of the recording (the read model may lag it).</summary>
    private static RecordingRow Merge(RecordingRow row, RecordingInfo info) => row with
    {
        Status = info.Status,
        Consents = info.Consents,
        Participants = [.. row.Participants.Union(info.Consents.Select(c => c.UserId), StringComparer.Ordinal).Order(StringComparer.Ordinal)],
        StartedAt = info.StartedAt,
        EndedAt = info.EndedAt,
        DurationSeconds = info.DurationSeconds,
        EndReason = info.EndReason,
        File = info.File ?? row.File,
        DeletedAt = info.DeletedAt,
        DeletedBy = info.DeletedBy,
        DeleteReason = info.DeleteReason ?? row.DeleteReason,
    };

    /// <summary>A signed download link of the recording's file; null when it has none or is deleted.</summary>
    private static object? Download(IServiceProvider services, RecordingRow r)
    {
        if (r.File is not { } file || r.Status == RecordingReadModel.Deleted || services.GetService<SignedLinks>() is not { } links
            || services.GetService<MediaUploads>() is not { } uploads)
            return null;
        var (url, expires) = links.Create(r.TenantId, file.FileId, uploads.Settings.DefaultLinkTtl, DateTimeOffset.UtcNow);
        return new { url, expires_at = Views.Utc(expires) };
    }

    private static Dictionary<string, object?> View(RecordingRow r) => new()
    {
        ["id"] = r.RecordingId,
        ["call_id"] = r.CallId,
        ["conversation_id"] = r.ConversationId,
        ["requested_by"] = r.RequestedBy,
        ["requested_at"] = Views.Utc(r.RequestedAt),
        ["status"] = r.Status,
        ["consents"] = r.Consents.Select(c => new { user_id = c.UserId, consent = c.Consent, at = Views.Utc(c.At), how = c.How }).ToList(),
        ["participants"] = r.Participants,
        ["started_at"] = r.StartedAt is { } s ? Views.Utc(s) : null,
        ["ended_at"] = r.EndedAt is { } e ? Views.Utc(e) : null,
        ["duration_seconds"] = Math.Round(r.DurationSeconds, 3),
        ["end_reason"] = r.EndReason,
        ["format"] = r.File?.ContentType,
        ["storage"] = r.File?.Storage,
        ["file_id"] = r.File?.FileId,
        ["size"] = r.File?.Size,
        ["sha256"] = r.File?.Sha256,
        ["quality"] = r.Quality is null ? null : CallQuality.View(r.Quality),
        ["deleted_at"] = r.DeletedAt is { } d ? Views.Utc(d) : null,
        ["deleted_by"] = r.DeletedBy,
        ["delete_reason"] = r.DeleteReason,
    };

    /// <summary>RFC 3339 <c>from</c> (inclusive) and <c>to</c> (exclusive) on the request time; a bad one is 400 naming it.</summary>
    private static (DateTimeOffset? From, DateTimeOffset? To, IResult? Problem) Range(string? from, string? to)
    {
        if (!TimeRange.TryParseInstant(from, out var f)) return (null, null, Problems.Invalid("from", "An RFC 3339 date-time."));
        if (!TimeRange.TryParseInstant(to, out var t)) return (null, null, Problems.Invalid("to", "An RFC 3339 date-time."));
        if (f is not null && t is not null && t < f) return (null, null, Problems.Invalid("to", "Not before from."));
        return (f, t, null);
    }

    private static IResult Forbidden() => Problems.From(Rejection.Forbidden("The admin role is required."));
}
