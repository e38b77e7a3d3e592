using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Sessions;
using Caas.Streams.Pipeline;
using Caas.Streams.ReadModel;
using Caas.Web.Auth;
using Caas.Web.Edge;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Caas.Web.Api;

public static class MessagesApi
{
    public static RouteGroupBuilder MapMessages(this RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/messages").WithTags("Messages");

        g.MapPost("/", async (HttpRequest req, Caller caller, IMessageIngest ingest, ClusterGateway gw) =>
        {
            var (body, error) = await Body.ReadAsync<PostMessageBody>(req);
            if (error is not null) return error;
            var errors = new Dictionary<string, string[]>();
            if (!Ids.IsValid(body!.ConversationId)) errors["conversation_id"] = ["A valid conversation id is required."];
            if (body.Content is null) errors["content"] = ["Required."];
            if (errors.Count > 0) return Problems.Of(ErrorCodes.ValidationFailed, "The request is not valid.", errors);
            var content = body.Content!.ToContent();
            var outcome = await ingest.SubmitAsync(new IngestMessage(caller.TenantId, body.ConversationId!, caller.UserId, body.MessageId,
                content, IngestSource.Rest), req.HttpContext.RequestAborted);
            return outcome switch
            {
                Persisted { Ack.Repeat: false } p => Remember(gw, caller, p) ?? Results.Created($"/v1/messages/{p.Ack.MessageId}", Views.Ack(p.Ack, p.Ack.Content)),
                Persisted p => Results.Ok(Views.Ack(p.Ack, p.Ack.Content ?? content)),
                Rejected r => Problems.From(r.Rejection),
                _ => throw new InvalidOperationException("Unknown outcome."),
            };
        });

        g.MapGet("/conversations/{conversationId}", async (string conversationId, Caller caller, ClusterGateway gw, HttpContext http,
            int? limit, string? cursor, long? after_seq, long? around_seq) =>
        {
            if (!Ids.IsValid(conversationId)) return Problems.NotFound("conversation");
            var n = limit ?? 50;
            if (n is < 1 or > 200) return Problems.Invalid("limit", "Between 1 and 200.");
            if (after_seq is < 0) return Problems.Invalid("after_seq", "Zero or more.");
            // around_seq (a search result): the page of `limit` messages centred on it, oldest first, pageable onwards.
            if (around_seq is < 1) return Problems.Invalid("around_seq", "One or more.");
            if (around_seq is not null && (after_seq is not null || cursor is not null)) return Problems.Invalid("around_seq", "Not with after_seq or cursor.");
            if (around_seq is { } around) after_seq = Math.Max(0, around - n / 2 - 1);
            long? before = null, after = after_seq;
            if (cursor is not null)
            {
                if (Cursor.TryDecode(cursor, "b", out var b) && long.TryParse(b, out var bs)) before = bs;
                else if (Cursor.TryDecode(cursor, "a", out var a) && long.TryParse(a, out var @as)) after = @as;
                else return Problems.Invalid("cursor", "Not a cursor this API issued.");
            }

            var access = await gw.AskAsync(new GetReadAccess(caller.TenantId, conversationId, caller.UserId), http.RequestAborted);
            if (access is Rejection r) return Problems.From(r);
            var rows = await gw.ReadYourWrites.MessagesAsync(caller.TenantId, conversationId, (ReadAccess)access, n, before, after, http.RequestAborted);
            string? next = rows.Count < n ? null
                : after is not null ? Cursor.Encode("a", rows[^1].Seq.ToString(System.Globalization.CultureInfo.InvariantCulture))
                : rows[^1].Seq > 1 ? Cursor.Encode("b", rows[^1].Seq.ToString(System.Globalization.CultureInfo.InvariantCulture)) : null;
            return Results.Ok(new { items = rows.Select(Views.Message), next_cursor = next });
        });

        g.MapGet("/{id}", async (string id, Caller caller, ClusterGateway gw, JournalTail tail, HttpContext http) =>
        {
            var (row, problem) = await FindReadableAsync(id, caller, gw, tail, http.RequestAborted);
            return problem ?? Results.Ok(Views.Message(row!));
        });

        g.MapPut("/{id}", async (string id, HttpRequest req, Caller caller, ClusterGateway gw, JournalTail tail) =>
        {
            var (body, error) = await Body.ReadAsync<EditMessageBody>(req);
            if (error is not null) return error;
            if (body!.Content is null || body.Content.Type != "text" || string.IsNullOrWhiteSpace(body.Content.Text))
                return Problems.Invalid("content", "A text content with a non-empty text is required.");
            var tenant = await gw.TenantSettingsAsync(caller.TenantId, req.HttpContext.RequestAborted);
            if (body.Content.Text.Length > tenant.MaxMessageChars)
                return Problems.Of(ErrorCodes.PayloadTooLarge, $"A message is at most {tenant.MaxMessageChars} characters.");
            var (row, problem) = await FindReadableAsync(id, caller, gw, tail, req.HttpContext.RequestAborted);
            if (problem is not null) return problem;
            // An attachment message's edit changes its caption; the file (and its type) stay.
            var content = row!.Attachment is { } attached
                ? new MessageContent(row.ContentType ?? "file", body.Content.Text) { Attachment = attached }
                : new MessageContent("text", body.Content.Text);
            return await gw.SendAsync<MessageChanged>(new EditMessage(caller.TenantId, row!.ConversationId, caller.UserId, row.Seq, content),
                c => Results.Ok(Views.Message(c, row.ConversationId, row)));
        });

        g.MapDelete("/{id}", async (string id, Caller caller, ClusterGateway gw, JournalTail tail, HttpContext http) =>
        {
            var (row, problem) = await FindReadableAsync(id, caller, gw, tail, http.RequestAborted);
            if (problem is not null) return problem;
            return await gw.SendAsync<MessageChanged>(new DeleteMessage(caller.TenantId, row!.ConversationId, caller.UserId, row.Seq),
                c => Results.Ok(Views.Message(c, row.ConversationId, row)));
        });

        g.MapPost("/{id}/reactions", async (string id, HttpRequest req, Caller caller, ClusterGateway gw, JournalTail tail) =>
        {
            var (body, error) = await Body.ReadAsync<ReactionBody>(req);
            if (error is not null) return error;
            if (string.IsNullOrWhiteSpace(body!.Reaction) || body.Reaction.Length > ConversationDecider.MaxReactionLength)
                return Problems.Invalid("reaction", $"1 to {ConversationDecider.MaxReactionLength} characters.");
            var (row, problem) = await FindReadableAsync(id, caller, gw, tail, req.HttpContext.RequestAborted);
            if (problem is not null) return problem;
            return await gw.SendAsync<MessageChanged>(new AddReaction(caller.TenantId, row!.ConversationId, caller.UserId, row.Seq, body.Reaction),
                c => Results.Ok(Views.Message(c, row.ConversationId, row)));
        });

        g.MapDelete("/{id}/reactions/{reaction}", async (string id, string reaction, Caller caller, ClusterGateway gw, JournalTail tail, HttpContext http) =>
        {
            var (row, problem) = await FindReadableAsync(id, caller, gw, tail, http.RequestAborted);
            if (problem is not null) return problem;
            return await gw.SendAsync<MessageChanged>(new RemoveReaction(caller.TenantId, row!.ConversationId, caller.UserId, row.Seq, reaction),
                c => Results.Ok(Views.Message(c, row.ConversationId, row)));
        });
        return g;
    }

