using System.Text.Json;
using Caas.Actors.Calls;
using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Actors.Tests;

/// <summary>Busy, quality reports and the call summary message, without an actor.</summary>
public sealed class CallSummaryBusyQualityTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);
    private const string T = "t1", C = "c1", Call = "call_0123456789abcdef0123456789abcdef_c1";

    private static (CallRoomState State, CallDecision Decision) Run(CallRoomState s, ICallCommand c, DateTimeOffset? at = null)
    {
        var d = CallDecider.Decide(s, c, at ?? T0);
        return (d.Events.Aggregate(s, (state, e) => state.Apply(e)), d);
    }

    private static string Code(CallDecision d) => Assert.IsType<Rejection>(d.Reply).Code;

    [Fact]
    public void A_busy_member_is_not_rung_but_declined_as_busy_and_may_still_join_later()
    {
        var (s, d) = Run(CallRoomState.Empty, new StartCall(T, C, "alice", Call, CallMedia.Audio, ["alice", "bob", "carol"], ["bob"]));
        Assert.Equal(["carol"], Assert.IsType<CallStarted>(d.Events[0]).Ringing);
        var busy = Assert.IsType<CallParticipantDeclined>(Assert.Single(d.Events, e => e is CallParticipantDeclined));
        Assert.Equal(("bob", CallReasons.Busy), (busy.UserId, busy.Reason));
        Assert.Equal(CallPresence.Declined, s.Active!.Participants["bob"].Presence);
        Assert.Equal(["carol"], ((CallReply)d.Reply).Ringing);

        // The starter hears participantBusy (not callDeclined).
        var before = CallRoomState.Empty.Apply(d.Events[0]);
        var notice = Assert.Single(CallNotices.For(busy, before, C));
        Assert.Equal(CallNotices.Busy, notice.Event);
        Assert.Contains("alice", notice.Recipients);

        // Free again, bob answers anyway.
        Assert.IsType<CallParticipantJoined>(Assert.Single(Run(s, new AcceptCall(T, C, "bob", Call)).Decision.Events));
    }

    [Fact]
    public void A_call_whose_every_callee_is_busy_ends_at_once_as_busy_and_the_starter_and_strangers_are_never_busy()
    {
        var (s, d) = Run(CallRoomState.Empty, new StartCall(T, C, "alice", Call, CallMedia.Video, ["alice", "bob"], ["bob", "alice", "mallory"]));
        Assert.Equal([typeof(CallStarted), typeof(CallParticipantDeclined), typeof(CallEnded)], d.Events.Select(e => e.GetType()));
        Assert.Equal(CallReasons.Busy, ((CallEnded)d.Events[2]).Reason);
        Assert.Equal(("ended", CallReasons.Busy), (((CallReply)d.Reply).Status, ((CallReply)d.Reply).EndReason));
        Assert.Null(s.Active);
        Assert.Contains(Call, s.SummariesPending);
        // alice (the starter) and mallory (not a member) were ignored in the busy list.
        Assert.Single(d.Events.OfType<CallParticipantDeclined>());
    }

    [Fact]
    public void Quality_reports_are_validated_and_taken_only_from_joined_participants()
    {
        var s = Run(CallRoomState.Empty, new StartCall(T, C, "alice", Call, CallMedia.Audio, ["alice", "bob", "carol"])).State;
        s = Run(s, new AcceptCall(T, C, "bob", Call)).State;
        var good = new CallQualitySample(40, 3, 0.5, 900);
        Assert.IsType<Done>(Run(s, new ReportCallQuality(T, C, "bob", Call, good)).Decision.Reply);
        Assert.Empty(Run(s, new ReportCallQuality(T, C, "bob", Call, good)).Decision.Events); // nothing persisted per report
        Assert.Equal(ErrorCodes.Forbidden, Code(Run(s, new ReportCallQuality(T, C, "carol", Call, good)).Decision)); // still ringing
        Assert.Equal(ErrorCodes.NotFound, Code(Run(s, new ReportCallQuality(T, C, "mallory", Call, good)).Decision));
        Assert.Equal(ErrorCodes.NotFound, Code(Run(s, new ReportCallQuality(T, C, "bob", "call_other", good)).Decision));
        foreach (var bad in new[]
                 {
                     new CallQualitySample(null, null, null, null), new CallQualitySample(-1, null, null, null),
                     new CallQualitySample(null, null, 100.5, null), new CallQualitySample(null, double.NaN, null, null),
                     new CallQualitySample(null, null, null, double.PositiveInfinity), new CallQualitySample(60_001, null, null, null),
                 })
        {
            var refused = Assert.IsType<Rejection>(Run(s, new ReportCallQuality(T, C, "bob", Call, bad)).Decision.Reply);
            Assert.Equal(ErrorCodes.ValidationFailed, refused.Code);
            Assert.NotEmpty(refused.Errors!);
        }
    }

    [Fact]
    public void Quality_is_aggregated_per_metric_as_min_avg_max()
    {
        ParticipantQuality? q = null;
        q = CallQuality.Add(q, "bob", new CallQualitySample(40, 2, 0, 1000));
        q = CallQuality.Add(q, "bob", new CallQualitySample(80, null, 1.5, 500));
        q = CallQuality.Add(q, "bob", new CallQualitySample(60, 4, null, null));
        Assert.Equal(3, q.Reports);
        Assert.Equal((3, 40.0, 60.0, 80.0), (q.RttMs!.Count, q.RttMs.Min, q.RttMs.Avg, q.RttMs.Max));
        Assert.Equal((2, 2.0, 3.0, 4.0), (q.JitterMs!.Count, q.JitterMs.Min, q.JitterMs.Avg, q.JitterMs.Max));
        Assert.Equal((2, 0.0, 0.75, 1.5), (q.PacketLossPct!.Count, q.PacketLossPct.Min, q.PacketLossPct.Avg, q.PacketLossPct.Max));
        Assert.Equal((2, 500.0, 750.0, 1000.0), (q.BitrateKbps!.Count, q.BitrateKbps.Min, q.BitrateKbps.Avg, q.BitrateKbps.Max));
    }

    [Fact]
    public void An_ended_call_waits_for_its_summary_until_it_is_posted_and_keeps_its_quality()
    {
        var s = Run(CallRoomState.Empty, new StartCall(T, C, "alice", Call, CallMedia.Video, ["alice", "bob"])).State;
        s = Run(s, new AcceptCall(T, C, "bob", Call), T0.AddSeconds(2)).State;
        var (ended, d) = Run(s, new EndCall(T, C, "alice", Call, Role.Member), T0.AddSeconds(62));
        var quality = new[] { CallQuality.Add(null, "bob", new CallQualitySample(50, 1, 0, 800)) };
        // The entity adds the quality it aggregated to the end event.
        var end = ((CallEnded)Assert.Single(d.Events)) with { Quality = quality };
        ended = s.Apply(end);
        Assert.Equal([Call], ended.SummariesPending);
        var summary = Assert.Single(ended.History);
        Assert.Equal(("alice", 60.0, quality), (summary.EndedBy, summary.DurationSeconds, summary.Quality));
        var posted = ended.Apply(new CallSummaryPosted(new EventMeta(T, "system", T0.AddSeconds(63)), Call, CallSummaryMessage.MessageIdOf(Call), 7));
        Assert.Empty(posted.SummariesPending);
    }

    [Fact]
    public void The_summary_content_carries_the_call_and_reads_back_as_content_fields()
    {
        var summary = new CallSummary(Call, "alice", CallMedia.Video, T0, T0.AddSeconds(95), CallReasons.Completed, 90.5, ["alice", "bob"], null,
            [CallQuality.Add(null, "bob", new CallQualitySample(50, null, null, null))]);
        var content = CallSummaryMessage.Content(summary);
        Assert.Equal("call", content.Type);
        var view = CallSummaryMessage.View(content.Type, content.Text)!.Value;
        Assert.Equal("call", view.GetProperty("type").GetString());
        Assert.Equal((Call, "video", "alice", "completed", 90.5), (view.GetProperty("call_id").GetString(), view.GetProperty("media").GetString(),
            view.GetProperty("started_by").GetString(), view.GetProperty("reason").GetString(), view.GetProperty("duration_seconds").GetDouble()));
        Assert.Equal(["alice", "bob"], view.GetProperty("participants").EnumerateArray().Select(p => p.GetString()));
        Assert.Equal(50, view.GetProperty("quality")[0].GetProperty("rtt_ms").GetProperty("avg").GetDouble());
        Assert.Equal(JsonValueKind.Null, view.GetProperty("quality")[0].GetProperty("jitter_ms").ValueKind);
        // Anything else is not a call summary.
        Assert.Null(CallSummaryMessage.View("text", content.Text));
        Assert.Null(CallSummaryMessage.View("call", "not json"));
        Assert.Null(CallSummaryMessage.View("call", null));
        Assert.Equal("call_0123456789abcdef0123456789abcdef", CallSummaryMessage.MessageIdOf(Call));
        Assert.True(Ids.IsValid(CallSummaryMessage.MessageIdOf(Call)));
    }

    [Fact]
    public void The_conversation_posts_a_summary_once_even_from_a_former_member_and_never_into_a_deleted_conversation()
    {
        var meta = new EventMeta(T, "alice", T0);
        var s = ConversationState.Empty().Apply(new ConversationCreated(meta, C, ConversationTypes.Group, null,
            [new InitialMember("alice", Role.Owner), new InitialMember("bob", Role.Member)]));
        s = s.Apply(new MemberRemoved(new EventMeta(T, "bob", T0), "bob", "left"));
        var content = CallSummaryMessage.Content(new CallSummary(Call, "bob", CallMedia.Audio, T0, T0, CallReasons.Missed, 0, []));
        var post = new PostCallSummary(T, C, "bob", CallSummaryMessage.MessageIdOf(Call), content);
        var first = ConversationDecider.Decide(s, post, T0.AddSeconds(1));
        var message = Assert.IsType<MessagePosted>(Assert.Single(first.Events));
        Assert.Equal(("bob", "call", 1L), (message.Meta.ActorId, message.Content.Type, message.Seq));
        var after = s.Apply(message);
        var ack = Assert.IsType<MessageAck>(ConversationDecider.Reply(after, post, first.Events));
        Assert.Equal((1L, false), (ack.Seq, ack.Repeat));

        // Sent again (a retry, a recovered call entity): answered with the original, nothing written.
        var again = ConversationDecider.Decide(after, post, T0.AddDays(3));
        Assert.Empty(again.Events);
        Assert.Equal((1L, true), (((MessageAck)again.Immediate!).Seq, ((MessageAck)again.Immediate!).Repeat));

        // Clients cannot post this content type themselves.
        var forged = ConversationDecider.Decide(after, new PostMessage(T, C, "alice", "m-forged", content, TimeSpan.FromHours(1)), T0);
        Assert.Equal(ErrorCodes.ValidationFailed, forged.Rejection!.Code);

        // Nor take a summary's id (it would never be posted) or edit a summary (the starter is its author).
        var squat = ConversationDecider.Decide(s, new PostMessage(T, C, "alice", "call_0123456789abcdef0123456789abcdef",
            new MessageContent("text", "call ended, 0 s"), TimeSpan.FromHours(1)), T0);
        Assert.Equal(ErrorCodes.ValidationFailed, squat.Rejection!.Code);
        Assert.Empty(squat.Events);
        Assert.True(CallSummaryMessage.IsSummaryId(CallSummaryMessage.MessageIdOf(Call)));
        Assert.False(CallSummaryMessage.IsSummaryId("call_0123456789ABCDEF0123456789abcdef"));
        Assert.False(CallSummaryMessage.IsSummaryId("call_notes"));
        var ownText = ConversationDecider.Decide(s, new PostMessage(T, C, "alice", "call_notes", new MessageContent("text", "agenda"), TimeSpan.FromHours(1)), T0);
        Assert.Single(ownText.Events);
        var byAlice = ConversationDecider.Decide(s, post with { ActorId = "alice" }, T0.AddSeconds(1));
        var withSummary = s.Apply(Assert.IsType<MessagePosted>(Assert.Single(byAlice.Events)));
        var edit = ConversationDecider.Decide(withSummary, new EditMessage(T, C, "alice", 1, new MessageContent("text", "a nicer summary")), T0.AddSeconds(2));
        Assert.Equal(ErrorCodes.Forbidden, edit.Rejection!.Code);
        Assert.Empty(edit.Events);

        var deleted = after.Apply(new ConversationDeleted(meta));
        Assert.Equal(ErrorCodes.NotFound, ConversationDecider.Decide(deleted, post with { MessageId = "call_ffffffffffffffffffffffffffffffff" }, T0).Rejection!.Code);
    }
}
