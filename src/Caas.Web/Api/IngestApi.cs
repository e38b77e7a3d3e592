using System.Text;
using System.Text.Json;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Streams.Pipeline;
using Caas.Web.Auth;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;

namespace Caas.Web.Api;

public sealed record IngestLine(string? ConversationId, string? SenderId, string? MessageId, ContentBody? Content);

/// <summary>
/// Bulk ingest: NDJSON in (one message a line, each naming its sender), NDJSON out (one answer a line, in line order).
/// A service route for the <c>ingest</c> or <c>admin</c> role; exempt from the per-user rate, like Kafka.
/// </summary>
public static class IngestApi
{
    public const int MaxLines = 10_000;
    public const long MaxBodyBytes = 64L << 20;
    private const int InFlight = 256;

    public static RouteGroupBuilder MapIngest(this RouteGroupBuilder v1)
    {
        v1.MapPost("/ingest", async (HttpContext http, Caller caller, IMessageIngest ingest) =>
        {
            if (!caller.HasAnyRole("ingest", "admin")) return Problems.From(Rejection.Forbidden("The ingest or admin role is required."));
            if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = MaxBodyBytes;

            List<string> lines;
            try
            {
                lines = await ReadLinesAsync(http.Request.Body, http.RequestAborted);
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                return Problems.Of(ErrorCodes.PayloadTooLarge, $"A bulk request is at most {MaxBodyBytes >> 20} MiB.");
            }
            if (lines.Count > MaxLines) return Problems.Of(ErrorCodes.PayloadTooLarge, $"A bulk request is at most {MaxLines} lines.");
            if (lines.Count == 0) return Problems.Invalid("body", "No lines: send one JSON message per line.");

            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = "application/x-ndjson";
            // Answers go out in line order while up to InFlight lines are in the pipeline at once.
            var pending = new Queue<Task<byte[]>>();
            for (var i = 0; i < lines.Count; i++)
            {
                pending.Enqueue(AnswerAsync(i + 1, lines[i], caller, ingest, http.RequestAborted));
                if (pending.Count >= InFlight) await http.Response.Body.WriteAsync(await pending.Dequeue(), http.RequestAborted);
            }
            while (pending.Count > 0) await http.Response.Body.WriteAsync(await pending.Dequeue(), http.RequestAborted);
            return Results.Empty;
        }).WithTags("Ingest");
        return v1;
    }

    private static async Task<List<string>> ReadLinesAsync(Stream body, CancellationToken ct)
    {
        var lines = new List<string>();
        using var reader = new StreamReader(body, Encoding.UTF8);
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.Length > 0) lines.Add(line);
            if (lines.Count > MaxLines) break;
        }
        return lines;
    }

    private static async Task<byte[]> AnswerAsync(int line, string json, Caller caller, IMessageIngest ingest, CancellationToken ct)
    {
        IngestLine? parsed;
        try
        {
            parsed = JsonSerializer.Deserialize<IngestLine>(json, Json.Options);
        }
        catch (JsonException)
        {
            return Answer(new { line, message_id = (string?)null, status = "rejected", code = ErrorCodes.MalformedJson, message = "The line is not valid JSON." });
        }
        if (parsed?.Content is null)
            return Answer(new { line, message_id = parsed?.MessageId, status = "rejected", code = ErrorCodes.ValidationFailed, message = "content is required." });

        var outcome = await ingest.SubmitAsync(new IngestMessage(caller.TenantId, parsed.ConversationId ?? string.Empty, parsed.SenderId ?? string.Empty,
            parsed.MessageId, new MessageContent(parsed.Content.Type ?? string.Empty, parsed.Content.Text), IngestSource.Bulk), ct);
        return outcome switch
        {
            Persisted p => Answer(new { line, message_id = p.Ack.MessageId, status = p.Ack.Repeat ? "duplicate" : "persisted", seq = p.Ack.Seq }),
            Rejected r => Answer(new { line, message_id = parsed.MessageId, status = "rejected", code = r.Rejection.Code, message = r.Rejection.Message }),
            _ => throw new InvalidOperationException("Unknown outcome."),
        };
    }

    private static byte[] Answer(object value)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(value, Json.Options);
        var line = new byte[bytes.Length + 1];
        bytes.CopyTo(line, 0);
        line[^1] = (byte)'\n';
        return line;
    }
}
