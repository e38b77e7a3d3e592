using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Calls;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Web.Auth;
using Caas.Web.Edge;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Caas.Web.Api;

/// <summary><c>GET /v1/conversations/{id}/calls</c>: the active call and the finished ones, newest first (members only).</summary>
public static class CallsApi
{
    public static RouteGroupBuilder MapCalls(this RouteGroupBuilder v1)
    {
        v1.MapGet("/conversations/{id}/calls", async (string id, int? limit, Caller caller, ClusterGateway gateway,
            IRequiredActor<CallRoomRegion> calls, HttpContext http) =>
        {
            if (!Ids.IsValid(id)) return Problems.NotFound("conversation");
            var n = limit ?? 50;
            if (n is < 1 or > CallRoomState.HistoryKept) return Problems.Invalid("limit", $"Between 1 and {CallRoomState.HistoryKept}.");
            var access = await gateway.AskAsync(new GetReadAccess(caller.TenantId, id, caller.UserId), http.RequestAborted);
            if (access is Rejection r) return Problems.From(r);
            object reply;
            try
            {
                reply = await calls.ActorRef.Ask<object>(new GetCallHistory(caller.TenantId, id, caller.UserId, n), TimeSpan.FromSeconds(10), http.RequestAborted);
            }
            catch (AskTimeoutException)
            {
                return Problems.Of(ErrorCodes.Overloaded, "The cluster did not answer in time; retry.", retryAfter: 1);
            }
            if (reply is not CallHistory h) return Problems.From(reply as Rejection ?? new Rejection(ErrorCodes.Overloaded, "No answer."));
            return Results.Ok(new
            {
                active = h.Active is { } a
                    ? new { call_id = a.CallId, status = a.Status, media = h.ActiveMedia, started_by = h.ActiveStartedBy,
                        started_at = Views.Utc(h.ActiveStartedAt!.Value), joined = a.Joined, ringing = a.Ringing,
                        quality = CallQuality.View(h.ActiveQuality) }
                    : null,
                items = h.Items.Select(c => new
                {
                    call_id = c.CallId, media = c.Media, started_by = c.StartedBy, started_at = Views.Utc(c.StartedAt),
                    ended_at = Views.Utc(c.EndedAt), reason = c.Reason, duration_seconds = c.DurationSeconds, participants = c.Participants,
                    ended_by = c.EndedBy, quality = CallQuality.View(c.Quality),
                }),
            });
        }).WithTags("Calls");
        return v1;
    }
}
