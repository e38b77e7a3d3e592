using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
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

    /// <summary>One line's limit: a longer line is answered <c>payload_too_large</c> and its bytes are dropped unread.</summary>
    public const int MaxLineBytes = 64 << 10;

    public static RouteGroupBuilder MapIngest(this RouteGroupBuilder v1)
    {
        v1.MapPost("/ingest", async (HttpContext http, Caller caller, IMessageIngest ingest) =>
        {
            if (!caller.HasAnyRole("ingest", "admin")) return Problems.From(Rejection.Forbidden("The ingest or admin role is required."));
            if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = MaxBodyBytes;

            // The body is read line by line as the answers go out: memory holds one line (at most MaxLineBytes) and
            // the lines in the pipeline, never the body.
            await using var lines = ReadLinesAsync(http.Request.BodyReader, http.RequestAborted).GetAsyncEnumerator(http.RequestAborted);
            try
            {
                if (!await lines.MoveNextAsync()) return Problems.Invalid("body", "No lines: send one JSON message per line.");
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                return Problems.Of(ErrorCodes.PayloadTooLarge, $"A bulk request is at most {MaxBodyBytes >> 20} MiB.");
            }

            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = "application/x-ndjson";
            // Answers go out in line order while up to InFlight lines are in the pipeline at once.
            var pending = new Queue<Task<byte[]>>();
            var number = 0;
            try
            {
                do
                {
                    number++;
                    pending.Enqueue(lines.Current.Json is not { } json
                        ? Task.FromResult(TooLarge(number, $"A line is at most {MaxLineBytes >> 10} KiB."))
                        : number > MaxLines
                            ? Task.FromResult(TooLarge(number, $"A bulk request is at most {MaxLines} lines."))
                            : AnswerAsync(number, json, caller, ingest, http.RequestAborted));
                    if (pending.Count >= InFlight) await http.Response.Body.WriteAsync(await pending.Dequeue(), http.RequestAborted);
                }
                while (await lines.MoveNextAsync());
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                // Over the body limit part-way: the lines read are answered, then one line says where reading stopped.
                pending.Enqueue(Task.FromResult(TooLarge(number + 1, $"A bulk request is at most {MaxBodyBytes >> 20} MiB; the rest was not read.")));
            }
            while (pending.Count > 0) await http.Response.Body.WriteAsync(await pending.Dequeue(), http.RequestAborted);
            return Results.Empty;
        }).WithTags("Ingest");
        return v1;
    }

    /// <summary>A line of the body: its text, or no text when it was over <see cref="MaxLineBytes"/>.</summary>
    private readonly record struct BulkLine(string? Json);

    /// <summary>
    /// The body's non-empty lines (a trailing CR dropped). A line over <see cref="MaxLineBytes"/> is skipped up to its
    /// newline without being kept and comes out as a line without text.
    /// </summary>
    private static async IAsyncEnumerable<BulkLine> ReadLinesAsync(PipeReader reader, [EnumeratorCancellation] CancellationToken ct)
    {
        var skipping = false;
        while (true)
        {
            var result = await reader.ReadAsync(ct);
            var buffer = result.Buffer;
            var found = new List<BulkLine>();
            while (buffer.PositionOf((byte)'\n') is { } newline)
            {
                var line = buffer.Slice(0, newline);
                buffer = buffer.Slice(buffer.GetPosition(1, newline));
                if (skipping || line.Length > MaxLineBytes) found.Add(new BulkLine(null));
                else if (Decode(line) is { Length: > 0 } text) found.Add(new BulkLine(text));
                skipping = false;
            }
            // What is left has no newline yet: keep it while it may still be a line, drop it once it is over the limit.
            if (buffer.Length > MaxLineBytes) skipping = true;
            if (result.IsCompleted)
            {
                if (skipping) found.Add(new BulkLine(null));
                else if (Decode(buffer) is { Length: > 0 } last) found.Add(new BulkLine(last));
                reader.AdvanceTo(buffer.End);
                foreach (var line in found) yield return line;
                yield break;
            }
            if (skipping) reader.AdvanceTo(buffer.End);
            else reader.AdvanceTo(buffer.Start, buffer.End);
            foreach (var line in found) yield return line;
        }
    }

    private static string Decode(ReadOnlySequence<byte> line)
    {
        var text = Encoding.UTF8.GetString(line);
        return text.EndsWith('\r') ? text[..^1] : text;
    }

    private static byte[] TooLarge(int line, string why) =>
        Answer(new { line, message_id = (string?)null, status = "rejected", code = ErrorCodes.PayloadTooLarge, message = why });

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
            parsed.MessageId, parsed.Content.ToContent(), IngestSource.Bulk), ct);
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
