using Caas.Actors.Calls;
using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Actors.Tests;

/// <summary>A call's changes as its conversation records them (<see cref="CallUpdated"/>), without an actor.</summary>
public sealed class CallUpdateTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);
    private const string T = "t1", C = "c1", Call = "call_0123456789abcdef0123456789abcdef_c1";

    private static (CallRoomState State, List<CallUpdated> Updates) Run(CallRoomState s, ICallCommand c, List<CallUpdated> updates, DateTimeOffset at)
    {
        var d = CallDecider.Decide(s, c, at, TimeSpan.FromMinutes(1));
        foreach (var e in d.Events)
        {
            var before = s;
            s = s.Apply(e);
            if (CallUpdates.Of(e, before, s, updates.Count + 100) is { } u) updates.Add(u);
        }
        return (s, updates);
    }

    [Fact]
    public void A_call_becomes_one_update_per_lifecycle_change_each_with_the_whole_state_after_it()
    {
        var updates = new List<CallUpdated>();
        var s = CallRoomState.Empty;
        (s, _) = Run(s, new StartCall(T, C, "alice", Call, CallMedia.Video, ["alice", "bob", "carol", "dave"]), updates, T0);
        (s, _) = Run(s, new AcceptCall(T, C, "bob", Call), updates, T0.AddSeconds(2));
        (s, _) = Run(s, new DeclineCall(T, C, "carol", Call), updates, T0.AddSeconds(3));
        (s, _) = Run(s, new RingTimedOut(T, C, "system", Call), updates, T0.AddSeconds(10));
        (s, _) = Run(s, new LeaveCall(T, C, "bob", Call, CallReasons.Left), updates, T0.AddSeconds(12));
        (s, _) = Run(s, new LeaveCall(T, C, "alice", Call, CallReasons.Disconnected), updates, T0.AddSeconds(14));

        Assert.Null(s.Active);
        Assert.Equal(["started", "joined", "declined", "missed", "left", "left", "ended"], updates.Select(u => u.Change));
        // The last one out leaves (nobody joined any more) and the call ends, in the same write.
        Assert.Equal(["ringing", "active", "active", "active", "active", "active", "ended"], updates.Select(u => u.Status));
        Assert.All(updates, u => Assert.Equal((Call, "video", "alice", T0), (u.CallId, u.Media, u.StartedBy, u.StartedAt)));
        static string L(IEnumerable<string> users) => string.Join(",", users);
        Assert.Equal(("alice", "bob,carol,dave", "alice"), (L(updates[0].Joined), L(updates[0].Ringing), updates[0].Meta.ActorId));
        Assert.Equal(("alice,bob", "carol,dave", "bob"), (L(updates[1].Joined), L(updates[1].Ringing), L(updates[1].UserIds)));
        Assert.Equal(("dave", "carol"), (L(updates[2].Ringing), L(updates[2].UserIds)));
        Assert.Equal(("", "dave", "system"), (L(updates[3].Ringing), L(updates[3].UserIds), updates[3].Meta.ActorId));
        Assert.Equal(("alice", "bob", "left"), (L(updates[4].Joined), L(updates[4].UserIds), updates[4].Reason));
        Assert.Equal(("", "alice", "disconnected"), (L(updates[5].Joined), L(updates[5].UserIds), updates[5].Reason));
        var ended = updates[6];
        Assert.Equal(("", "", "alice,bob", "completed"), (L(ended.Joined), L(ended.Ringing), L(ended.UserIds), ended.Reason));
        Assert.Equal(12, ended.DurationSeconds); // from the first answer
        // Each carries the call entity's sequence number of its event, increasing (what makes recording it idempotent).
        Assert.Equal(updates.Select(u => u.CallSeq).Order(), updates.Select(u => u.CallSeq));
        Assert.All(updates, u => Assert.Null(u.Meta.Hash));
    }

    [Fact]
    public void A_busy_member_and_the_events_that_are_not_lifecycle_make_no_or_their_own_update()
    {
        var s = CallRoomState.Empty;
        var updates = new List<CallUpdated>();
        (s, _) = Run(s, new StartCall(T, C, "alice", Call, CallMedia.Audio, ["alice", "bob", "carol"], Busy: ["carol"]), updates, T0);
        Assert.Equal(["started", "busy"], updates.Select(u => u.Change));
        Assert.Equal("carol", string.Join(",", updates[1].UserIds));
        Assert.Equal("bob", string.Join(",", updates[1].Ringing));
        var before = s;
        var checkpoint = new CallQualityCheckpointed(new EventMeta(T, "system", T0), Call, []);
        Assert.Null(CallUpdates.Of(checkpoint, before, before.Apply(checkpoint), 50));
    }

    [Fact]
    public void The_conversation_records_each_change_once_in_order_and_none_once_it_is_gone()
    {
        var meta = new EventMeta(T, "alice", T0);
        var s = ConversationState.Empty().Apply(new ConversationCreated(meta, C, ConversationTypes.Group, "Team",
            [new InitialMember("alice", Role.Owner), new InitialMember("bob", Role.Member)]));
        CallUpdated Update(string change, long callSeq) =>
            new(new EventMeta(T, "bob", T0.AddSeconds(callSeq)), Call, change, "active", "audio", "alice", T0, ["alice", "bob"], [], ["bob"], null, null, callSeq);

        var first = ConversationDecider.Decide(s, new RecordCallUpdate(T, C, "bob", Update("joined", 3)), T0.AddMinutes(5));
        var written = Assert.IsType<CallUpdated>(Assert.Single(first.Events));
        // The event keeps the call's time and names who changed it.
        Assert.Equal(("bob", T0.AddSeconds(3), 3L), (written.Meta.ActorId, written.Meta.OccurredAt, written.CallSeq));
        Assert.IsType<Done>(ConversationDecider.Reply(s.Apply(written), new RecordCallUpdate(T, C, "bob", Update("joined", 3)), first.Events));
        var after = s.Apply(written);
        Assert.Equal(3, after.LastCallSeq);

        // Sent again (a retry, a recovered call entity) or an older one: nothing written.
        foreach (var seq in new long[] { 3, 2 })
        {
            var again = ConversationDecider.Decide(after, new RecordCallUpdate(T, C, "bob", Update("joined", seq)), T0);
            Assert.Empty(again.Events);
            Assert.IsType<Done>(again.Immediate);
        }
        Assert.Single(ConversationDecider.Decide(after, new RecordCallUpdate(T, C, "bob", Update("left", 4)), T0).Events);

        // A recovery's replay keeps the mark too.
        var replay = new ConversationState.Replay(s);
        replay.Apply(written);
        Assert.Equal(3, replay.State.LastCallSeq);

        var gone = after.Apply(new ConversationDeleted(meta));
        Assert.Equal(ErrorCodes.NotFound, ConversationDecider.Decide(gone, new RecordCallUpdate(T, C, "bob", Update("left", 9)), T0).Rejection!.Code);
        Assert.Equal(ErrorCodes.NotFound, ConversationDecider.Decide(ConversationState.Empty(), new RecordCallUpdate(T, C, "bob", Update("left", 9)), T0).Rejection!.Code);
    }
}
