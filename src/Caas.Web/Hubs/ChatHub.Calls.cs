using System.Text.Json;
using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Calls;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Web.Auth;

namespace Caas.Web.Hubs;

public sealed record StartCallArgs(string? ConversationId, string? Media);
public sealed record CallArgs(string? CallId);
public sealed record SignalArgs(string? CallId, string? ToUserId, string? Kind, JsonElement? Payload);
/// <summary>The metrics arrive as raw JSON, so a string or an object where a number belongs is a validation error, not a binding failure.</summary>
public sealed record QualityArgs(string? CallId, JsonElement? RttMs, JsonElement? JitterMs, JsonElement? PacketLossPct, JsonElement? BitrateKbps);

/// <summary>The distribution of reported call quality, over every call of the node (no per-call or per-user label).</summary>
public static class CallQualityMetrics
{
    private static readonly Prometheus.Histogram Rtt = Prometheus.Metrics.CreateHistogram("caas_call_quality_rtt_ms", "Reported call round-trip times (ms).",
        new Prometheus.HistogramConfiguration { Buckets = [10, 25, 50, 100, 150, 200, 300, 500, 1000, 2000] });
    private static readonly Prometheus.Histogram Jitter = Prometheus.Metrics.CreateHistogram("caas_call_quality_jitter_ms", "Reported call jitter (ms).",
        new Prometheus.HistogramConfiguration { Buckets = [1, 5, 10, 20, 30, 50, 100, 200] });
    private static readonly Prometheus.Histogram Loss = Prometheus.Metrics.CreateHistogram("caas_call_quality_packet_loss_pct", "Reported call packet loss (%).",
        new Prometheus.HistogramConfiguration { Buckets = [0.1, 0.5, 1, 2, 5, 10, 20, 50] });
    private static readonly Prometheus.Histogram Bitrate = Prometheus.Metrics.CreateHistogram("caas_call_quality_bitrate_kbps", "Reported call bitrates (kbit/s).",
        new Prometheus.HistogramConfiguration { Buckets = [32, 64, 128, 256, 512, 1000, 2000, 4000, 8000] });
    private static readonly Prometheus.Counter Reports = Prometheus.Metrics.CreateCounter("caas_call_quality_reports_total", "Call quality reports accepted.");

    public static void Observe(CallQualitySample s)
    {
        Reports.Inc();
        if (s.RttMs is { } r) Rtt.Observe(r);
        if (s.JitterMs is { } j) Jitter.Observe(j);
        if (s.PacketLossPct is { } l) Loss.Observe(l);
        if (s.BitrateKbps is { } b) Bitrate.Observe(b);
    }
}

/// <summary>
/// Call signaling. A call belongs to a conversation (<see cref="CallRoomActor"/>, event-sourced); members are checked
/// with the conversation entity first. Events reach every connection of the users concerned, on any node
/// (<see cref="CallNoticeDelivery"/>): <c>callRinging</c>, <c>callAccepted</c>, <c>callAnsweredElsewhere</c>,
/// <c>callDeclined</c>, <c>participantJoined</c>, <c>participantLeft</c>, <c>callMissed</c>, <c>callEnded</c>,
/// <c>signal</c>. The shard region comes in as a hub-method service parameter, so the constructor is untouched.
/// </summary>
public sealed partial class ChatHub
{
    /// <summary>The largest signal payload (an SDP or an ICE candidate) relayed, in bytes of JSON.</summary>
    public const int MaxSignalPayloadBytes = 16 * 1024;

    private static readonly TimeSpan CallAskTimeout = TimeSpan.FromSeconds(10);

    public Task<object> StartCall(StartCallArgs args, IRequiredActor<CallRoomRegion> calls, CallConnections tracker) => Guard(async (_, caller) =>
    {
        if (!Ids.IsValid(args.ConversationId)) return Fail(Rejection.NotFound());
        if (!CallMedia.IsKnown(args.Media)) return Fail(Rejection.Invalid("media", "audio or video."));
        var reply = await gateway.AskAsync(new GetConversation(caller.TenantId, args.ConversationId!, caller.UserId), Context.ConnectionAborted);
        if (reply is Rejection r) return Fail(r);
        var members = ((ConversationView)reply).Members.Select(m => m.UserId).ToList();
        var callId = CallIds.New(args.ConversationId!);
        var busy = await BusyAsync(calls, caller, members);
        var answer = await AskCallsAsync(calls, new StartCall(caller.TenantId, args.ConversationId!, caller.UserId, callId, args.Media!, members, busy));
        if (answer is CallReply) Track(tracker, caller, args.ConversationId!, callId, joined: true);
        return Answer(answer);
    });

