using System.Text.Json;
using Caas.Actors.Common;

namespace Caas.Actors.Calls;

/// <summary>
/// A hub event for some users of a tenant, wherever their connections are: published cluster-wide on
/// <see cref="CallNotices.Topic"/>; every node delivers it to its own connections of <see cref="Recipients"/> (all
/// of them, joined to the conversation's room or not), except <see cref="ExceptConnectionId"/>.
/// </summary>
public sealed record CallNotice(string TenantId, IReadOnlyList<string> Recipients, string Event, string PayloadJson,
    string? ExceptConnectionId = null) : ICaasMessage;

/// <summary>The hub events a call's events become, and who hears them.</summary>
public static class CallNotices
{
    /// <summary>The DistributedPubSub topic every node's delivery actor subscribes to.</summary>
    public const string Topic = "caas-call-notices";

    public const string Ringing = "callRinging", Accepted = "callAccepted", AnsweredElsewhere = "callAnsweredElsewhere",
        Declined = "callDeclined", Joined = "participantJoined", Left = "participantLeft", Missed = "callMissed",
        Ended = "callEnded", Signal = "signal", Busy = "participantBusy",
        RecordingConsentRequested = "recordingConsentRequested", RecordingConsented = "recordingConsented", RecordingStarted = "recordingStarted",
        RecordingStopped = "recordingStopped", RecordingDeclined = "recordingDeclined";

    private static object ConsentRequest(string callId, string conversationId, ActiveRecording r, IEnumerable<string> awaiting, DateTimeOffset deadline,
        DateTimeOffset now) => new
    {
        call_id = callId, conversation_id = conversationId, recording_id = r.RecordingId, requested_by = r.RequestedBy, awaiting = awaiting.ToList(),
        deadline, timeout_seconds = Math.Max(0, Math.Round((deadline - now).TotalSeconds, 1)),
    };

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static CallNotice Of(string tenantId, IEnumerable<string> recipients, string name, object payload, string? exceptConnectionId = null) =>
        new(tenantId, [.. recipients.Distinct()], name, JsonSerializer.Serialize(payload, Json), exceptConnectionId);

    /// <param name="before">The state before the event (who was in the call).</param>
    /// <param name="connectionId">The connection that answered (its own user's other connections stop ringing).</param>
    public static IEnumerable<CallNotice> For(ICallEvent e, CallRoomState before, string conversationId, string? connectionId = null)
    {
        var t = e.Meta.TenantId;
        var everyone = before.Active?.Participants.Keys.ToList() ?? [];
        var joined = before.Active?.Joined.ToList() ?? [];
        switch (e)
        {
            case CallStarted s:
                yield return Of(t, s.Ringing, Ringing, new { call_id = s.CallId, conversation_id = conversationId, from_user_id = s.StartedBy, media = s.Media });
                break;
            case CallParticipantJoined j:
                yield return Of(t, everyone.Where(u => u != j.UserId), Accepted, new { call_id = j.CallId, conversation_id = conversationId, user_id = j.UserId });
                yield return Of(t, joined.Where(u => u != j.UserId), Joined, new { call_id = j.CallId, conversation_id = conversationId, user_id = j.UserId });
                if (connectionId is not null)
                    yield return Of(t, [j.UserId], AnsweredElsewhere, new { call_id = j.CallId, conversation_id = conversationId }, connectionId);
                // Joining while consents are awaited: the joiner is asked too (a recorded call stops first: see CallRecordingStopped).
                if (before.Active?.Recording is { Phase: not RecordingPhase.Recording } asking && !CallRoomState.Consented(asking, j.UserId))
                    yield return Of(t, [j.UserId], RecordingConsentRequested,
                        ConsentRequest(j.CallId, conversationId, asking, asking.Awaiting.Add(j.UserId), asking.Deadline, j.Meta.OccurredAt));
                break;
            case CallRecordingRequested q:
                yield return Of(t, joined, RecordingConsentRequested, new
                {
                    call_id = q.CallId, conversation_id = conversationId, recording_id = q.RecordingId, requested_by = q.RequestedBy, awaiting = q.Awaiting,
                    deadline = q.Deadline, timeout_seconds = Math.Max(0, Math.Round((q.Deadline - q.Meta.OccurredAt).TotalSeconds, 1)),
                });
                break;
            case CallRecordingConsented c:
                yield return Of(t, joined, RecordingConsented,
                    new { call_id = c.CallId, conversation_id = conversationId, recording_id = c.RecordingId, user_id = c.UserId, consent = c.Consent });
                break;
            case CallRecordingStarted st:
                yield return Of(t, joined, RecordingStarted, new
                {
                    call_id = st.CallId, conversation_id = conversationId, recording_id = st.RecordingId, requested_by = before.Active?.Recording?.RecordingId == st.RecordingId
                        ? before.Active.Recording.RequestedBy
                        : null,
                });
                break;
            case CallRecordingStopped p:
                yield return Of(t, joined, RecordingStopped, new
                {
                    call_id = p.CallId, conversation_id = conversationId, recording_id = p.RecordingId, reason = p.Reason, by = p.By, awaiting = p.Awaiting ?? [],
                });
                if (p is { Reason: RecordingReasons.ConsentPending, Awaiting: { } newcomers, Deadline: { } due } && before.Active?.Recording is { } paused)
                    yield return Of(t, newcomers, RecordingConsentRequested, ConsentRequest(p.CallId, conversationId, paused, newcomers, due, p.Meta.OccurredAt));
                break;
            case CallRecordingDeclined d:
                yield return Of(t, joined, RecordingDeclined,
                    new { call_id = d.CallId, conversation_id = conversationId, recording_id = d.RecordingId, reason = d.Reason, user_ids = d.UserIds });
                break;
            case CallParticipantDeclined { Reason: CallReasons.Busy } b:
                yield return Of(t, everyone, Busy, new { call_id = b.CallId, conversation_id = conversationId, user_id = b.UserId });
                break;
            case CallParticipantDeclined d:
                yield return Of(t, everyone, Declined, new { call_id = d.CallId, conversation_id = conversationId, user_id = d.UserId });
                break;
            case CallParticipantLeft l:
                yield return Of(t, everyone.Where(u => u != l.UserId), Left, new { call_id = l.CallId, conversation_id = conversationId, user_id = l.UserId, reason = l.Reason });
                break;
            case CallMissed m:
                yield return Of(t, m.UserIds, Missed, new { call_id = m.CallId, conversation_id = conversationId });
                break;
            case CallEnded x:
                yield return Of(t, everyone, Ended, new
                {
                    call_id = x.CallId, conversation_id = conversationId, reason = x.Reason, ended_by = x.EndedBy,
                    duration_seconds = x.DurationSeconds, participants = x.Participants, quality = CallQuality.View(x.Quality),
                });
                break;
        }
    }
}
