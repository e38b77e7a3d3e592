using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Akka.Persistence.TestKit;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Serialization;

namespace Caas.Actors.Tests;

/// <summary>
/// The conversation entity on Akka.Persistence.TestKit's journal, whose writes the tests hold, reject or fail: commands
/// that arrive during a write go into the next write together; nothing is acknowledged before its event is written,
/// nothing is written twice, every command of a batch gets an answer, and after a failure the entity recovers gap-free.
/// </summary>
public sealed class ConversationWriteBatchSpecs : Akka.TestKit.Xunit2.TestKit
{
    private const string Tenant = "t1";
    private static readonly TimeSpan Horizon = TimeSpan.FromHours(24);
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);

    private readonly Interceptor _journal = new();

    public ConversationWriteBatchSpecs() : base("""
        akka.loglevel = WARNING
        akka.persistence.journal.plugin = "akka.persistence.journal.test"
        akka.persistence.journal.test {
          class = "Akka.Persistence.TestKit.TestJournal, Akka.Persistence.TestKit"
          plugin-dispatcher = "akka.actor.default-dispatcher"
          event-adapters.untag = "Caas.Actors.Tests.UntagOnRecovery, Caas.Actors.Tests"
          event-adapter-bindings."Akka.Persistence.Journal.Tagged, Akka.Persistence" = untag
        }
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.test"
        akka.persistence.snapshot-store.test {
          class = "Akka.Persistence.TestKit.TestSnapshotStore, Akka.Persistence.TestKit"
          plugin-dispatcher = "akka.actor.default-dispatcher"
        }
        """)
    {
        var journal = TestJournal.FromRef(Persistence.Instance.Apply(Sys).JournalFor(null));
        journal.OnWrite.SetInterceptorAsync(_journal).Wait(Wait);
    }

    /// <summary>Holds, rejects or fails the write of chosen events; records every event it lets through.</summary>
    private sealed class Interceptor : IJournalInterceptor
    {
        private readonly object _gate = new();
        private readonly Dictionary<string, TaskCompletionSource> _held = [];
        private readonly List<object> _written = [];
        public Func<object, bool> Rejects { get; set; } = _ => false;
        public Func<object, bool> Fails { get; set; } = _ => false;

        public TaskCompletionSource Hold(string messageId)
        {
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_gate) _held[messageId] = gate;
            return gate;
        }

        public async Task InterceptAsync(IPersistentRepresentation message)
        {
            var e = message.Payload is Tagged t ? t.Payload : message.Payload;
            TaskCompletionSource? gate = null;
            if (e is MessagePosted p) lock (_gate) _held.TryGetValue(p.MessageId, out gate);
            if (gate is not null) await gate.Task;
            if (Rejects(e)) throw new TestJournalRejectionException("refused by the test");
            if (Fails(e)) throw new TestJournalFailureException("the journal is down (test)");
            lock (_gate) _written.Add(e);
        }

        public IReadOnlyList<string> PostedIds()
        {
            lock (_gate) return _written.OfType<MessagePosted>().Select(p => p.MessageId).ToList();
        }

        public List<object> WrittenNow()
        {
            lock (_gate) return [.. _written];
        }
    }

    /// <summary>Recovers a persistence id and reports every event it finds, as stored.</summary>
    private sealed class Replay : ReceivePersistentActor
    {
        private readonly List<object> _events = [];

        public Replay(string persistenceId, IActorRef report)
        {
            PersistenceId = persistenceId;
            Recover<RecoveryCompleted>(_ => report.Tell(_events.ToImmutableArray()));
            Recover<object>(e => _events.Add(e is Tagged t ? t.Payload : e));
        }

        public override string PersistenceId { get; }
    }

    private static EntitySettings Settings() => new(1_000, TimeSpan.FromMinutes(5), 50, TimeSpan.FromMilliseconds(200));

    private IActorRef Start(string id) => Sys.ActorOf(ConversationActor.PropsFor(Ids.EntityId(Tenant, id), Settings()));

    private static PostMessage Post(string id, string messageId, string actor = "alice") =>
        new(Tenant, id, actor, messageId, new MessageContent("text", "text of " + messageId), Horizon);

    private void Create(IActorRef actor, string id)
    {
        actor.Tell(new CreateConversation(Tenant, id, "alice", ConversationTypes.Group, "Team", [new InitialMember("bob", Role.Member)]), TestActor);
        ExpectMsg<ConversationReply>(Wait);
    }

    private ImmutableArray<object> Stored(string id)
    {
        Sys.ActorOf(Props.Create(() => new Replay(ConversationActor.PersistenceIdOf(Ids.EntityId(Tenant, id)), TestActor)));
        return ExpectMsg<ImmutableArray<object>>(Wait);
    }

    private void StopAndWait(IActorRef actor)
    {
        Watch(actor);
        actor.Tell(PoisonPill.Instance);
        ExpectTerminated(actor, Wait);
        Unwatch(actor);
    }

    [Fact]
    public void Commands_arriving_during_a_write_go_into_the_next_write_together_and_are_acknowledged_after_it()
    {
        var actor = Start("b1");
        Create(actor, "b1");
        var first = _journal.Hold("m0");
        var last = _journal.Hold("m5");
        actor.Tell(Post("b1", "m0"), TestActor);
        for (var i = 1; i <= 5; i++) actor.Tell(Post("b1", "m" + i), TestActor);
        // m0's write is held: nothing is acknowledged, m1..m5 wait behind it.
        ExpectNoMsg(Quiet);
        Assert.Empty(_journal.PostedIds());

        first.SetResult();
        Assert.Equal(1, ExpectMsg<MessageAck>(Wait).Seq);
        // m1..m5 are one write: m1..m4 are through the journal, yet m1 is not acknowledged while m5, the last
        // event of that write, is held.
        AwaitCondition(() => _journal.PostedIds().Count == 5, Wait);
        ExpectNoMsg(Quiet);
        Assert.Equal(["m0", "m1", "m2", "m3", "m4"], _journal.PostedIds());

        last.SetResult();
        var acks = Enumerable.Range(1, 5).Select(_ => ExpectMsg<MessageAck>(Wait)).ToList();
        Assert.Equal(["m1", "m2", "m3", "m4", "m5"], acks.Select(a => a.MessageId));
        Assert.Equal([2L, 3, 4, 5, 6], acks.Select(a => a.Seq));
        // Each stamp is the journal position of its own event (1 is the creation).
        Assert.Equal([3L, 4, 5, 6, 7], acks.Select(a => a.JournalSeq));
        Assert.Equal(["m0", "m1", "m2", "m3", "m4", "m5"], _journal.PostedIds());
    }

    [Fact]
    public void Answers_decided_behind_a_write_wait_for_it_and_a_rejected_command_holds_back_no_other()
    {
        var actor = Start("b2");
        Create(actor, "b2");
        var first = _journal.Hold("m0");
        actor.Tell(Post("b2", "m0"), TestActor);
        actor.Tell(Post("b2", "m1"), TestActor);
        actor.Tell(Post("b2", "m0-again", actor: "mallory"), TestActor); // not a member
        actor.Tell(Post("b2", "m1"), TestActor); // a repeat of m1, which is in the same batch
        actor.Tell(new GetReadAccess(Tenant, "b2", "bob"), TestActor);
        actor.Tell(Post("b2", "m2"), TestActor);
        ExpectNoMsg(Quiet);

        first.SetResult();
        Assert.Equal(1, ExpectMsg<MessageAck>(Wait).Seq);
        Assert.Equal(2, ExpectMsg<MessageAck>(Wait).Seq);
        Assert.Equal(ErrorCodes.NotFound, ExpectMsg<Rejection>(Wait).Code);
        var repeat = ExpectMsg<MessageAck>(Wait);
        Assert.True(repeat.Repeat);
        Assert.Equal(2, repeat.Seq);
        var access = ExpectMsg<ReadAccess>(Wait);
        Assert.Equal(2, access.LastSeq);
        Assert.Equal(3, access.JournalSeq);
        Assert.Equal(3, ExpectMsg<MessageAck>(Wait).Seq);
        Assert.Equal(["m0", "m1", "m2"], _journal.PostedIds());
    }

    [Fact]
    public void Admission_is_answered_during_a_write_from_what_is_written_and_the_write_decides_again()
    {
        var actor = Start("b7");
        Create(actor, "b7");
        var first = _journal.Hold("m0");
        actor.Tell(Post("b7", "m0"), TestActor);
        actor.Tell(new RemoveMember(Tenant, "b7", "alice", "bob"), TestActor);
        actor.Tell(Post("b7", "m1"), TestActor);
        ExpectNoMsg(Quiet);

        // m0's write is held and two commands wait behind it; admission does not wait for either.
        actor.Tell(new AdmitMessage(Tenant, "b7", "bob", "b1", Horizon), TestActor);
        Assert.Equal("b7", ExpectMsg<MessageAdmitted>(Wait).ConversationId);
        // m0 is not written yet: its id is no repeat (a repeat answer would claim a write that may still fail).
        actor.Tell(new AdmitMessage(Tenant, "b7", "alice", "m0", Horizon), TestActor);
        ExpectMsg<MessageAdmitted>(Wait);
        actor.Tell(new AdmitMessage(Tenant, "b7", "mallory", "x1", Horizon), TestActor);
        Assert.Equal(ErrorCodes.NotFound, ExpectMsg<Rejection>(Wait).Code);
        Assert.Empty(_journal.PostedIds());

        first.SetResult();
        Assert.Equal(1, ExpectMsg<MessageAck>(Wait).Seq);
        ExpectMsg<ConversationReply>(Wait);
        Assert.Equal(2, ExpectMsg<MessageAck>(Wait).Seq);
        // bob was admitted before his removal was written; his message is decided again when it is written.
        actor.Tell(Post("b7", "b1", actor: "bob"), TestActor);
        Assert.Equal(ErrorCodes.NotFound, ExpectMsg<Rejection>(Wait).Code);
        // Once written, m0 is a repeat for admission too.
        actor.Tell(new AdmitMessage(Tenant, "b7", "alice", "m0", Horizon), TestActor);
        var repeat = ExpectMsg<MessageAck>(Wait);
        Assert.True(repeat.Repeat);
        Assert.Equal(1, repeat.Seq);
        Assert.Equal(["m0", "m1"], _journal.PostedIds());
    }

    [Fact]
    public void A_batch_the_journal_refuses_is_retried_one_command_per_write_so_only_the_culprit_is_refused()
    {
        var actor = Start("b3");
        Create(actor, "b3");
        var first = _journal.Hold("m0");
        _journal.Rejects = e => e is MessagePosted { MessageId: "poison" };
        actor.Tell(Post("b3", "m0"), TestActor);
        actor.Tell(Post("b3", "poison"), TestActor);
        actor.Tell(Post("b3", "a"), TestActor);
        actor.Tell(Post("b3", "b", actor: "bob"), TestActor);
        first.SetResult();

        Assert.Equal(1, ExpectMsg<MessageAck>(Wait).Seq);
        Assert.Equal("internal_error", ExpectMsg<Rejection>(Wait).Code);
        var a = ExpectMsg<MessageAck>(Wait);
        var b = ExpectMsg<MessageAck>(Wait);
        Assert.Equal(("a", 2L), (a.MessageId, a.Seq));
        Assert.Equal(("b", 3L), (b.MessageId, b.Seq));

        // The entity went on; a fresh one recovers the same, gap-free, with nothing written twice.
        StopAndWait(actor);
        var posted = Stored("b3").OfType<MessagePosted>().ToList();
        Assert.Equal(["m0", "a", "b"], posted.Select(p => p.MessageId));
        Assert.Equal([1L, 2, 3], posted.Select(p => p.Seq));
        var again = Start("b3");
        again.Tell(Post("b3", "c"), TestActor);
        Assert.Equal(4, ExpectMsg<MessageAck>(Wait).Seq);
    }

    [Fact]
    public void A_failed_write_acknowledges_nothing_answers_every_waiting_command_and_the_entity_recovers_gap_free()
    {
        var actor = Start("b4");
        Create(actor, "b4");
        actor.Tell(Post("b4", "m0"), TestActor);
        Assert.Equal(1, ExpectMsg<MessageAck>(Wait).Seq);
        var held = _journal.Hold("m1");
        _journal.Fails = e => e is MessagePosted { MessageId: "m1" };
        Watch(actor);
        actor.Tell(Post("b4", "m1"), TestActor);
        actor.Tell(Post("b4", "m2"), TestActor);
        actor.Tell(Post("b4", "m3"), TestActor);
        held.SetResult();

        // m1's write failed; m2 and m3 were queued behind it: all three are told to retry, none acknowledged.
        for (var i = 0; i < 3; i++) Assert.Equal(ErrorCodes.Unavailable, ExpectMsg<Rejection>(Wait).Code);
        ExpectTerminated(actor, Wait);
        Assert.Equal(["m0"], _journal.PostedIds());

        _journal.Fails = _ => false;
        var again = Start("b4");
        foreach (var (id, seq) in new[] { ("m1", 2L), ("m2", 3L), ("m3", 4L) })
        {
            again.Tell(Post("b4", id), TestActor);
            var ack = ExpectMsg<MessageAck>(Wait);
            Assert.Equal((id, seq, false), (ack.MessageId, ack.Seq, ack.Repeat));
        }
        var posted = Stored("b4").OfType<MessagePosted>().ToList();
        Assert.Equal(["m0", "m1", "m2", "m3"], posted.Select(p => p.MessageId));
    }

    [Fact]
    public void Batched_events_chain_their_hashes_over_the_bytes_the_journal_stores()
    {
        var actor = Start("b5");
        Create(actor, "b5");
        var first = _journal.Hold("m0");
        for (var i = 0; i < 4; i++) actor.Tell(Post("b5", "m" + i), TestActor);
        first.SetResult();
        for (var i = 0; i < 4; i++) ExpectMsg<MessageAck>(Wait);

        var events = Stored("b5").Cast<IConversationEvent>().ToList();
        Assert.Equal(5, events.Count);
        string? prev = null;
        foreach (var e in events)
        {
            Assert.Equal(prev, e.Meta.PrevHash);
            var open = CaasSerializer.StoredBytes(e.WithMeta(e.Meta with { Hash = null }));
            Assert.True(HashChain.Holds(prev, open, e.Meta.Hash!, null));
            // What the journal is handed is exactly what serializing the event would write.
            Assert.Equal(CaasSerializer.StoredBytes(e), HashChain.WithHash(open, e.Meta.Hash!));
            prev = e.Meta.Hash;
        }

        // The instances the journal was handed were serialized once, by the entity: the journal's serializer returns
        // those bytes (the same array every time) instead of serializing again.
        var serializer = new CaasSerializer((ExtendedActorSystem)Sys);
        var written = _journal.WrittenNow();
        foreach (var e in written.OfType<MessagePosted>())
            Assert.Same(serializer.ToBinary(e), serializer.ToBinary(e));
        var fresh = ((MessagePosted)written.OfType<MessagePosted>().First()) with { Seq = 99 };
        Assert.NotSame(serializer.ToBinary(fresh), serializer.ToBinary(fresh));
    }

    [Fact]
    public void A_stop_request_waits_for_the_write_in_flight_and_the_commands_queued_behind_it()
    {
        var actor = Start("b6");
        Create(actor, "b6");
        var first = _journal.Hold("m0");
        Watch(actor);
        actor.Tell(Post("b6", "m0"), TestActor);
        actor.Tell(Post("b6", "m1"), TestActor);
        actor.Tell(StopEntity.Instance, TestActor);
        actor.Tell(Post("b6", "m2"), TestActor);
        first.SetResult();

        Assert.Equal(1, ExpectMsg<MessageAck>(Wait).Seq);
        Assert.Equal(2, ExpectMsg<MessageAck>(Wait).Seq);
        Assert.Equal(3, ExpectMsg<MessageAck>(Wait).Seq);
        ExpectTerminated(actor, Wait);
    }
}