    public Task<object> AcceptCall(CallArgs args, IRequiredActor<CallRoomRegion> calls, CallConnections tracker) =>
        CallCommand(args.CallId, calls, tracker, (caller, conversation, _) => new AcceptCall(caller.TenantId, conversation, caller.UserId, args.CallId!, Context.ConnectionId),
            joined: true);

    public Task<object> DeclineCall(CallArgs args, IRequiredActor<CallRoomRegion> calls, CallConnections tracker) =>
        CallCommand(args.CallId, calls, tracker, (caller, conversation, _) => new DeclineCall(caller.TenantId, conversation, caller.UserId, args.CallId!));

    public Task<object> LeaveCall(CallArgs args, IRequiredActor<CallRoomRegion> calls, CallConnections tracker) =>
        CallCommand(args.CallId, calls, tracker, (caller, conversation, _) => new LeaveCall(caller.TenantId, conversation, caller.UserId, args.CallId!),
            joined: false);

    /// <summary>Ends the call for everyone: the caller's right, or a moderator's (their role in the conversation).</summary>
    public Task<object> EndCall(CallArgs args, IRequiredActor<CallRoomRegion> calls, CallConnections tracker) =>
        CallCommand(args.CallId, calls, tracker, (caller, conversation, role) => new EndCall(caller.TenantId, conversation, caller.UserId, args.CallId!, role),
            joined: false);

    /// <summary>Relays an SDP offer/answer or an ICE candidate to another participant's connections, wherever they are.</summary>
    public Task<object> SendSignal(SignalArgs args, IRequiredActor<CallRoomRegion> calls, ActorSystem system) => Guard(async (connection, caller) =>
    {
        if (args.Kind is not ("offer" or "answer" or "ice")) return Fail(Rejection.Invalid("kind", "offer, answer or ice."));
        if (!Ids.IsValid(args.ToUserId)) return Fail(Rejection.Invalid("to_user_id", "A user id."));
        if (args.Payload is not { ValueKind: not JsonValueKind.Undefined and not JsonValueKind.Null } payload)
            return Fail(Rejection.Invalid("payload", "The SDP or ICE candidate."));
        if (payload.GetRawText().Length > MaxSignalPayloadBytes)
            return Fail(new Rejection(ErrorCodes.PayloadTooLarge, $"A signal payload is at most {MaxSignalPayloadBytes} bytes."));
        var checkedCall = await CheckedAsync(args.CallId, caller);
        if (checkedCall.Problem is not null) return checkedCall.Problem;
        var reply = await AskCallsAsync(calls, new CheckSignal(caller.TenantId, checkedCall.ConversationId, caller.UserId, args.CallId!, args.ToUserId!));
        if (reply is Rejection r) return Fail(r);
        CallNoticeDelivery.Publish(system, CallNotices.Of(caller.TenantId, [args.ToUserId!], CallNotices.Signal, new
        {
            call_id = args.CallId, from_user_id = caller.UserId, from_connection_id = connection.Id, kind = args.Kind, payload,
        }));
        return new { success = true, call_id = args.CallId };
    });

