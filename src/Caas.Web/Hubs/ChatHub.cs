using System.Globalization;
using System.Runtime.CompilerServices;
using Akka.Actor;
using System.Text.Json;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Rooms;
using Caas.Actors.Sessions;
using Caas.Streams.Pipeline;
using Caas.Web.Api;
using Caas.Web.Auth;
using Caas.Web.Edge;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Caas.Web.Hubs;

public sealed record RoomArgs(string? ConversationId);
public sealed record SendMessageArgs(string? ConversationId, JsonElement? Content, string? MessageId);
public sealed record EditMessageArgs(string? ConversationId, long? Seq, JsonElement? Content);
public sealed record MessageArgs(string? ConversationId, long? Seq);
public sealed record ReactionArgs(string? ConversationId, long? Seq, string? Reaction);
public sealed record HistoryArgs(string? ConversationId, long? AfterSeq, string? Cursor, int? Limit);
public sealed record UserArgs(string? UserId);
public sealed record ResumeRoomArgs(string? ConversationId, long? EventSeq);
public sealed record DeliveredArgs(string? ConversationId, long? Seq, long? EventSeq);
public sealed record ResumeArgs(IReadOnlyList<ResumeRoomArgs>? Rooms);
public sealed record HelloArgs(IReadOnlyList<int>? Versions, string? Client);

/// <summary>
/// The hub's protocol versions (<c>Hello</c>). A version names the hub's methods, events and payload shapes as a client
/// may rely on them; a change that would break a client that speaks an older one gets a new number, and the server
/// keeps speaking the older ones it lists in <see cref="Supported"/>.
/// </summary>
public static class HubProtocolVersions
{
    public const int Current = 1;

    public static readonly IReadOnlyList<int> Supported = [Current];

    /// <summary>What protocol 1 offers beyond the basic room methods, for clients that adapt.</summary>
    public static readonly IReadOnlyList<string> Features =
        ["resume", "tracked_delivery", "room_activity", "calls", "call_updates", "recordings", "messagepack"];
}

