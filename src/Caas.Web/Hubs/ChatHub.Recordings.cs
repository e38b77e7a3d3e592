using System.Text.Json;
using Akka.Hosting;
using Caas.Actors.Calls;
using Caas.Actors.Common;

namespace Caas.Web.Hubs;

/// <summary><c>ConsentRecording</c>: <c>consent</c> as raw JSON, so a string where a boolean belongs is a validation error, not a binding failure.</summary>
public sealed record ConsentArgs(string? CallId, string? RecordingId, JsonElement? Consent, string? UserId);

/// <summary>
/// Recording a call with every participant's consent (<see cref="CallRecordingRules"/>): <c>RequestRecording</c>,
/// <c>ConsentRecording</c>, <c>StopRecording</c>. Events to the call's joined participants: <c>recordingConsentRequested</c>,
/// <c>recordingConsented</c>, <c>recordingStarted</c>, <c>recordingStopped</c>, <c>recordingDeclined</c>. The requester's
/// client records and uploads the bytes through the media API with the recording id.
/// </summary>
public sealed partial class ChatHub
{
    /// <summary>Asks every joined participant to consent to recording the call (asking is the caller's own consent).</summary>
    public Task<object> RequestRecording(CallArgs args, IRequiredActor<CallRoomRegion> calls) =>
        CallCommand(args.CallId, calls, null, (caller, conversation, _) => new RequestRecording(caller.TenantId, conversation, caller.UserId, args.CallId!,
            RecordingIds.New()));

    /// <summary>The caller's own answer to a recording request: <c>{call_id, recording_id, consent: true|false}</c>.</summary>
    public Task<object> ConsentRecording(ConsentArgs args, IRequiredActor<CallRoomRegion> calls) => Guard(async (_, caller) =>
    {
        // Only one's own consent: a user_id naming anyone else is refused before anything is asked.
        if (args.UserId is not null && args.UserId != caller.UserId)
            return Fail(Rejection.Forbidden("A participant answers for themselves only."));
        if (args.Consent is not { ValueKind: JsonValueKind.True or JsonValueKind.False } consent)
            return Fail(Rejection.Invalid("consent", "true or false."));
        if (!RecordingIds.IsValid(args.RecordingId)) return Fail(Rejection.NotFound("recording"));
        var checkedCall = await CheckedAsync(args.CallId, caller);
        if (checkedCall.Problem is not null) return checkedCall.Problem;
        return Answer(await AskCallsAsync(calls, new ConsentRecording(caller.TenantId, checkedCall.ConversationId, caller.UserId, args.CallId!,
            args.RecordingId!, consent.GetBoolean())));
    });

    /// <summary>Stops the call's recording for good: who asked for it, or a moderator+.</summary>
    public Task<object> StopRecording(CallArgs args, IRequiredActor<CallRoomRegion> calls) =>
        CallCommand(args.CallId, calls, null, (caller, conversation, role) => new StopRecording(caller.TenantId, conversation, caller.UserId, args.CallId!, role));

    /// <summary>A recording as the hub answers it.</summary>
    internal static object RecordingView(RecordingReply r) => new
    {
        call_id = r.CallId, recording_id = r.RecordingId, status = r.Status, awaiting = r.Awaiting,
        consents = ConsentsView(r.Consents),
    };

    internal static IEnumerable<object> ConsentsView(IEnumerable<RecordingConsent> consents) =>
        consents.Select(c => new { user_id = c.UserId, consent = c.Consent, at = c.At, how = c.How });
}