    /// <summary>
    /// A joined participant's quality report (the browser's <c>getStats</c>): <c>{call_id, rtt_ms, jitter_ms,
    /// packet_loss_pct, bitrate_kbps}</c>, each optional but one, each within its range (<see cref="CallQuality"/>).
    /// Aggregated per participant by the call entity; observed into the <c>caas_call_quality_*</c> histograms.
    /// </summary>
    public Task<object> ReportCallQuality(QualityArgs args, IRequiredActor<CallRoomRegion> calls) => Guard(async (_, caller) =>
    {
        var notNumbers = new Dictionary<string, string[]>();
        double? Number(JsonElement? e, string name)
        {
            if (e is not { } v || v.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d)) return d;
            notNumbers[name] = ["A number."];
            return null;
        }
        var sample = new CallQualitySample(Number(args.RttMs, "rtt_ms"), Number(args.JitterMs, "jitter_ms"),
            Number(args.PacketLossPct, "packet_loss_pct"), Number(args.BitrateKbps, "bitrate_kbps"));
        if (notNumbers.Count > 0) return Fail(new Rejection(ErrorCodes.ValidationFailed, "The quality report is not valid.", notNumbers));
        if (CallQuality.Validate(sample) is { } invalid) return Fail(invalid);
        var checkedCall = await CheckedAsync(args.CallId, caller);
        if (checkedCall.Problem is not null) return checkedCall.Problem;
        var reply = await AskCallsAsync(calls, new ReportCallQuality(caller.TenantId, checkedCall.ConversationId, caller.UserId, args.CallId!, sample));
        if (reply is not Done) return Answer(reply);
        CallQualityMetrics.Observe(sample);
        return new { success = true, call_id = args.CallId };
    });

    /// <summary>
    /// The members already joined in a call (busy): asked of the tenant's presence index. If it does not answer in
    /// time the call rings everyone, as it did before busy existed.
    /// </summary>
    private async Task<IReadOnlyList<string>> BusyAsync(IRequiredActor<CallRoomRegion> calls, Caller caller, List<string> members)
    {
        var others = members.Where(m => m != caller.UserId).ToList();
        if (others.Count == 0) return [];
        try
        {
            var busy = await calls.ActorRef.Ask<BusyUsers>(new GetBusyUsers(caller.TenantId, others), CallAskTimeout, Context.ConnectionAborted);
            return [.. busy.CallByUser.Keys];
        }
        catch (AskTimeoutException)
        {
            return [];
        }
    }

    /// <param name="joined">After success: true, this connection is the caller's in the call; false, it is not any more; null, unchanged.</param>
    private Task<object> CallCommand(string? callId, IRequiredActor<CallRoomRegion> calls, CallConnections? tracker, Func<Caller, string, Role, ICallCommand> command,
        bool? joined = null) =>
        Guard(async (_, caller) =>
        {
            var checkedCall = await CheckedAsync(callId, caller);
            if (checkedCall.Problem is not null) return checkedCall.Problem;
            var answer = await AskCallsAsync(calls, command(caller, checkedCall.ConversationId, checkedCall.Role));
            if (answer is CallReply && joined is { } j) Track(tracker!, caller, checkedCall.ConversationId, callId!, j);
            return Answer(answer);
        });

    /// <summary>Remembers which connection is the caller's in a call, so its disconnect leaves the call (<see cref="CallDisconnects"/>).</summary>
    private void Track(CallConnections tracker, Caller caller, string conversationId, string callId, bool joined)
    {
        if (joined) tracker.Joined(caller, conversationId, callId, Context.ConnectionId);
        else tracker.Gone(caller, conversationId, callId);
    }

    /// <summary>The call id's conversation, when the caller is a member of it (their role with it); else not_found.</summary>
    private async Task<(string ConversationId, Role Role, object? Problem)> CheckedAsync(string? callId, Caller caller)
    {
        if (!CallIds.TryParse(callId, out var conversation)) return (string.Empty, Role.Member, Fail(Rejection.NotFound("call")));
        var access = await gateway.AskAsync(new GetReadAccess(caller.TenantId, conversation, caller.UserId), Context.ConnectionAborted);
        if (access is Rejection) return (string.Empty, Role.Member, Fail(Rejection.NotFound("call")));
        return (conversation, ((ReadAccess)access).Role, null);
    }

    private async Task<object> AskCallsAsync(IRequiredActor<CallRoomRegion> calls, ICallCommand command)
    {
        try
        {
            return await calls.ActorRef.Ask<object>(command, CallAskTimeout, Context.ConnectionAborted);
        }
        catch (AskTimeoutException)
        {
            return new Rejection(ErrorCodes.Overloaded, "The cluster did not answer in time; retry.", RetryAfterSeconds: 1);
        }
    }

    private static object Answer(object reply) => reply switch
    {
        CallReply c => new
        {
            success = true, call_id = c.CallId, status = c.Status, joined = c.Joined, ringing = c.Ringing, end_reason = c.EndReason,
            recording = c.Recording is { } r ? RecordingView(r) : null,
        },
        RecordingReply r => new
        {
            success = true, call_id = r.CallId, recording_id = r.RecordingId, status = r.Status, awaiting = r.Awaiting,
            consents = ConsentsView(r.Consents),
        },
        Rejection r => Fail(r),
        _ => Fail(new Rejection(ErrorCodes.Overloaded, "No answer.")),
    };
}
