using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Streams.Audit;
using Caas.Streams.ReadModel;
using Caas.Web.Auth;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Api;

/// <summary>
/// The audit API (admin role, the caller's tenant): replay events as NDJSON, a conversation's state at an instant,
/// and the log of these reads. Every admin read that passes validation is recorded before its answer starts.
/// </summary>
public static class AuditApi
{
    public static RouteGroupBuilder MapAudit(this RouteGroupBuilder v1)
    {
        // Built on first use: the actor system starts with the host, after the routes are mapped.
        var services = ((IEndpointRouteBuilder)v1).ServiceProvider;
        var replay = new Lazy<AuditReplay>(() => new AuditReplay(services.GetRequiredService<ActorSystem>(), services.GetRequiredService<StorageOptions>()));
        var accessLog = new Lazy<AuditAccessLog>(() => new AuditAccessLog(services.GetRequiredService<Caas.Streams.Operational.OperationalStore>()));

        var verifier = new Lazy<JournalVerifier>(() => new JournalVerifier(services.GetRequiredService<StorageOptions>(), services.GetService<AuditKey>()));

        // One filter over the whole v1 group (a group's filters apply to every endpoint in it, mapped before or after),
        // so the admin actions of every API are recorded without an edit in each handler.
        var logger = services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger("Caas.Web.Api.AdminActions");
        v1.AddEndpointFilter(async (ctx, next) =>
        {
            var http = ctx.HttpContext;
            if (AdminAction(http) is { } action && Caller.From(http.User) is { } caller)
                // Recorded once the status is known (a refused attempt changed nothing) and before the answer leaves,
                // so whoever sees the answer can already see the record.
                http.Response.OnStarting(async () =>
                {
                    if (http.Response.StatusCode is < 200 or > 299) return;
                    try
                    {
                        await accessLog.Value.RecordAsync(caller.TenantId, caller.UserId, action, http.Request.Path.Value ?? "",
                            http.Request.QueryString.Value is { Length: > 0 } q ? q : null, CancellationToken.None);
                    }
                    catch (Exception e)
                    {
                        // The action is done; a lost record is for an operator to see, not the caller.
                        Microsoft.Extensions.Logging.LoggerExtensions.LogError(logger, e, "Admin action {Action} by {UserId} was not recorded", action, caller.UserId);
                    }
                });
            return await next(ctx);
        });

        var g = v1.MapGroup("/admin/audit").WithTags("Audit");

        g.MapGet("/conversations/{id}/events", async (string id, Caller caller, string? from, string? to, HttpContext http) =>
        {
            if (!caller.IsAdmin) return Problems.From(Rejection.Forbidden("The admin role is required."));
            if (ParseRange(from, to) is not { } range) return RangeProblem(from, to);
            if (!Ids.IsValid(id) || !await replay.Value.ConversationExistsAsync(caller.TenantId, id)) return Problems.NotFound();
            await accessLog.Value.RecordAsync(caller.TenantId, caller.UserId, "replay_conversation", id, http.Request.QueryString.Value, CancellationToken.None);
            return new NdjsonResult(replay.Value, ct => replay.Value.ConversationEvents(caller.TenantId, id, range, ct: ct));
        });

        g.MapGet("/events", async (Caller caller, string? from, string? to, string? type, HttpContext http) =>
        {
            if (!caller.IsAdmin) return Problems.From(Rejection.Forbidden("The admin role is required."));
            if (ParseRange(from, to) is not { } range) return RangeProblem(from, to);
            if (type is not null && !AuditReplay.IsEventType(type)) return Problems.Invalid("type", "Not an event type (a manifest such as conv.message-posted or conv.message-posted.v2).");
            await accessLog.Value.RecordAsync(caller.TenantId, caller.UserId, "replay_tenant", caller.TenantId, http.Request.QueryString.Value, CancellationToken.None);
            return new NdjsonResult(replay.Value, ct => replay.Value.TenantEvents(caller.TenantId, range, type, ct: ct));
        });

        g.MapGet("/conversations/{id}/state", async (string id, Caller caller, string? at, HttpContext http) =>
        {
            if (!caller.IsAdmin) return Problems.From(Rejection.Forbidden("The admin role is required."));
            if (string.IsNullOrEmpty(at)) return Problems.Invalid("at", "Required: an RFC 3339 time.");
            if (!TimeRange.TryParseInstant(at, out var instant)) return Problems.Invalid("at", "Not an RFC 3339 time.");
            if (!Ids.IsValid(id) || !await replay.Value.ConversationExistsAsync(caller.TenantId, id)) return Problems.NotFound();
            await accessLog.Value.RecordAsync(caller.TenantId, caller.UserId, "state_at", id, http.Request.QueryString.Value, CancellationToken.None);
            var state = await replay.Value.ConversationStateAtAsync(caller.TenantId, id, instant!.Value);
            return Results.Ok(StateView(id, state, instant.Value));
        });

        g.MapGet("/verify", async (Caller caller, HttpContext http) =>
        {
            if (!caller.IsAdmin) return Problems.From(Rejection.Forbidden("The admin role is required."));
            await accessLog.Value.RecordAsync(caller.TenantId, caller.UserId, "verify", caller.TenantId, http.Request.QueryString.Value, CancellationToken.None);
            var report = await verifier.Value.VerifyAsync(caller.TenantId, ct: http.RequestAborted);
            return Results.Ok(new
            {
                intact = report.Intact,
                events = report.Events,
                chained = report.Chained,
                keyed = report.Keyed,
                unchained = report.Unchained,
                checkpoints = report.Checkpoints,
                entities = report.Entities,
                broken = report.Broken.Select(b => new { persistence_id = b.PersistenceId, seq = b.Seq, problem = b.Problem }),
            });
        });

        g.MapGet("/access-log", async (Caller caller, int? limit, string? cursor, HttpContext http) =>
        {
            if (!caller.IsAdmin) return Problems.From(Rejection.Forbidden("The admin role is required."));
            var n = limit ?? 50;
            if (n is < 1 or > 200) return Problems.Invalid("limit", "Between 1 and 200.");
            string? before = null;
            if (cursor is not null && !Cursor.TryDecode(cursor, "a", out before!)) return Problems.Invalid("cursor", "Not a cursor this API issued.");
            // Reading who read is itself a read of the audit API; it is recorded first, so it lists itself.
            await accessLog.Value.RecordAsync(caller.TenantId, caller.UserId, "access_log", caller.TenantId, http.Request.QueryString.Value, CancellationToken.None);
            var rows = await accessLog.Value.ListAsync(caller.TenantId, n, before, http.RequestAborted);
            return Results.Ok(new
            {
                items = rows.Select(r => new
                {
                    id = r.Id, user_id = r.UserId, action = r.Action, target = r.Target, query = r.Query, at = Views.Utc(r.At),
                }),
                next_cursor = rows.Count == n ? Cursor.Encode("a", rows[^1].Id) : null,
            });
        });

        // A rebuild empties and rewrites every tenant's read model, so it is an operator's action, not a tenant admin's.
        var projections = v1.MapGroup("/admin/projections").WithTags("Projections");
        projections.MapPost("/{name}/rebuild", async (string name, Caller caller, HttpContext http) =>
        {
            if (!caller.HasAnyRole("operator")) return Problems.From(Rejection.Forbidden("The operator role is required."));
            if (!ProjectionRebuilds.Names.Contains(name)) return Problems.NotFound("projection");
            var status = await services.GetRequiredService<ProjectionRebuilds>().StartAsync(name, http.RequestAborted);
            return Results.Json(RebuildView(status), statusCode: StatusCodes.Status202Accepted);
        });
        projections.MapGet("/{name}/rebuild", async (string name, Caller caller, HttpContext http) =>
        {
            if (!caller.HasAnyRole("operator")) return Problems.From(Rejection.Forbidden("The operator role is required."));
            if (!ProjectionRebuilds.Names.Contains(name)) return Problems.NotFound("projection");
            return Results.Ok(RebuildView(await services.GetRequiredService<ProjectionRebuilds>().StatusAsync(name, http.RequestAborted)));
        });
        return g;
    }

