using Caas.Actors.Common;
using Caas.Actors.Tenants;
using Caas.Streams.Media;
using Caas.Web.Api;
using Caas.Web.Auth;
using Caas.Web.Edge;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Caas.Web.Media;

/// <summary>The media limits in force for one tenant: its settings where set, the node's defaults elsewhere.</summary>
public sealed record EffectiveMediaLimits(MediaQuota TenantQuota, MediaQuota UserQuota, IReadOnlyList<string> AllowedTypes, TimeSpan Retention)
{
    public static EffectiveMediaLimits Of(MediaSettings node, TenantMediaSettings? tenant) => new(
        new MediaQuota(tenant?.TenantQuotaBytes ?? node.TenantQuota.Bytes, tenant?.TenantQuotaFiles ?? node.TenantQuota.Files),
        new MediaQuota(tenant?.UserQuotaBytes ?? node.UserQuota.Bytes, tenant?.UserQuotaFiles ?? node.UserQuota.Files),
        tenant?.AllowedTypes ?? node.AllowedTypes,
        tenant?.RetentionSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : node.Retention);
}

/// <summary>
/// <c>GET</c> / <c>PUT /v1/admin/tenants/{tenant}/media</c>: a tenant's media quotas and allowlist, kept in the tenant's
/// settings entity (event-sourced). An admin of the tenant or an operator; a PUT replaces the whole set (an omitted or
/// null field is the node's default again).
/// </summary>
public static class TenantMediaSettingsApi
{
    public sealed record MediaSettingsBody(long? TenantQuotaBytes, long? TenantQuotaFiles, long? UserQuotaBytes, long? UserQuotaFiles,
        List<string>? AllowedTypes, long? RetentionSeconds);

    public static RouteGroupBuilder MapTenantMediaSettings(this RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/admin/tenants/{tenant}/media").WithTags("Admin", "Media");

        // Read from the entity, not the node's cache: an admin reads their own change even through another node.
        g.MapGet("", async (string tenant, Caller caller, ClusterGateway gw, MediaUploads uploads) =>
            Allowed(caller, tenant) ?? ClusterGateway.Map<TenantSettingsState>(await gw.AskAsync(new GetTenantSettings(tenant)),
                s => View(tenant, s.Media, uploads.Settings)));

        g.MapPut("", async (string tenant, HttpRequest req, Caller caller, ClusterGateway gw, MediaUploads uploads) =>
        {
            if (Allowed(caller, tenant) is { } refused) return refused;
            var (body, error) = await Body.ReadAsync<MediaSettingsBody>(req);
            if (error is not null) return error;
            var media = new TenantMediaSettings(body!.TenantQuotaBytes, body.TenantQuotaFiles, body.UserQuotaBytes, body.UserQuotaFiles,
                body.AllowedTypes, body.RetentionSeconds);
            var reply = await gw.AskAsync(new UpdateTenantMediaSettings(tenant, caller.UserId, media));
            gw.ForgetTenantSettings(tenant);
            return ClusterGateway.Map<TenantSettingsState>(reply, s => View(tenant, s.Media, uploads.Settings));
        });

        // A file's metadata as an admin sees it: deleted ones too, with when they were deleted and purged.
        g.MapGet("/files/{fileId}", async (string tenant, string fileId, Caller caller, MediaGateway media, HttpContext http) =>
        {
            if (Allowed(caller, tenant) is { } refused) return refused;
            if (!Ids.IsValid(fileId)) return Problems.NotFound("file");
            var reply = await media.AskAsync(new Caas.Actors.Media.GetMedia(tenant, fileId, IncludeDeleted: true), http.RequestAborted);
            return reply is Caas.Actors.Media.MediaFile f
                ? Results.Ok(new
                {
                    file = MediaUploads.View(f),
                    deleted_at = f.DeletedAt is { } d ? Views.Utc(d) : null,
                    deleted_by = f.DeletedBy,
                    purged_at = f.PurgedAt is { } p ? Views.Utc(p) : null,
                })
                : Problems.From((Rejection)reply);
        });
        return g;
    }

    /// <summary>Null when the caller may read and change the tenant's media settings; else the problem (403).</summary>
    private static IResult? Allowed(Caller caller, string tenant)
    {
        if (caller.HasAnyRole("operator")) return Ids.IsValid(tenant) ? null : Problems.Invalid("tenant", "Not a valid tenant id.");
        if (!caller.IsAdmin) return Problems.From(Rejection.Forbidden("The admin or operator role is required."));
        return tenant == caller.TenantId ? null : Problems.From(Rejection.Forbidden("An admin manages their own tenant only."));
    }

    private static IResult View(string tenant, TenantMediaSettings? m, MediaSettings node)
    {
        var e = EffectiveMediaLimits.Of(node, m);
        return Results.Ok(new
        {
            tenant_id = tenant,
            tenant_quota_bytes = m?.TenantQuotaBytes,
            tenant_quota_files = m?.TenantQuotaFiles,
            user_quota_bytes = m?.UserQuotaBytes,
            user_quota_files = m?.UserQuotaFiles,
            allowed_types = m?.AllowedTypes,
            retention_seconds = m?.RetentionSeconds,
            effective = new
            {
                tenant_quota_bytes = e.TenantQuota.Bytes,
                tenant_quota_files = e.TenantQuota.Files,
                user_quota_bytes = e.UserQuota.Bytes,
                user_quota_files = e.UserQuota.Files,
                allowed_types = e.AllowedTypes,
                retention_seconds = (long)e.Retention.TotalSeconds,
            },
        });
    }
}
