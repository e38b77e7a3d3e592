using System.Collections.Immutable;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Sessions;
using Caas.Web.Auth;
using Caas.Web.Edge;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Caas.Web.Api;

public static class ConversationsApi
{
    public const int MaxMetadataEntries = 50;

    /// <summary>How many times a pair may delete and recreate its direct conversation: bounds the walk on create.</summary>
    public const int MaxDirectGenerations = 1_000;

    // Exact lower-case names only: Enum.TryParse also takes "unban,mute" (flags) and numbers such as "1".
    private static readonly IReadOnlyDictionary<string, ModerationAction> ModerationActions =
        Enum.GetValues<ModerationAction>().ToDictionary(a => a.ToString().ToLowerInvariant(), StringComparer.Ordinal);

    public static RouteGroupBuilder MapConversations(this RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/conversations").WithTags("Conversations");

        g.MapPost("/", async (HttpRequest req, Caller caller, ClusterGateway gw) =>
        {
            var (body, error) = await Body.ReadAsync<CreateConversationBody>(req);
            if (error is not null) return error;
            var errors = new Dictionary<string, string[]>();
            if (!ConversationTypes.IsKnown(body!.Type)) errors["type"] = ["Must be one of direct, group, channel."];
            if (body.Title is { Length: > ConversationDecider.MaxTitleLength }) errors["title"] = [$"At most {ConversationDecider.MaxTitleLength} characters."];
            if (body.Members?.Any(m => !Ids.IsValid(m)) == true) errors["members"] = ["Every member must be a valid user id."];
            if (body.Metadata is { Count: > MaxMetadataEntries }) errors["metadata"] = [$"At most {MaxMetadataEntries} entries."];
            else if (ConversationDecider.ValidateMetadata(body.Metadata) is { } badMetadata) errors["metadata"] = badMetadata.Errors!["metadata"];
            var others = (body.Members ?? []).Where(m => m != caller.UserId).Distinct().ToArray();
            if (body.Type == ConversationTypes.Direct && others.Length != 1) errors["members"] = ["A direct conversation names exactly one other user."];
            if (errors.Count > 0) return Problems.Of(ErrorCodes.ValidationFailed, "The request is not valid.", errors);

            var direct = body.Type == ConversationTypes.Direct;
            var id = direct ? Ids.DirectConversationId(caller.UserId, others[0]) : Ids.NewConversationId();
            var members = others.Select(m => new InitialMember(m, Role.Member)).ToImmutableArray();
            var reply = await gw.AskAsync(new CreateConversation(caller.TenantId, id, caller.UserId, body.Type!, body.Title, members),
                req.HttpContext.RequestAborted);
            // A deleted direct conversation stays deleted: the pair walks on to its next generation's id.
            for (var generation = 1; reply is DirectConversationDeleted && generation <= MaxDirectGenerations; generation++)
            {
                id = Ids.DirectConversationId(caller.UserId, others[0], generation);
                reply = await gw.AskAsync(new CreateConversation(caller.TenantId, id, caller.UserId, body.Type!, body.Title, members),
                    req.HttpContext.RequestAborted);
            }
            if (reply is DirectConversationDeleted)
                return Problems.From(Rejection.Conflict("This pair has deleted its direct conversation too many times."));
            var created = reply is ConversationReply { Created: true };
            if (created && body.Metadata is { Count: > 0 } metadata)
                reply = await gw.AskAsync(new UpdateConversation(caller.TenantId, id, caller.UserId, null, metadata.ToImmutableDictionary()));
            return ClusterGateway.Map<ConversationReply>(reply, r => created
                ? Results.Created($"/v1/conversations/{id}", Views.Conversation(r.View))
                : Results.Ok(Views.Conversation(r.View)));
        });

        g.MapGet("/", async (HttpContext http, Caller caller, ClusterGateway gw, int? limit, string? cursor) =>
        {
            var n = limit ?? 50;
            if (n is < 1 or > 200) return Problems.Invalid("limit", "Between 1 and 200.");
            (long, string)? after = null;
            if (cursor is not null)
            {
                // "a:<last activity ms>:<conversation id>": the position of the previous page's last row.
                if (!Cursor.TryDecode(cursor, "a", out var raw) || raw.Split(':', 2) is not [var ms, var last]
                    || !long.TryParse(ms, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var at)
                    || !Ids.IsValid(last))
                    return Problems.Invalid("cursor", "Not a cursor this API issued.");
                after = (at, last);
            }
            var markers = await gw.AskAsync(new GetReadMarkers(caller.TenantId, caller.UserId), http.RequestAborted);
            if (markers is Rejection rejected) return Problems.From(rejected);
            var lagging = await gw.ReadYourWrites.WaitForCallerAsync(caller.TenantId, caller.UserId, http.RequestAborted);
            var rows = await gw.Queries.ConversationsOfAsync(caller.TenantId, caller.UserId, n, after, ((ReadMarkers)markers).Markers, http.RequestAborted);
            if (lagging.Count > 0)
            {
                // The read model still lacks some of the caller's writes: those conversations as their entities answer.
                var views = new Dictionary<string, ConversationView?>();
                foreach (var id in lagging)
                {
                    var reply = await gw.AskAsync(new GetConversation(caller.TenantId, id, caller.UserId), http.RequestAborted);
                    if (reply is ConversationView view) views[id] = view;
                    else if (reply is Rejection { Code: ErrorCodes.NotFound }) views[id] = null; // not a member any more, or deleted
                }
                rows = ReadYourWrites.Overlay(rows, views, n, after);
            }
            return Results.Ok(new
            {
                items = rows.Select(Views.Conversation),
                next_cursor = rows.Count == n
                    ? Cursor.Encode("a", rows[^1].LastActivityAt.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture) + ":" + rows[^1].ConversationId)
                    : null,
            });
        });