    /// <summary>
    /// The access-log action for a request that changes something as an admin or operator, or null: a write under <c>/v1/admin/</c> (tenant settings, erasure, dead-letter replay, rebuilds, intent training and
    /// activation), and a conversation's moderation, member removal, role change or deletion by a caller with the
    /// admin role. The action is <c>admin:METHOD route-pattern</c>; the target is the concrete path.
    /// </summary>
    internal static string? AdminAction(HttpContext http)
    {
        if (HttpMethods.IsGet(http.Request.Method) || HttpMethods.IsHead(http.Request.Method) || HttpMethods.IsOptions(http.Request.Method)) return null;
        var pattern = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? http.Request.Path.Value ?? "";
        if (!pattern.StartsWith('/')) pattern = "/" + pattern;
        var adminRoute = pattern.StartsWith("/v1/admin/", StringComparison.Ordinal);
        var moderation = pattern.StartsWith("/v1/conversations/{id}", StringComparison.Ordinal) && !pattern.EndsWith("/read", StringComparison.Ordinal)
                         && (pattern.Contains("/moderation/", StringComparison.Ordinal) || pattern.Contains("/members/{userId}", StringComparison.Ordinal)
                             || (HttpMethods.IsDelete(http.Request.Method) && pattern.TrimEnd('/') == "/v1/conversations/{id}"))
                         && Caller.From(http.User)?.IsAdmin == true;
        return adminRoute || moderation ? $"admin:{http.Request.Method} {pattern}" : null;
    }