/// <summary>
/// The chat hub at <c>/hubs/chat</c>. Every method answers a result object, <c>{success: true, …}</c> or
/// <c>{success: false, error: {code, message}}</c> with the codes of the REST API; an exception's details never reach
/// the client. Messages go through the one ingest path; live events come from the node's room relay.
/// </summary>
public sealed partial class ChatHub(
    ClusterGateway gateway,
    IMessageIngest ingest,
    RoomRelay relay,
    ChatConnections connections,
    HubCallLimiter limiter,
    ClientRequestLimiter requests,
    IOptions<HubSettings> options,
    ILogger<ChatHub> log) : Hub
{
    private HubSettings Settings => options.Value;

    public override async Task OnConnectedAsync()
    {
        var caller = Context.User is { } user ? Caller.From(user) : null;
        if (caller is null || !connections.Contexts.TryGetValue(Context.ConnectionId, out var context))
        {
            Context.Abort();
            return;
        }
        var connection = new ChatConnection(context, caller, Settings.OutboundBufferMessages, Settings.OutboundEphemeralMessages, log,
            Settings.OutboundBufferBytes, Settings.OutboundEphemeralBytes);
        connections.Add(connection);
        ScheduleExpiry(connection);
        var opened = await gateway.AskAsync(new ConnectionOpened(caller.TenantId, caller.UserId, connection.Id, relay.NodeAddress));
        if (opened is Rejection r) log.LogWarning("Presence of {UserId} not recorded: {Code}", caller.UserId, r.Code);
    }

    public override async Task OnDisconnectedAsync(Exception? exception)
    {
        if (connections.Remove(Context.ConnectionId) is not { } connection) return;
        connection.Complete();
        var caller = connection.Caller;
        foreach (var room in connection.Rooms.Keys.ToList()) LeaveLiveRoom(connection, room);
        await gateway.AskAsync(new ConnectionClosed(caller.TenantId, caller.UserId, connection.Id));
    }

    /// <summary>
    /// Protocol negotiation, the first call of a client that wants it: <c>Hello {versions: [1, …], client?}</c> answers the
    /// highest version both speak with the server's features and limits, or <c>unsupported_protocol</c> (the connection
    /// stays open; the client decides). A client that never says Hello gets protocol 1.
    /// </summary>
    public Task<object> Hello(HelloArgs args) => Guard((_, _) =>
    {
        if (args.Versions is not { Count: > 0 and <= 16 } offered || offered.Any(v => v < 1))
            return Task.FromResult(Fail(Rejection.Invalid("versions", "1 to 16 protocol versions, each 1 or more.")));
        if (args.Client is { Length: > 200 })
            return Task.FromResult(Fail(Rejection.Invalid("client", "At most 200 characters.")));
        var common = offered.Where(HubProtocolVersions.Supported.Contains).DefaultIfEmpty(0).Max();
        var delivery = Settings.WithEnvironment();
        if (common == 0)
            return Task.FromResult(Fail(new Rejection(ErrorCodes.UnsupportedProtocol,
                $"This server speaks hub protocol {string.Join(", ", HubProtocolVersions.Supported)}; the client offered {string.Join(", ", offered.Distinct())}.")));
        return Task.FromResult<object>(new
        {
            success = true,
            protocol = common,
            server = "caas",
            features = HubProtocolVersions.Features,
            limits = new
            {
                max_message_bytes = Settings.MaxMessageBytes,
                max_resume_rooms = Settings.MaxResumeRooms,
                max_resume_events = Settings.MaxResumeEvents,
                delivery_timeout_ms = (long)delivery.DeliveryTimeout.TotalMilliseconds,
                delivery_retries = delivery.DeliveryRetries,
                typing_window_ms = (long)Settings.TypingWindow.TotalMilliseconds,
            },
        });
    });

    /// <summary>Joins a room live. The answer's <c>event_seq</c> is where a later <see cref="Resume"/> may start if no event came since.</summary>
    public Task<object> JoinRoom(RoomArgs args) => Guard((connection, caller) => JoinLiveAsync(connection, caller, args.ConversationId, null));

    /// <summary>
    /// On a new connection (to any node): joins each room and sends first what the client missed after its
    /// <c>event_seq</c> (the last durable event it has), in order, then the live events, with no gap and no duplicate.
    /// A room named without <c>event_seq</c> resumes from the user's saved delivered marker (see <see cref="MarkDelivered"/>).
    /// A room further behind than <see cref="HubSettings.MaxResumeEvents"/> joins live with <c>resumed: false</c>.
    /// </summary>
    public Task<object> Resume(ResumeArgs args) => Guard(async (connection, caller) =>
    {
        if (args.Rooms is not { Count: > 0 } rooms || rooms.Count > Settings.MaxResumeRooms)
            return Fail(Rejection.Invalid("rooms", $"1 to {Settings.MaxResumeRooms} rooms, each {{conversation_id, event_seq}}."));
        if (rooms.Any(r => r.EventSeq is < 0)) return Fail(Rejection.Invalid("event_seq", "0 or more, or left out for the saved delivered marker."));
        var answers = new List<object>();
        foreach (var room in rooms)
        {
            var from = room.EventSeq;
            if (from is null && Ids.IsValid(room.ConversationId)
                && await gateway.AskAsync(new GetDeliveredMarker(caller.TenantId, caller.UserId, room.ConversationId!)) is DeliveredMarker saved)
                from = saved.EventSeq;
            answers.Add(await JoinLiveAsync(connection, caller, room.ConversationId, from ?? 0));
        }
        return new { success = true, rooms = answers };
    });

    private async Task<object> JoinLiveAsync(ChatConnection connection, Caller caller, string? conversationId, long? resumeAfter)
    {
        if (!Ids.IsValid(conversationId)) return Fail(Rejection.NotFound());
        var id = conversationId!;
        var reply = await gateway.AskAsync(new GetConversation(caller.TenantId, id, caller.UserId), Context.ConnectionAborted);
        if (reply is Rejection rejection) return Fail(rejection);
        var view = (ConversationView)reply;
        var members = RoomMembers.Of(view.Members);
        var resumed = false;
        long? eventSeq = null;
        if (connection.Rooms.TryAdd(id, 0))
        {
            // Where the conversation's journal is before the connection is registered: a new feed starts there.
            var position = await gateway.AskAsync(new GetReadAccess(caller.TenantId, id, caller.UserId), Context.ConnectionAborted) as ReadAccess;
            resumed = resumeAfter is not null && position is not null && position.JournalSeq - resumeAfter <= Settings.MaxResumeEvents;
            await relay.Probe(JoinStage.Checked, connection, id);
            await relay.Actor.Ask<Relay.Joined>(new Relay.Join(caller.TenantId, id, connection, position?.LastSeq ?? view.LastSeq,
                members.UserIds, resumed ? resumeAfter : null, position?.JournalSeq ?? 0), TimeSpan.FromSeconds(10));
            await relay.Probe(JoinStage.Registered, connection, id);
            // Removal wins: a kick, ban or removal the feed handled between the check above and the registration found
            // no connection to evict. The feed is subscribed and holds the connection now, so asking the entity again
            // closes the gap: a removal before this answer is seen here, one after it reaches the feed's eviction.
            var again = await gateway.AskAsync(new GetReadAccess(caller.TenantId, id, caller.UserId), Context.ConnectionAborted);
            if (again is Rejection removed)
            {
                LeaveLiveRoom(connection, id, announce: false);
                return Fail(removed);
            }
            if (!connection.Rooms.ContainsKey(id)) return Fail(Rejection.NotFound());
            eventSeq = (again as ReadAccess)?.JournalSeq;
            relay.Publish(Signal(caller, id, RoomSignalKinds.MemberJoined, null));
        }
        var self = view.Members.FirstOrDefault(m => m.UserId == caller.UserId);
        return new
        {
            success = true,
            conversation_id = id,
            role = self?.Role.ToWire(),
            last_seq = view.LastSeq,
            event_seq = eventSeq,
            resumed,
            members,
        };
    }

    public Task<object> LeaveRoom(RoomArgs args) => Guard((connection, _) =>
    {
        var id = args.ConversationId ?? string.Empty;
        if (!connection.Rooms.ContainsKey(id)) return Task.FromResult(Fail(Rejection.NotFound("room")));
        LeaveLiveRoom(connection, id);
        return Task.FromResult<object>(new { success = true, conversation_id = id });
    });

    public Task<object> SendMessage(SendMessageArgs args) => Guard(async (connection, caller) =>
    {
        if (!Ids.IsValid(args.ConversationId)) return Fail(Rejection.Invalid("conversation_id", "A valid conversation id is required."));
        if (ContentOf(args.Content) is not { } content) return Fail(Rejection.Invalid("content", "Required: a text, or {type, text}."));
        if (args.MessageId is not null && !Ids.IsValid(args.MessageId)) return Fail(Rejection.Invalid("message_id", "Not a valid message id."));
        // The id is fixed before the message is submitted, so a client that hears persist_timeout can retry it safely.
        var messageId = args.MessageId ?? Ids.NewMessageId();
        var submitted = ingest.SubmitAsync(new IngestMessage(caller.TenantId, args.ConversationId!, caller.UserId, messageId, content, IngestSource.Hub));
        IngestOutcome outcome;
        try
        {
            outcome = await submitted.WaitAsync(Settings.PersistTimeout);
        }
        catch (TimeoutException)
        {
            var error = new { code = ErrorCodes.PersistTimeout, message = "Not confirmed in time; retry with the same message_id." };
            connection.Push(HubEvents.MessagePersistFailed, new { conversation_id = args.ConversationId, message_id = messageId, error });
            return new { success = false, message_id = messageId, error };
        }
        switch (outcome)
        {
            case Persisted { Ack: var ack }:
                connection.Push(HubEvents.MessagePersisted, new { conversation_id = ack.ConversationId, message_id = ack.MessageId, seq = ack.Seq });
                return new
                {
                    success = true, message_id = ack.MessageId, conversation_id = ack.ConversationId, seq = ack.Seq,
                    created_at = Views.Utc(ack.CreatedAt), repeat = ack.Repeat,
                };
            case Rejected { Rejection: var r }:
                return Fail(r, messageId);
            default:
                throw new InvalidOperationException("Unknown ingest outcome.");
        }
    });

    public Task<object> EditMessage(EditMessageArgs args) => Guard(async (_, caller) =>
    {
        if (!Ids.IsValid(args.ConversationId) || args.Seq is not { } seq) return Fail(Rejection.NotFound("message"));
        if (ContentOf(args.Content) is not { } content) return Fail(Rejection.Invalid("content", "Required: a text, or {type, text}."));
        var tenant = await gateway.TenantSettingsAsync(caller.TenantId);
        if (content.Text?.Length > tenant.MaxMessageChars)
            return Fail(new Rejection(ErrorCodes.PayloadTooLarge, $"A message is at most {tenant.MaxMessageChars} characters."));
        return Changed(await gateway.AskAsync(new EditMessage(caller.TenantId, args.ConversationId!, caller.UserId, seq, content)), args.ConversationId!);
    });

    public Task<object> DeleteMessage(MessageArgs args) => Guard(async (_, caller) =>
        !Ids.IsValid(args.ConversationId) || args.Seq is not { } seq
            ? Fail(Rejection.NotFound("message"))
            : Changed(await gateway.AskAsync(new DeleteMessage(caller.TenantId, args.ConversationId!, caller.UserId, seq)), args.ConversationId!));

    public Task<object> React(ReactionArgs args) => Guard(async (_, caller) =>
    {
        if (!Ids.IsValid(args.ConversationId) || args.Seq is not { } seq) return Fail(Rejection.NotFound("message"));
        if (string.IsNullOrWhiteSpace(args.Reaction) || args.Reaction.Length > ConversationDecider.MaxReactionLength)
            return Fail(Rejection.Invalid("reaction", $"1 to {ConversationDecider.MaxReactionLength} characters."));
        return Changed(await gateway.AskAsync(new AddReaction(caller.TenantId, args.ConversationId!, caller.UserId, seq, args.Reaction)),
            args.ConversationId!);
    });

    public Task<object> Unreact(ReactionArgs args) => Guard(async (_, caller) =>
        !Ids.IsValid(args.ConversationId) || args.Seq is not { } seq || string.IsNullOrEmpty(args.Reaction)
            ? Fail(Rejection.NotFound("reaction"))
            : Changed(await gateway.AskAsync(new RemoveReaction(caller.TenantId, args.ConversationId!, caller.UserId, seq, args.Reaction)),
                args.ConversationId!));

    /// <summary>Tells the room's other connections that the caller is typing; only from a room the connection has joined.</summary>
    public Task<object> Typing(RoomArgs args) => Guard((connection, caller) =>
    {
        var id = args.ConversationId ?? string.Empty;
        if (!connection.Rooms.ContainsKey(id)) return Task.FromResult(Fail(Rejection.NotFound("room")));
        // Coalesced here so a spammer costs no fan-out; each room feed coalesces per user again (several connections).
        var relayed = connection.TypingDue(id, DateTimeOffset.UtcNow, Settings.TypingWindow);
        if (relayed) relay.Publish(Signal(caller, id, RoomSignalKinds.Typing, null, connection.Id));
        return Task.FromResult<object>(new { success = true, conversation_id = id, relayed });
    });

    /// <summary>Stores the caller's read marker (UserSession) and tells the room.</summary>
    public Task<object> MarkRead(MessageArgs args) => Guard(async (connection, caller) =>
    {
        var (id, seq, problem) = await ReceiptAsync(args, caller);
        if (problem is not null) return problem;
        var reply = await gateway.AskAsync(new MarkRead(caller.TenantId, caller.UserId, id, seq));
        if (reply is Rejection r) return Fail(r);
        var marked = reply is ReadMarker m ? m.Seq : seq;
        relay.Publish(Signal(caller, id, RoomSignalKinds.ReadReceipt, marked, connection.Id));
        return new { success = true, conversation_id = id, seq = marked };
    });

    /// <summary>
    /// With <c>event_seq</c>: the caller's clients have every event of the conversation up to it (cumulative). Saved as
    /// the user's delivered marker and sent to the room as a <c>delivered</c> receipt, both at most about once a second
    /// per user and conversation (<see cref="DeliveryTracker"/>). With <c>seq</c> only: a live receipt, not stored.
    /// </summary>
    public Task<object> MarkDelivered(DeliveredArgs args) => Guard(async (connection, caller) =>
    {
        if (args.EventSeq is { } eventSeq)
        {
            if (!Ids.IsValid(args.ConversationId)) return Fail(Rejection.NotFound());
            if (eventSeq < 1) return Fail(Rejection.Invalid("event_seq", "An event_seq the hub sent, 1 or more."));
            // A connection in the room acknowledging what the hub sent it needs no check (the usual case, about once a
            // second per room); anything else asks the conversation whether the user may read it and the event exists.
            if (!(connection.Rooms.ContainsKey(args.ConversationId!) && connection.WasSent(args.ConversationId!, eventSeq)))
            {
                var access = await gateway.AskAsync(new GetReadAccess(caller.TenantId, args.ConversationId!, caller.UserId));
                if (access is Rejection denied) return Fail(denied);
                if (access is ReadAccess { JournalSeq: var last } && eventSeq > last) return Fail(Rejection.Invalid("event_seq", "No such event yet."));
            }
            relay.Deliveries.Acknowledge(caller.TenantId, caller.UserId, args.ConversationId!, eventSeq);
            // A connection in the room that acknowledges is tracked from now on: what it does not acknowledge comes again.
            if (connection.Rooms.ContainsKey(args.ConversationId!)) connection.Acknowledge(args.ConversationId!, eventSeq, DateTimeOffset.UtcNow);
            return new { success = true, conversation_id = args.ConversationId, event_seq = eventSeq };
        }
        var (id, seq, problem) = await ReceiptAsync(new MessageArgs(args.ConversationId, args.Seq), caller);
        if (problem is not null) return problem;
        relay.Publish(Signal(caller, id, RoomSignalKinds.Delivered, seq, connection.Id));
        return new { success = true, conversation_id = id, seq };
    });

    /// <summary>Newest first, or oldest first after <c>after_seq</c> (catch-up after a reconnect), as REST's message list.</summary>
    public Task<object> GetHistory(HistoryArgs args) => Guard(async (_, caller) =>
    {
        if (!Ids.IsValid(args.ConversationId)) return Fail(Rejection.NotFound());
        var id = args.ConversationId!;
        var limit = args.Limit ?? 50;
        if (limit < 1 || limit > Settings.MaxHistoryPage) return Fail(Rejection.Invalid("limit", $"Between 1 and {Settings.MaxHistoryPage}."));
        if (args.AfterSeq is < 0) return Fail(Rejection.Invalid("after_seq", "Zero or more."));
        // A history page costs what a REST request costs: a per-client budget of the REST size.
        if (requests.TryAcquire(caller) is { } wait) return RateLimited(wait, "Over this client's request limit.");
        long? before = null, after = args.AfterSeq;
        if (args.Cursor is not null)
        {
            if (Cursor.TryDecode(args.Cursor, "b", out var b) && long.TryParse(b, CultureInfo.InvariantCulture, out var bs)) before = bs;
            else if (Cursor.TryDecode(args.Cursor, "a", out var a) && long.TryParse(a, CultureInfo.InvariantCulture, out var @as)) after = @as;
            else return Fail(Rejection.Invalid("cursor", "Not a cursor this API issued."));
        }
        var access = await gateway.AskAsync(new GetReadAccess(caller.TenantId, id, caller.UserId));
        if (access is Rejection r) return Fail(r);
        // The same read as REST's list: waits for the read model to hold every acknowledged write, else merges the journal's tail.
        var rows = await gateway.ReadYourWrites.MessagesAsync(caller.TenantId, id, (ReadAccess)access, limit, before, after, Context.ConnectionAborted);
        string? next = rows.Count < limit ? null
            : after is not null ? Cursor.Encode("a", rows[^1].Seq.ToString(CultureInfo.InvariantCulture))
            : rows[^1].Seq > 1 ? Cursor.Encode("b", rows[^1].Seq.ToString(CultureInfo.InvariantCulture)) : null;
        return new { success = true, conversation_id = id, items = rows.Select(Views.Message), next_cursor = next };
    });

    /// <summary>A user's presence in the caller's tenant, from the UserSession entity.</summary>
    public Task<object> GetPresence(UserArgs args) => Guard(async (_, caller) =>
    {
        if (!Ids.IsValid(args.UserId)) return Fail(Rejection.Invalid("user_id", "Not a valid user id."));
        var reply = await gateway.AskAsync(new GetPresence(caller.TenantId, args.UserId!));
        return reply is PresenceView p
            ? new { success = true, user_id = p.UserId, status = p.Status, last_seen = p.LastSeen is { } t ? Views.Utc(t) : null }
            : Fail(reply as Rejection ?? new Rejection(ErrorCodes.Overloaded, "No answer."));
    });

    private async Task<(string Id, long Seq, object? Problem)> ReceiptAsync(MessageArgs args, Caller caller)
    {
        if (!Ids.IsValid(args.ConversationId)) return (string.Empty, 0, Fail(Rejection.NotFound()));
        if (args.Seq is not { } seq || seq < 1) return (string.Empty, 0, Fail(Rejection.Invalid("seq", "A message sequence number, 1 or more.")));
        var access = await gateway.AskAsync(new GetReadAccess(caller.TenantId, args.ConversationId!, caller.UserId));
        if (access is Rejection r) return (string.Empty, 0, Fail(r));
        if (seq > ((ReadAccess)access).LastSeq) return (string.Empty, 0, Fail(Rejection.Invalid("seq", "No such message yet.")));
        return (args.ConversationId!, seq, null);
    }

    private void LeaveLiveRoom(ChatConnection connection, string conversationId, bool announce = true)
    {
        var wasIn = connection.Rooms.TryRemove(conversationId, out _);
        connection.LeftRoom(conversationId);
        var caller = connection.Caller;
        // Told even when an eviction already cleared the flag, so the feed surely drops the connection.
        relay.Actor.Tell(new Relay.Leave(caller.TenantId, conversationId, connection.Id), ActorRefs.NoSender);
        if (wasIn && announce) relay.Publish(Signal(caller, conversationId, RoomSignalKinds.MemberLeft, null, connection.Id));
    }

    private RoomSignal Signal(Caller caller, string conversationId, string kind, long? seq, string? connectionId = null) =>
        new(caller.TenantId, conversationId, kind, caller.UserId, connectionId ?? Context.ConnectionId, relay.NodeAddress, seq, DateTimeOffset.UtcNow);

    /// <summary>When the token expires the client hears <c>sessionExpired</c>, then the connection closes.</summary>
    private void ScheduleExpiry(ChatConnection connection)
    {
        if (!long.TryParse(Context.User?.FindFirst("exp")?.Value, CultureInfo.InvariantCulture, out var exp)) return;
        var left = DateTimeOffset.FromUnixTimeSeconds(exp) - DateTimeOffset.UtcNow;
        if (left > TimeSpan.FromDays(24)) return; // beyond Task.Delay's range; such tokens are not issued here
        var aborted = Context.ConnectionAborted;
        _ = Task.Delay(left < TimeSpan.Zero ? TimeSpan.Zero : left, aborted).ContinueWith(t =>
        {
            if (t.IsCanceled) return;
            connection.PushThenClose(HubEvents.SessionExpired, new { code = "token_expired", message = "The access token has expired; reconnect with a new one." },
                "token_expired");
        }, TaskScheduler.Default);
    }

    private async Task<object> Guard(Func<ChatConnection, Caller, Task<object>> body, [CallerMemberName] string method = "")
    {
        if (connections.Find(Context.ConnectionId) is not { } connection)
            return Fail(new Rejection(ErrorCodes.Unauthenticated, "The connection is not signed in."));
        if (limiter.TryAcquire(connection.Id, method) is { } wait) return RateLimited(wait, $"Too many {method} calls on this connection.");
        try
        {
            return await body(connection, connection.Caller);
        }
        catch (Exception e) when (Caas.Streams.ReadModel.StoreBreaker.IsOutage(e))
        {
            return Fail(new Rejection(ErrorCodes.Unavailable, "The database is unavailable; retry shortly.", RetryAfterSeconds: 2));
        }
        catch (Exception e)
        {
            log.LogError(e, "Hub call of {UserId} failed", connection.Caller.UserId);
            return Fail(new Rejection("internal_error", "Something went wrong; retry."));
        }
    }

    private static object Changed(object reply, string conversationId) => reply switch
    {
        Rejection r => Fail(r),
        MessageChanged c => new { success = true, message = Views.Message(c, conversationId, null) },
        _ => Fail(new Rejection(ErrorCodes.Overloaded, "No answer.")),
    };

    private static MessageContent? ContentOf(JsonElement? content) => content switch
    {
        { ValueKind: JsonValueKind.String } s => new MessageContent("text", s.GetString()),
        { ValueKind: JsonValueKind.Object } o => Caas.Streams.Pipeline.MessageContentJson.ReadObject(o,
            o.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "text"),
        _ => null,
    };

    /// <summary>Over a limit: <c>rate_limited</c> with when to try again, in milliseconds (and whole seconds, as REST's Retry-After).</summary>
    public static object RateLimited(TimeSpan retryAfter, string message) => new
    {
        success = false,
        error = new
        {
            code = ErrorCodes.RateLimited, message,
            retry_after_ms = (long)Math.Ceiling(retryAfter.TotalMilliseconds),
            retry_after_seconds = (int)Math.Ceiling(retryAfter.TotalSeconds),
        },
    };

    public static object Fail(Rejection r, string? messageId = null) => new
    {
        success = false,
        message_id = messageId,
        error = new { code = r.Code, message = r.Message, errors = r.Errors, retry_after_seconds = r.RetryAfterSeconds },
    };
}
