using Caas.Actors.Common;
using Caas.Streams.DeadLetters;
using Caas.Streams.Kafka;
using Caas.Streams.Pipeline;
using Caas.Web.Auth;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Api;

/// <summary>
/// The dead-letter path: list (admin: the tenant's; operator: every tenant's, and those with no readable tenant)
/// and replay through the pipeline.
/// </summary>
public static class DeadLettersApi
{
    public static RouteGroupBuilder MapDeadLetters(this RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/admin/dead-letters").WithTags("Dead letters");

        g.MapGet("/", async (Caller caller, DeadLetterStore letters, int? limit, string? cursor, HttpContext http) =>
        {
            if (!caller.HasAnyRole("admin", "operator")) return Problems.From(Rejection.Forbidden("The admin or operator role is required."));
            var n = limit ?? 50;
            if (n is < 1 or > 200) return Problems.Invalid("limit", "Between 1 and 200.");
            string? before = null;
            if (cursor is not null && !Cursor.TryDecode(cursor, "d", out before!)) return Problems.Invalid("cursor", "Not a cursor this API issued.");
            var rows = await letters.ListAsync(caller.HasAnyRole("operator") ? null : caller.TenantId, n, before, http.RequestAborted);
            return Results.Ok(new { items = rows.Select(View), next_cursor = rows.Count == n ? Cursor.Encode("d", rows[^1].Id) : null });
        });

        g.MapPost("/{id}/replay", async (string id, Caller caller, DeadLetterStore letters, IMessageIngest ingest, HttpContext http) =>
        {
            if (!caller.HasAnyRole("admin", "operator")) return Problems.From(Rejection.Forbidden("The admin or operator role is required."));
            var letter = Ids.IsValid(id) ? await letters.GetAsync(id, http.RequestAborted) : null;
            if (letter is null || (!caller.HasAnyRole("operator") && letter.TenantId != caller.TenantId)) return Problems.NotFound("dead letter");
            var kafka = http.RequestServices.GetService<KafkaSettings>() ?? KafkaSettings.AdmissionFromEnvironment();
            var (message, refusal) = DeadLetterStore.ForReplay(letter, kafka);
            if (refusal is not null)
            {
                await letters.MarkReplayedAsync(letter.Id, refusal.Code, CancellationToken.None);
                return Problems.From(refusal);
            }
            if (message is null)
                return Problems.Of(ErrorCodes.Conflict, "This dead letter is not a readable message; it cannot be replayed.");
            var outcome = await ingest.SubmitAsync(message, http.RequestAborted);
            var (status, code) = outcome switch
            {
                Persisted { Ack.Repeat: true } => ("duplicate", (string?)null),
                Persisted => ("persisted", null),
                Rejected r => ("rejected", r.Rejection.Code),
                _ => ("unknown", null),
            };
            await letters.MarkReplayedAsync(letter.Id, code ?? status, CancellationToken.None);
            return Results.Ok(new
            {
                id = letter.Id,
                status,
                code,
                seq = outcome is Persisted p ? p.Ack.Seq : (long?)null,
                message_id = outcome is Persisted q ? q.Ack.MessageId : message.MessageId,
            });
        });
        return g;
    }

    private static object View(DeadLetter d) => new
    {
        id = d.Id,
        tenant_id = d.TenantId,
        source = d.Source,
        code = d.Code,
        reason = d.Reason,
        payload = d.Payload,
        created_at = Views.Utc(d.CreatedAt),
        replayed_at = d.ReplayedAt is { } r ? Views.Utc(r) : null,
        replay_outcome = d.ReplayOutcome,
    };
}