    private static object RebuildView(RebuildStatus s) => new
    {
        name = s.Name,
        state = s.State,
        offset = s.Offset,
        target_offset = s.TargetOffset,
        started_at = s.StartedAt is { } a ? Views.Utc(a) : null,
        completed_at = s.CompletedAt is { } c ? Views.Utc(c) : null,
    };

    private static TimeRange? ParseRange(string? from, string? to)
    {
        if (!TimeRange.TryParseInstant(from, out var f) || !TimeRange.TryParseInstant(to, out var t)) return null;
        if (f is not null && t is not null && t < f) return null;
        return new TimeRange(f, t);
    }

    private static IResult RangeProblem(string? from, string? to)
    {
        var errors = new Dictionary<string, string[]>();
        if (!TimeRange.TryParseInstant(from, out var f)) errors["from"] = ["Not an RFC 3339 time."];
        if (!TimeRange.TryParseInstant(to, out var t)) errors["to"] = ["Not an RFC 3339 time."];
        else if (f is not null && t < f) errors["to"] = ["Before from."];
        return Problems.Of(ErrorCodes.ValidationFailed, "The time range is not valid.", errors);
    }

    private static object StateView(string id, ConversationState s, DateTimeOffset at) => new
    {
        id,
        at = Views.Utc(at),
        exists = s.Exists,
        deleted = s.Deleted,
        type = s.Exists ? s.Type : null,
        title = s.Title,
        metadata = s.Metadata,
        created_at = s.Exists ? Views.Utc(s.CreatedAt) : null,
        created_by = s.Exists ? s.CreatedBy : null,
        members = s.Members.Values.OrderBy(m => m.JoinedAt).ThenBy(m => m.UserId, StringComparer.Ordinal)
            .Select(m => new { user_id = m.UserId, role = m.Role.ToWire(), joined_at = Views.Utc(m.JoinedAt) }),
        // Restrictions as they stood then: one that had expired by that instant no longer applied.
        bans = Restrictions(s.Bans, at),
        mutes = Restrictions(s.Mutes, at),
        last_seq = s.LastSeq,
    };

    private static IEnumerable<object> Restrictions(IReadOnlyDictionary<string, Restriction> all, DateTimeOffset at) =>
        all.Where(kv => kv.Value.ActiveAt(at)).OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new { user_id = kv.Key, until = kv.Value.Until is { } u ? Views.Utc(u) : null, reason = kv.Value.Reason });

    /// <summary>
    /// Streams a replay as NDJSON, a journal page at a time, to the response pipe, whose flush waits while the client is
    /// slow (backpressure: the page after the one read ahead is not queried until then); a client that goes away
    /// cancels the replay.
    /// </summary>
    private sealed class NdjsonResult(AuditReplay replay, Func<CancellationToken, IAsyncEnumerable<IReadOnlyList<AuditEvent>>> pages) : IResult
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = "application/x-ndjson";
            var output = http.Response.BodyWriter;
            try
            {
                // A page of the journal (at most 1,000 events) is written, then flushed: the flush waits while the client
                // is slow (backpressure), and the next page is read only after it.
                await foreach (var page in pages(http.RequestAborted))
                {
                    foreach (var e in page) replay.WriteLine(output, e);
                    if (page.Count == 0) continue;
                    var flushed = await output.FlushAsync(http.RequestAborted);
                    if (flushed.IsCanceled || flushed.IsCompleted) break;
                }
                if (!http.RequestAborted.IsCancellationRequested) await output.FlushAsync(http.RequestAborted);
            }
            catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
            {
                // The client stopped reading: nothing to answer.
            }
        }
    }
}
