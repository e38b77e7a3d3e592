using Caas.Actors.Calls;
using Caas.Actors.Common;

namespace Caas.Actors.Tests;

/// <summary>The rules of recording a call with every participant's consent, without an actor.</summary>
public sealed class CallRecordingDeciderTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private const string T = "t1", C = "c1", Call = "call1";
    private static readonly string Rec = RecordingIds.New(), Rec2 = RecordingIds.New();

    private static (CallRoomState State, CallDecision Decision) Run(CallRoomState s, ICallCommand c, double atSeconds = 0)
    {
        var d = CallDecider.Decide(s, c, T0.AddSeconds(atSeconds), Timeout);
        return (d.Events.Aggregate(s, (state, e) => state.Apply(e)), d);
    }

    /// <summary>A call of alice (starter) with <paramref name="joined"/> answered, the others of <paramref name="members"/> ringing.</summary>
    private static CallRoomState InCall(string[] members, params string[] joined)
    {
        var s = Run(CallRoomState.Empty, new StartCall(T, C, "alice", Call, CallMedia.Video, members)).State;
        foreach (var u in joined) s = Run(s, new AcceptCall(T, C, u, Call), 1).State;
        return s;
    }

    private static string Code(CallDecision d) => Assert.IsType<Rejection>(d.Reply).Code;

    private static RecordingReply Reply(CallDecision d) => Assert.IsType<RecordingReply>(d.Reply);

    [Fact]
    public void Recording_starts_only_when_every_joined_participant_has_consented()
    {
        var s = InCall(["alice", "bob", "carol"], "bob", "carol");
        var (asked, d) = Run(s, new RequestRecording(T, C, "alice", Call, Rec), 2);
        var requested = Assert.IsType<CallRecordingRequested>(Assert.Single(d.Events));
        Assert.Equal(["bob", "carol"], requested.Awaiting);
        Assert.Equal(T0.AddSeconds(32), requested.Deadline);
        Assert.Equal("pending", Reply(d).Status);
        Assert.Equal("alice", Assert.Single(Reply(d).Consents).UserId); // asking is consenting

        var (one, d1) = Run(asked, new ConsentRecording(T, C, "bob", Call, Rec, true), 5);
        Assert.IsType<CallRecordingConsented>(Assert.Single(d1.Events));
        Assert.Equal(["carol"], Reply(d1).Awaiting);
        var (both, d2) = Run(one, new ConsentRecording(T, C, "carol", Call, Rec, true), 6);
        Assert.Collection(d2.Events, e => Assert.IsType<CallRecordingConsented>(e), e => Assert.IsType<CallRecordingStarted>(e));
        Assert.Equal("recording", Reply(d2).Status);
        Assert.Equal(RecordingPhase.Recording, both.Active!.Recording!.Phase);
        Assert.Equal(["alice", "bob", "carol"], both.FindRecording(Rec)!.Consents.Select(c => c.UserId));

        // Consenting again changes nothing.
        Assert.Empty(Run(both, new ConsentRecording(T, C, "bob", Call, Rec, true), 7).Decision.Events);

        // The call ends: the recording stops with it, and its duration is the time recorded.
        var (ended, d3) = Run(both, new EndCall(T, C, "alice", Call, Role.Owner), 66);
        Assert.IsType<CallRecordingStopped>(d3.Events[0]);
        Assert.Equal(RecordingReasons.CallEnded, ((CallRecordingStopped)d3.Events[0]).Reason);
        Assert.IsType<CallEnded>(d3.Events[^1]);
        var info = ended.FindRecording(Rec)!;
        Assert.Equal("recorded", info.Status);
        Assert.Equal(60, info.DurationSeconds, 3);
        Assert.Equal(T0.AddSeconds(6), info.StartedAt);
        Assert.Equal(T0.AddSeconds(66), info.EndedAt);
    }

    [Fact]
    public void A_refusal_declines_and_says_who()
    {
        var s = Run(InCall(["alice", "bob", "carol"], "bob", "carol"), new RequestRecording(T, C, "alice", Call, Rec)).State;
        var (after, d) = Run(s, new ConsentRecording(T, C, "carol", Call, Rec, false), 3);
        var declined = Assert.IsType<CallRecordingDeclined>(d.Events[^1]);
        Assert.Equal(RecordingReasons.Refused, declined.Reason);
        Assert.Equal(["carol"], declined.UserIds);
        Assert.Null(after.Active!.Recording);
        Assert.Equal("declined", after.FindRecording(Rec)!.Status);
        // Anyone answering afterwards: 409, the request is over; a new request is possible.
        Assert.Equal(ErrorCodes.Conflict, Code(Run(after, new ConsentRecording(T, C, "bob", Call, Rec, true), 4).Decision));
        Assert.Equal("pending", Reply(Run(after, new RequestRecording(T, C, "bob", Call, Rec2), 5).Decision).Status);
    }

    [Fact]
    public void The_timeout_declines_and_consent_after_it_is_a_conflict()
    {
        var s = Run(InCall(["alice", "bob", "carol"], "bob", "carol"), new RequestRecording(T, C, "alice", Call, Rec)).State;
        s = Run(s, new ConsentRecording(T, C, "bob", Call, Rec, true), 10).State;
        // The timer fires early (a clock a little ahead): nothing happens before the deadline.
        Assert.Empty(Run(s, new RecordingConsentTimedOut(T, C, "system", Call, Rec), 29).Decision.Events);
        var (timedOut, d) = Run(s, new RecordingConsentTimedOut(T, C, "system", Call, Rec), 30);
        var declined = Assert.IsType<CallRecordingDeclined>(Assert.Single(d.Events));
        Assert.Equal(RecordingReasons.Timeout, declined.Reason);
        Assert.Equal(["carol"], declined.UserIds);
        Assert.Equal(ErrorCodes.Conflict, Code(Run(timedOut, new ConsentRecording(T, C, "carol", Call, Rec, true), 31).Decision));

        // Consent arriving after the deadline, before the timer: refused (409), and the request is declined then.
        var (late, dl) = Run(s, new ConsentRecording(T, C, "carol", Call, Rec, true), 31);
        Assert.Equal(ErrorCodes.Conflict, Code(dl));
        Assert.Equal(RecordingReasons.Timeout, Assert.IsType<CallRecordingDeclined>(Assert.Single(dl.Events)).Reason);
        Assert.Null(late.Active!.Recording);
    }

    [Fact]
    public void A_call_of_one_is_not_recorded_and_only_joined_participants_ask()
    {
        var alone = InCall(["alice", "bob"]);
        Assert.Equal(ErrorCodes.Conflict, Code(Run(alone, new RequestRecording(T, C, "alice", Call, Rec)).Decision));
        Assert.Equal(ErrorCodes.Forbidden, Code(Run(alone, new RequestRecording(T, C, "bob", Call, Rec)).Decision)); // still ringing
        Assert.Equal(ErrorCodes.NotFound, Code(Run(alone, new RequestRecording(T, C, "mallory", Call, Rec)).Decision));
        Assert.Equal(ErrorCodes.NotFound, Code(Run(alone, new RequestRecording(T, C, "alice", "other-call", Rec)).Decision));
        var pair = InCall(["alice", "bob"], "bob");
        Assert.Equal(ErrorCodes.ValidationFailed, Code(Run(pair, new RequestRecording(T, C, "alice", Call, "rec_not-hex")).Decision));
        var asked = Run(pair, new RequestRecording(T, C, "alice", Call, Rec)).State;
        Assert.Equal(ErrorCodes.Conflict, Code(Run(asked, new RequestRecording(T, C, "bob", Call, Rec2)).Decision)); // one at a time
        Assert.Equal(ErrorCodes.NotFound, Code(Run(asked, new ConsentRecording(T, C, "bob", Call, Rec2, true)).Decision));
    }

    [Fact]
    public void Someone_joining_a_recorded_call_stops_it_until_they_consent()
    {
        var s = InCall(["alice", "bob", "carol"], "bob");
        s = Run(s, new RequestRecording(T, C, "alice", Call, Rec), 2).State;
        s = Run(s, new ConsentRecording(T, C, "bob", Call, Rec, true), 3).State;
        Assert.Equal(RecordingPhase.Recording, s.Active!.Recording!.Phase);

        var (paused, d) = Run(s, new AcceptCall(T, C, "carol", Call), 13);
        var stopped = Assert.IsType<CallRecordingStopped>(d.Events[^1]);
        Assert.Equal((RecordingReasons.ConsentPending, (DateTimeOffset?)T0.AddSeconds(43)), (stopped.Reason, stopped.Deadline));
        Assert.Equal(["carol"], stopped.Awaiting!);
        // The joiner learns of it in the answer to joining, before any media flows.
        Assert.Equal("paused", ((CallReply)d.Reply).Recording!.Status);
        Assert.Equal(["carol"], ((CallReply)d.Reply).Recording!.Awaiting);

        var (resumed, d2) = Run(paused, new ConsentRecording(T, C, "carol", Call, Rec, true), 20);
        Assert.IsType<CallRecordingStarted>(d2.Events[^1]);
        Assert.Equal(RecordingPhase.Recording, resumed.Active!.Recording!.Phase);
        // A reload of someone who consented does not stop it.
        Assert.Single(Run(resumed, new AcceptCall(T, C, "carol", Call), 25).Decision.Events);

        // Time recorded: 3..13 and 20..30.
        var ended = Run(resumed, new EndCall(T, C, "alice", Call, Role.Owner), 30).State;
        Assert.Equal(20, ended.FindRecording(Rec)!.DurationSeconds, 3);
    }

    [Fact]
    public void A_joiner_who_refuses_or_leaves_decides_the_paused_recording()
    {
        var s = InCall(["alice", "bob", "carol"], "bob");
        s = Run(s, new RequestRecording(T, C, "alice", Call, Rec), 2).State;
        s = Run(s, new ConsentRecording(T, C, "bob", Call, Rec, true), 3).State;
        var paused = Run(s, new AcceptCall(T, C, "carol", Call), 13).State;

        // carol leaves without answering: everyone still in has consented, so it resumes.
        var (left, d) = Run(paused, new LeaveCall(T, C, "carol", Call), 15);
        Assert.IsType<CallRecordingStarted>(d.Events[^1]);
        Assert.Equal(RecordingPhase.Recording, left.Active!.Recording!.Phase);

        // carol refuses: the recording is over (it recorded before, so it is kept as recorded).
        var (refused, d2) = Run(paused, new ConsentRecording(T, C, "carol", Call, Rec, false), 14);
        Assert.IsType<CallRecordingDeclined>(d2.Events[^1]);
        Assert.Equal(("recorded", RecordingReasons.Refused), (refused.FindRecording(Rec)!.Status, refused.FindRecording(Rec)!.EndReason));
    }

    [Fact]
    public void Withdrawing_consent_ends_the_recording_and_stopping_is_the_requesters_or_a_moderators()
    {
        var s = InCall(["alice", "bob", "carol"], "bob", "carol");
        s = Run(s, new RequestRecording(T, C, "alice", Call, Rec)).State;
        s = Run(s, new ConsentRecording(T, C, "bob", Call, Rec, true), 1).State;
        s = Run(s, new ConsentRecording(T, C, "carol", Call, Rec, true), 2).State;

        Assert.Equal(ErrorCodes.Forbidden, Code(Run(s, new StopRecording(T, C, "bob", Call, Role.Member), 3).Decision));
        var (byMod, dm) = Run(s, new StopRecording(T, C, "carol", Call, Role.Moderator), 3);
        Assert.Equal((RecordingReasons.Stopped, "carol"), (((CallRecordingStopped)dm.Events[0]).Reason, ((CallRecordingStopped)dm.Events[0]).By));
        Assert.Null(byMod.Active!.Recording);

        var (withdrawn, dw) = Run(s, new ConsentRecording(T, C, "bob", Call, Rec, false), 4);
        Assert.Equal(RecordingReasons.Refused, Assert.IsType<CallRecordingDeclined>(dw.Events[^1]).Reason);
        Assert.Equal("recorded", withdrawn.FindRecording(Rec)!.Status);
        Assert.False(withdrawn.FindRecording(Rec)!.Consents.Single(c => c.UserId == "bob").Consent);
    }

    [Fact]
    public void Only_the_requester_uploads_once_something_was_recorded_and_deleting_keeps_the_metadata()
    {
        var s = InCall(["alice", "bob"], "bob");
        s = Run(s, new RequestRecording(T, C, "alice", Call, Rec)).State;
        // Nothing recorded yet: no upload.
        Assert.Equal(ErrorCodes.Conflict, Code(Run(s, new CheckRecordingUpload(T, C, "alice", Rec)).Decision));
        s = Run(s, new ConsentRecording(T, C, "bob", Call, Rec, true), 1).State;
        Assert.IsType<RecordingInfo>(Run(s, new CheckRecordingUpload(T, C, "alice", Rec)).Decision.Reply);
        Assert.Equal(ErrorCodes.Forbidden, Code(Run(s, new CheckRecordingUpload(T, C, "bob", Rec)).Decision));
        Assert.Equal(ErrorCodes.NotFound, Code(Run(s, new CheckRecordingUpload(T, C, "alice", Rec2)).Decision));

        var file = new RecordingFile("f1", "call.webm", "video/webm", 1234, new string('a', 64), "file:t1/f1");
        var (stored, d) = Run(s, new AttachRecording(T, C, "alice", Rec, file), 40);
        Assert.IsType<CallRecordingStored>(Assert.Single(d.Events));
        Assert.Equal(file, stored.FindRecording(Rec)!.File);
        Assert.Empty(Run(stored, new AttachRecording(T, C, "alice", Rec, file), 41).Decision.Events); // the same again: a repeat
        Assert.Equal(ErrorCodes.Conflict, Code(Run(stored, new AttachRecording(T, C, "alice", Rec, file with { FileId = "f2" }), 41).Decision));

        // Deleting while still recording stops it first; the metadata stays, marked deleted; again is a repeat.
        var (deleted, dd) = Run(stored, new DeleteRecording(T, C, "admin", Rec, "admin"), 50);
        Assert.Collection(dd.Events, e => Assert.IsType<CallRecordingStopped>(e), e => Assert.IsType<CallRecordingDeleted>(e));
        var info = deleted.FindRecording(Rec)!;
        Assert.Equal(("deleted", "admin", file), (info.Status, info.DeletedBy, info.File));
        Assert.Empty(Run(deleted, new DeleteRecording(T, C, "admin", Rec, "admin"), 51).Decision.Events);
        Assert.Equal(ErrorCodes.Conflict, Code(Run(deleted, new CheckRecordingUpload(T, C, "alice", Rec)).Decision));
        Assert.Equal(ErrorCodes.NotFound, Code(Run(deleted, new DeleteRecording(T, C, "admin", Rec2, "admin")).Decision));
    }

    [Fact]
    public void The_recording_outlives_its_call_in_the_state_and_its_notices_reach_the_participants()
    {
        var s = InCall(["alice", "bob"], "bob");
        var (asked, d) = Run(s, new RequestRecording(T, C, "alice", Call, Rec));
        var notice = Assert.Single(CallNotices.For(d.Events[0], s, C));
        Assert.Equal(CallNotices.RecordingConsentRequested, notice.Event);
        Assert.Equal(["alice", "bob"], notice.Recipients);
        Assert.Contains("\"timeout_seconds\":30", notice.PayloadJson);
        var ended = Run(Run(asked, new ConsentRecording(T, C, "bob", Call, Rec, true), 1).State, new LeaveCall(T, C, "bob", Call), 11).State;
        ended = Run(ended, new LeaveCall(T, C, "alice", Call), 12).State;
        Assert.Null(ended.Active);
        Assert.Equal(("recorded", RecordingReasons.CallEnded), (ended.FindRecording(Rec)!.Status, ended.FindRecording(Rec)!.EndReason));
        Assert.IsType<RecordingInfo>(Run(ended, new GetRecording(T, C, "alice", Rec)).Decision.Reply);
    }
}
