using Caas.Actors.Calls;
using Caas.Actors.Common;

namespace Caas.Actors.Tests;

/// <summary>The rules of a conversation's calls, without an actor.</summary>
public sealed class CallDeciderTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);
    private const string T = "t1", C = "c1", Call = "call1";

    private static (CallRoomState State, CallDecision Decision) Run(CallRoomState s, ICallCommand c, DateTimeOffset? at = null)
    {
        var d = CallDecider.Decide(s, c, at ?? T0);
        return (d.Events.Aggregate(s, (state, e) => state.Apply(e)), d);
    }

    private static CallRoomState Started(params string[] members) =>
        Run(CallRoomState.Empty, new StartCall(T, C, "alice", Call, CallMedia.Video, members)).State;

    private static string Code(CallDecision d) => Assert.IsType<Rejection>(d.Reply).Code;

    [Fact]
    public void Starting_rings_every_other_member_and_a_second_start_conflicts()
    {
        var (s, d) = Run(CallRoomState.Empty, new StartCall(T, C, "alice", Call, CallMedia.Audio, ["alice", "bob", "carol"]));
        var started = Assert.IsType<CallStarted>(Assert.Single(d.Events));
        Assert.Equal(["bob", "carol"], started.Ringing);
        Assert.Equal(new[] { "alice" }, ((CallReply)d.Reply).Joined);
        Assert.Equal("ringing", ((CallReply)d.Reply).Status);
        Assert.Equal(ErrorCodes.Conflict, Code(Run(s, new StartCall(T, C, "bob", "call2", CallMedia.Audio, ["alice", "bob"])).Decision));
    }

    [Fact]
    public void Bad_starts_are_refused()
    {
        Assert.Equal(ErrorCodes.ValidationFailed, Code(Run(CallRoomState.Empty, new StartCall(T, C, "alice", Call, "hologram", ["alice", "bob"])).Decision));
        // Not a member (the edge passes the members it found): not_found, as for the conversation itself.
        Assert.Equal(ErrorCodes.NotFound, Code(Run(CallRoomState.Empty, new StartCall(T, C, "mallory", Call, CallMedia.Audio, ["alice", "bob"])).Decision));
    }

    [Fact]
    public void Accepting_joins_and_a_rejoin_is_allowed()
    {
        var (s, d) = Run(Started("alice", "bob"), new AcceptCall(T, C, "bob", Call), T0.AddSeconds(5));
        Assert.IsType<CallParticipantJoined>(Assert.Single(d.Events));
        Assert.Equal("active", ((CallReply)d.Reply).Status);
        Assert.Equal(T0.AddSeconds(5), s.Active!.AnsweredAt);
        var again = Run(s, new AcceptCall(T, C, "bob", Call), T0.AddSeconds(9)).Decision;
        Assert.IsType<CallParticipantJoined>(Assert.Single(again.Events));
        Assert.Equal(new[] { "alice", "bob" }, ((CallReply)again.Reply).Joined);
    }

    [Fact]
    public void Unknown_calls_and_strangers_get_not_found()
    {
        var s = Started("alice", "bob");
        Assert.Equal(ErrorCodes.NotFound, Code(Run(s, new AcceptCall(T, C, "bob", "other-call")).Decision));
        Assert.Equal(ErrorCodes.NotFound, Code(Run(s, new AcceptCall(T, C, "mallory", Call)).Decision));
        Assert.Equal(ErrorCodes.NotFound, Code(Run(CallRoomState.Empty, new LeaveCall(T, C, "bob", Call)).Decision));
    }

    [Fact]
    public void At_most_eight_join()
    {
        var members = Enumerable.Range(0, 10).Select(i => i == 0 ? "alice" : $"u{i}").ToArray();
        var s = Started(members);
        for (var i = 1; i < CallDecider.MaxParticipants; i++) s = Run(s, new AcceptCall(T, C, $"u{i}", Call)).State;
        Assert.Equal(8, s.Active!.Joined.Count());
        Assert.Equal(ErrorCodes.Conflict, Code(Run(s, new AcceptCall(T, C, "u9", Call)).Decision));
    }

    [Fact]
    public void Everyone_declining_ends_the_call_as_declined()
    {
        var (s, d) = Run(Started("alice", "bob", "carol"), new DeclineCall(T, C, "bob", Call));
        Assert.IsType<CallParticipantDeclined>(Assert.Single(d.Events));
        (s, d) = Run(s, new DeclineCall(T, C, "carol", Call));
        var ended = Assert.IsType<CallEnded>(d.Events[^1]);
        Assert.Equal((CallReasons.Declined, 0.0), (ended.Reason, ended.DurationSeconds));
        Assert.Null(s.Active);
        Assert.Equal(CallReasons.Declined, Assert.Single(s.History).Reason);
        Assert.Equal(ErrorCodes.NotFound, Code(Run(s, new DeclineCall(T, C, "carol", Call)).Decision));
    }

    [Fact]
    public void The_ring_timeout_marks_the_unanswered_as_missed()
    {
        var (s, d) = Run(Started("alice", "bob"), new RingTimedOut(T, C, "system", Call), T0.AddSeconds(45));
        Assert.Equal(["bob"], Assert.IsType<CallMissed>(d.Events[0]).UserIds);
        Assert.Equal(CallReasons.Missed, Assert.IsType<CallEnded>(d.Events[1]).Reason);
        Assert.Null(s.Active);

        // Once someone answered, the timeout only marks who never did; the call goes on.
        var answered = Run(Started("alice", "bob", "carol"), new AcceptCall(T, C, "bob", Call)).State;
        var (after, timeout) = Run(answered, new RingTimedOut(T, C, "system", Call));
        Assert.IsType<CallMissed>(Assert.Single(timeout.Events));
        Assert.Equal(["alice", "bob"], after.Active!.Joined);
        Assert.Empty(Run(after, new RingTimedOut(T, C, "system", Call)).Decision.Events);
    }

    [Fact]
    public void The_call_ends_when_its_last_participant_leaves_with_its_duration()
    {
        var s = Run(Started("alice", "bob"), new AcceptCall(T, C, "bob", Call), T0.AddSeconds(10)).State;
        var (one, left) = Run(s, new LeaveCall(T, C, "alice", Call), T0.AddSeconds(70));
        Assert.Equal(70, Assert.IsType<CallParticipantLeft>(Assert.Single(left.Events)).Seconds);
        Assert.Equal(["bob"], one.Active!.Joined);
        Assert.Equal(ErrorCodes.Conflict, Code(Run(one, new LeaveCall(T, C, "alice", Call)).Decision));

        var (done, last) = Run(one, new LeaveCall(T, C, "bob", Call, CallReasons.Disconnected), T0.AddSeconds(100));
        var ended = Assert.IsType<CallEnded>(last.Events[^1]);
        Assert.Equal((CallReasons.Completed, 90.0), (ended.Reason, ended.DurationSeconds));
        Assert.Equal(["alice", "bob"], ended.Participants);
        Assert.Equal("ended", ((CallReply)last.Reply).Status);
        Assert.Null(done.Active);
    }

    [Fact]
    public void Only_the_caller_or_a_moderator_ends_a_call_for_everyone()
    {
        var s = Run(Started("alice", "bob", "carol"), new AcceptCall(T, C, "bob", Call)).State;
        Assert.Equal(ErrorCodes.Forbidden, Code(Run(s, new EndCall(T, C, "bob", Call, Role.Member)).Decision));
        Assert.NotNull(s.Active);
        var byModerator = Run(s, new EndCall(T, C, "bob", Call, Role.Moderator)).Decision;
        Assert.Equal(("bob", CallReasons.EndedBy), (Assert.IsType<CallEnded>(Assert.Single(byModerator.Events)).EndedBy, CallReasons.EndedBy));
        var byCaller = Run(s, new EndCall(T, C, "alice", Call, Role.Member));
        Assert.Null(byCaller.State.Active);
    }

    [Fact]
    public void Signals_go_only_between_joined_participants()
    {
        var s = Run(Started("alice", "bob", "carol"), new AcceptCall(T, C, "bob", Call)).State;
        Assert.IsType<CallReply>(Run(s, new CheckSignal(T, C, "alice", Call, "bob")).Decision.Reply);
        Assert.Empty(Run(s, new CheckSignal(T, C, "alice", Call, "bob")).Decision.Events);
        // to a user not in the call, to one still ringing, to oneself; from one still ringing; from a non-member
        Assert.Equal(ErrorCodes.NotFound, Code(Run(s, new CheckSignal(T, C, "alice", Call, "dave")).Decision));
        Assert.Equal(ErrorCodes.NotFound, Code(Run(s, new CheckSignal(T, C, "alice", Call, "carol")).Decision));
        Assert.Equal(ErrorCodes.NotFound, Code(Run(s, new CheckSignal(T, C, "alice", Call, "alice")).Decision));
        Assert.Equal(ErrorCodes.Forbidden, Code(Run(s, new CheckSignal(T, C, "carol", Call, "alice")).Decision));
        Assert.Equal(ErrorCodes.NotFound, Code(Run(s, new CheckSignal(T, C, "mallory", Call, "alice")).Decision));
    }

    [Fact]
    public void History_keeps_the_most_recent_calls()
    {
        var s = CallRoomState.Empty;
        for (var i = 0; i < CallRoomState.HistoryKept + 5; i++)
        {
            s = Run(s, new StartCall(T, C, "alice", $"call{i}", CallMedia.Audio, ["alice", "bob"])).State;
            s = Run(s, new EndCall(T, C, "alice", $"call{i}", Role.Member)).State;
        }
        Assert.Equal(CallRoomState.HistoryKept, s.History.Count);
        Assert.Equal("call5", s.History[0].CallId);
        var page = Assert.IsType<CallHistory>(Run(s, new GetCallHistory(T, C, "bob", 3)).Decision.Reply);
        Assert.Equal(["call104", "call103", "call102"], page.Items.Select(i => i.CallId));
        Assert.Null(page.Active);
    }
}
