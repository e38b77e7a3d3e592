using Caas.Actors.Common;
using Caas.Actors.Sessions;
using Caas.Actors.Tenants;
using Caas.Streams.Privacy;
using Caas.Web.Auth;
using Caas.Web.Edge;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Caas.Web.Api;

public static class UsersApi
{
    public static RouteGroupBuilder MapUsers(this RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/users").WithTags("Users");

        g.MapGet("/me", (Caller caller, ClusterGateway gw) =>
            gw.SendAsync<ProfileView>(new GetProfile(caller.TenantId, caller.UserId), Profile));

        g.MapPut("/me", async (HttpRequest req, Caller caller, ClusterGateway gw) =>
        {
            var (body, error) = await Body.ReadAsync<ProfileBody>(req);
            if (error is not null) return error;
            return await gw.SendAsync<ProfileView>(new UpdateProfile(caller.TenantId, caller.UserId, body!.DisplayName, body.TimeZone, body.Locale), Profile);
        });

        g.MapGet("/{userId}/presence", (string userId, Caller caller, ClusterGateway gw) =>
            !Ids.IsValid(userId) ? Task.FromResult(Problems.NotFound("user"))
                : gw.SendAsync<PresenceView>(new GetPresence(caller.TenantId, userId), p => Results.Ok(new
                {
                    user_id = p.UserId,
                    status = p.Status,
                    last_seen = p.LastSeen is { } t ? Views.Utc(t) : null,
                })));
        return g;
    }

    private static IResult Profile(ProfileView p) => Results.Ok(new
    {
        user_id = p.UserId,
        display_name = p.Profile.DisplayName,
        time_zone = p.Profile.TimeZone,
        locale = p.Profile.Locale,
    });

    public static RouteGroupBuilder MapAdmin(this RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/admin").WithTags("Admin");

        // Read from the entity, not the node's settings cache: an admin reads their own change even through another node.
        g.MapGet("/tenant/settings", async (Caller caller, ClusterGateway gw) =>
            !caller.IsAdmin ? Problems.From(Rejection.Forbidden("The admin role is required."))
                : ClusterGateway.Map<TenantSettingsState>(await gw.AskAsync(new GetTenantSettings(caller.TenantId)), Settings));

        g.MapPut("/tenant/settings", async (HttpRequest req, Caller caller, ClusterGateway gw) =>
        {
            if (!caller.IsAdmin) return Problems.From(Rejection.Forbidden("The admin role is required."));
            var (body, error) = await Body.ReadAsync<TenantSettingsBody>(req);
            if (error is not null) return error;
            var reply = await gw.AskAsync(new UpdateTenantSettings(caller.TenantId, caller.UserId, body!.MessageRatePerMinute,
                body.IdempotencyHorizonSeconds, body.DefaultPhoneRegion, body.MaxMessageChars, body.RejectedAttemptsPerMinute, body.MessageCapPerHour,
                body.DefaultLanguage));
            gw.ForgetTenantSettings(caller.TenantId);
            return ClusterGateway.Map<TenantSettingsState>(reply, Settings);
        });

        // GDPR erasure: the user's data keys are destroyed, so their message content reads as erased everywhere,
        // while the journal, its sequence numbers and its hash chain stay as they are. Repeatable; each call is audited.
        g.MapDelete("/users/{userId}", async (string userId, Caller caller, UserErasure erasure, HttpContext http, CancellationToken ct) =>
        {
            if (!caller.IsAdmin) return Problems.From(Rejection.Forbidden("The admin role is required."));
            if (!Ids.IsValid(userId)) return Problems.Invalid("user_id", "Not a valid user id.");
            var report = await erasure.EraseAsync(caller.TenantId, userId, caller.UserId, ct);
            // The user's files are purged from the media store (README: Media, erasure).
            var files = http.RequestServices.GetService(typeof(Caas.Web.Media.MediaUploads)) is Caas.Web.Media.MediaUploads media
                ? await media.EraseFilesOfAsync(caller.TenantId, userId, caller.UserId, ct)
                : 0;
            // Every recording the user appears in is deleted as the admin recordings API deletes one (bytes purged, metadata kept).
            var recordings = http.RequestServices.GetService(typeof(Caas.Streams.Calls.RecordingReadModel)) is not null
                ? await RecordingsAdminApi.EraseRecordingsOfAsync(http.RequestServices, caller.TenantId, userId, caller.UserId, ct)
                : 0;
            return Results.Ok(new
            {
                user_id = report.UserId,
                erased_at = Views.Utc(report.ErasedAt),
                keys_destroyed = report.KeysDestroyed,
                messages_erased = report.MessagesErased,
                dead_letters_erased = report.DeadLettersErased,
                files_erased = files,
                read_model_settled = report.ReadModelSettled,
                search_entries_erased = report.SearchEntriesErased,
                recordings_deleted = recordings,
                recent_searches_erased = report.RecentSearchesErased,
            });
        });
        return g;
    }

    private static IResult Settings(TenantSettingsState s) => Results.Ok(new
    {
        message_rate_per_minute = s.MessageRatePerMinute,
        idempotency_horizon_seconds = s.IdempotencyHorizonSeconds,
        default_phone_region = s.DefaultPhoneRegion,
        max_message_chars = s.MaxMessageChars,
        rejected_attempts_per_minute = s.RejectedAttemptsPerMinute,
        message_cap_per_hour = s.MessageCapPerHour,
        default_language = s.DefaultLanguage,
    });
}