        g.MapGet("/{id}", (string id, Caller caller, ClusterGateway gw, HttpContext http) =>
            !Ids.IsValid(id) ? Task.FromResult(Problems.NotFound("conversation"))
                : gw.SendAsync<ConversationView>(new GetConversation(caller.TenantId, id, caller.UserId), v => Results.Ok(Views.Conversation(v)), http.RequestAborted));

        g.MapPut("/{id}", async (string id, HttpRequest req, Caller caller, ClusterGateway gw) =>
        {
            if (!Ids.IsValid(id)) return Problems.NotFound("conversation");
            var (body, error) = await Body.ReadAsync<UpdateConversationBody>(req);
            if (error is not null) return error;
            if (body!.Metadata is { Count: > MaxMetadataEntries }) return Problems.Invalid("metadata", $"At most {MaxMetadataEntries} entries.");
            if (ConversationDecider.ValidateMetadata(body.Metadata) is { } badMetadata) return Problems.From(badMetadata);
            if (body.Title is null && body.Metadata is null) return Problems.Invalid("title", "Give a title or metadata to change.");
            return await gw.SendAsync<ConversationReply>(new UpdateConversation(caller.TenantId, id, caller.UserId, body.Title,
                body.Metadata?.ToImmutableDictionary()), r => Results.Ok(Views.Conversation(r.View)));
        });

        g.MapDelete("/{id}", (string id, Caller caller, ClusterGateway gw) =>
            !Ids.IsValid(id) ? Task.FromResult(Problems.NotFound("conversation"))
                : gw.SendAsync<Done>(new DeleteConversation(caller.TenantId, id, caller.UserId), _ => Results.NoContent()));

        g.MapPost("/{id}/members", async (string id, HttpRequest req, Caller caller, ClusterGateway gw) =>
        {
            if (!Ids.IsValid(id)) return Problems.NotFound("conversation");
            var (body, error) = await Body.ReadAsync<AddMemberBody>(req);
            if (error is not null) return error;
            if (!Ids.IsValid(body!.UserId)) return Problems.Invalid("user_id", "A valid user id is required.");
            var role = Role.Member;
            if (body.Role is not null && !RoleNames.TryParse(body.Role, out role))
                return Problems.Invalid("role", "One of owner, admin, moderator, member.");
            return await gw.SendAsync<ConversationReply>(new AddMember(caller.TenantId, id, caller.UserId, body.UserId!, role),
                r => Results.Created($"/v1/conversations/{id}/members/{body.UserId}", Views.Conversation(r.View)));
        });

        g.MapDelete("/{id}/members/{userId}", (string id, string userId, Caller caller, ClusterGateway gw) =>
            !Ids.IsValid(id) || !Ids.IsValid(userId) ? Task.FromResult(Problems.NotFound("member"))
                : gw.SendAsync<object>(new RemoveMember(caller.TenantId, id, caller.UserId, userId), _ => Results.NoContent()));