    /// <summary>
    /// A message the caller may read: found by its tenant-unique id, in a conversation the caller is a member of.
    /// Anything else is the same 404, answered at once: only a message the caller itself wrote (acknowledged, not yet
    /// in the read model) is waited for, so an unknown id and another conversation's id cannot be told apart by time.
    /// </summary>
    private static async Task<(MessageRow? Row, IResult? Problem)> FindReadableAsync(string id, Caller caller, ClusterGateway gw, JournalTail tail, CancellationToken ct)
    {
        if (!Ids.IsValid(id)) return (null, Problems.NotFound("message"));
        var row = await gw.Queries.MessageByIdAsync(caller.TenantId, id, ct) ?? await OwnUnprojectedAsync(id, caller, gw, tail, ct);
        if (row is null) return (null, Problems.NotFound("message"));
        var access = await gw.AskAsync(new GetReadAccess(caller.TenantId, row.ConversationId, caller.UserId), ct);
        if (access is Rejection) return (null, Problems.NotFound("message"));
        // The read model may trail the entity: this message's latest state, with every acknowledged write in it.
        return (await gw.ReadYourWrites.MessageAsync(caller.TenantId, row, (ReadAccess)access, ct), null);
    }

    /// <summary>A new post is remembered for the caller's next read across conversations; never an answer of its own.</summary>
    private static IResult? Remember(ClusterGateway gw, Caller caller, Persisted p)
    {
        gw.ReadYourWrites.Remember(caller.TenantId, caller.UserId,
            ConversationActor.PersistenceIdOf(Ids.EntityId(caller.TenantId, p.Ack.ConversationId)), p.Ack.JournalSeq);
        return null;
    }

    /// <summary>The caller's own message that the read model does not hold yet, after waiting for it; else null.</summary>
    private static async Task<MessageRow?> OwnUnprojectedAsync(string id, Caller caller, ClusterGateway gw, JournalTail tail, CancellationToken ct)
    {
        if (await gw.Queries.ClaimedConversationAsync(caller.TenantId, id, ct) is not { } conversation) return null;
        if (await gw.AskAsync(new GetOwnMessage(caller.TenantId, conversation, caller.UserId, id), ct) is not OwnMessage own) return null;
        if (await gw.AskAsync(new GetReadAccess(caller.TenantId, conversation, caller.UserId), ct) is not ReadAccess access) return null;
        // Waits for the projection (bounded), then reads the message with every acknowledged write merged in.
        var page = await gw.ReadYourWrites.MessagesAsync(caller.TenantId, conversation, access, 1, own.Seq + 1, null, ct);
        return page.FirstOrDefault(m => m.MessageId == id);
    }
}