        g.MapPut("/{id}/members/{userId}/role", async (string id, string userId, HttpRequest req, Caller caller, ClusterGateway gw) =>
        {
            if (!Ids.IsValid(id) || !Ids.IsValid(userId)) return Problems.NotFound("member");
            var (body, error) = await Body.ReadAsync<RoleBody>(req);
            if (error is not null) return error;
            if (!RoleNames.TryParse(body!.Role, out var role)) return Problems.Invalid("role", "One of owner, admin, moderator, member.");
            return await gw.SendAsync<ConversationReply>(new ChangeRole(caller.TenantId, id, caller.UserId, userId, role),
                r => Results.Ok(Views.Conversation(r.View)));
        });

        g.MapPut("/{id}/read", async (string id, HttpRequest req, Caller caller, ClusterGateway gw) =>
        {
            if (!Ids.IsValid(id)) return Problems.NotFound("conversation");
            var (body, error) = await Body.ReadAsync<MarkReadBody>(req);
            if (error is not null) return error;
            if (body!.Seq is not { } seq || seq < 0) return Problems.Invalid("seq", "A sequence number of zero or more is required.");
            var access = await gw.AskAsync(new GetReadAccess(caller.TenantId, id, caller.UserId));
            if (access is Rejection r) return Problems.From(r);
            if (seq > ((ReadAccess)access).LastSeq) return Problems.Invalid("seq", "Beyond the conversation's last message.");
            return await gw.SendAsync<ReadMarker>(new MarkRead(caller.TenantId, caller.UserId, id, seq),
                m => Results.Ok(new { conversation_id = m.ConversationId, seq = m.Seq }));
        });

        g.MapPost("/{id}/moderation/{action}", async (string id, string action, HttpRequest req, Caller caller, ClusterGateway gw) =>
        {
            if (!Ids.IsValid(id)) return Problems.NotFound("conversation");
            if (!ModerationActions.TryGetValue(action, out var act)) return Problems.NotFound("moderation action");
            var (body, error) = await Body.ReadAsync<ModerationBody>(req);
            if (error is not null) return error;
            if (!Ids.IsValid(body!.UserId)) return Problems.Invalid("user_id", "A valid user id is required.");
            if (body.DurationSeconds is <= 0 or > 10L * 365 * 86_400) return Problems.Invalid("duration_seconds", "Between 1 and ten years.");
            TimeSpan? duration = body.DurationSeconds is { } s ? TimeSpan.FromSeconds(s) : null;
            return await gw.SendAsync<Done>(new Moderate(caller.TenantId, id, caller.UserId, act, body.UserId!, duration, body.Reason),
                _ => Results.Ok(new
                {
                    action = action,
                    user_id = body.UserId,
                    until = duration is { } d ? Views.Utc(DateTimeOffset.UtcNow + d) : null,
                    reason = body.Reason,
                }));
        });

        g.MapGet("/{id}/moderation/log", async (string id, Caller caller, ClusterGateway gw, int? limit, string? cursor, HttpContext http) =>
        {
            if (!Ids.IsValid(id)) return Problems.NotFound("conversation");
            var n = limit ?? 50;
            if (n is < 1 or > 200) return Problems.Invalid("limit", "Between 1 and 200.");
            long? before = null;
            if (cursor is not null)
            {
                if (!Cursor.TryDecode(cursor, "l", out var raw) || !long.TryParse(raw, out var b)) return Problems.Invalid("cursor", "Not a cursor this API issued.");
                before = b;
            }
            var access = await gw.AskAsync(new GetReadAccess(caller.TenantId, id, caller.UserId), http.RequestAborted);
            if (access is Rejection r) return Problems.From(r);
            if (((ReadAccess)access).Role < Role.Moderator) return Problems.From(Rejection.Forbidden("Only moderators and above read the moderation log."));
            var rows = await gw.ReadYourWrites.ModerationLogAsync(caller.TenantId, id, (ReadAccess)access, n, before, http.RequestAborted);
            return Results.Ok(new
            {
                items = rows.Select(x => new
                {
                    action = x.Action,
                    actor_id = x.ActorId,
                    user_id = x.UserId,
                    until = x.Until is { } u ? Views.Utc(u) : null,
                    reason = x.Reason,
                    occurred_at = Views.Utc(x.OccurredAt),
                }),
                next_cursor = rows.Count == n ? Cursor.Encode("l", rows[^1].Id.ToString(System.Globalization.CultureInfo.InvariantCulture)) : null,
            });
        });
        return g;
    }
}
