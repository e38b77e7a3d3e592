using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Persistence;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Actors.Tests;

public abstract class ConversationActorSpecs(string kind) : JournalSpec(kind)
{
    private const string Tenant = "t1";
    private static readonly TimeSpan Horizon = TimeSpan.FromHours(24);
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    private IActorRef Start(string conversationId, EntitySettings? settings = null) =>
        Sys.ActorOf(ConversationActor.PropsFor(Ids.EntityId(Tenant, conversationId), settings ?? Settings()));

    private T Ask<T>(IActorRef actor, IConversationCommand command)
    {
        actor.Tell(command, TestActor);
        return ExpectMsg<T>(Wait);
    }

    private static string Json(object o) =>
        System.Text.Json.JsonSerializer.Serialize(o, Caas.Actors.Serialization.CaasSerializer.Json);

    private void CreateGroup(IActorRef actor, string id) =>
        Ask<ConversationReply>(actor, new CreateConversation(Tenant, id, "alice", ConversationTypes.Group, "Team",
            [new InitialMember("bob", Role.Member)]));

    [Fact]
    public void A_stale_incarnation_whose_sequence_number_another_wrote_stops_and_its_command_is_retried_not_refused()
    {
        // Two incarnations of one entity, as when a node is downed while it still runs and its shards have moved on.
        var first = Start("twin");
        CreateGroup(first, "twin");
        var stale = Start("twin");
        Assert.Equal(0, Ask<ConversationView>(stale, new GetConversation(Tenant, "twin", "alice")).LastSeq);
        Assert.Equal(1, Ask<MessageAck>(first, new PostMessage(Tenant, "twin", "bob", "m1", new MessageContent("text", "one"), Horizon)).Seq);

        // The stale one's write collides with the other's: not a refusal (the sender would give the message up) but
        // a retry, and the entity stops so that the retry meets a recovered incarnation.
        Watch(stale);
        var answer = Ask<Rejection>(stale, new PostMessage(Tenant, "twin", "bob", "m2", new MessageContent("text", "two"), Horizon));
        Assert.Equal(ErrorCodes.Unavailable, answer.Code);
        ExpectTerminated(stale, Wait);

        StopAndWait(first);
        var again = Start("twin");
        Assert.Equal(2, Ask<MessageAck>(again, new PostMessage(Tenant, "twin", "bob", "m2", new MessageContent("text", "two"), Horizon)).Seq);
        Assert.Equal(2, Ask<ConversationView>(again, new GetConversation(Tenant, "twin", "alice")).LastSeq);
    }

    [Fact]
    public void Persists_and_recovers_every_kind_of_change()
    {
        var actor = Start("c1");
        CreateGroup(actor, "c1");
        Ask<ConversationReply>(actor, new AddMember(Tenant, "c1", "alice", "carol", Role.Moderator));
        for (var i = 1; i <= 3; i++)
            Assert.Equal(i, Ask<MessageAck>(actor, new PostMessage(Tenant, "c1", "bob", $"m{i}", new MessageContent("text", $"hi {i}"), Horizon)).Seq);
        Ask<MessageChanged>(actor, new EditMessage(Tenant, "c1", "bob", 2, new MessageContent("text", "edited")));
        Ask<MessageChanged>(actor, new AddReaction(Tenant, "c1", "alice", 1, "👍"));
        Ask<MessageChanged>(actor, new DeleteMessage(Tenant, "c1", "carol", 3));
        Ask<Done>(actor, new Moderate(Tenant, "c1", "alice", ModerationAction.Mute, "bob", TimeSpan.FromHours(1), "spam"));
        var before = Ask<ConversationView>(actor, new GetConversation(Tenant, "c1", "alice"));

        StopAndWait(actor);
        var again = Start("c1");

        var after = Ask<ConversationView>(again, new GetConversation(Tenant, "c1", "alice"));
        Assert.Equal(before.LastSeq, after.LastSeq);
        Assert.Equal(Json(before), Json(after));
        Assert.Equal(3, after.LastSeq);
        // the mute and the delete survived recovery
        Assert.Equal(ErrorCodes.Muted, Ask<Rejection>(again, new PostMessage(Tenant, "c1", "bob", "m4", new MessageContent("text", "x"), Horizon)).Code);
        Assert.True(Ask<MessageChanged>(again, new DeleteMessage(Tenant, "c1", "carol", 3)).Deleted);
        var reacted = Ask<MessageChanged>(again, new AddReaction(Tenant, "c1", "alice", 1, "👍"));
        Assert.Equal(new[] { "alice" }, reacted.Reactions["👍"].ToArray());
        // numbering continues without a gap, and a repeat answers the original acknowledgement
        Assert.Equal(4, Ask<MessageAck>(again, new PostMessage(Tenant, "c1", "carol", "m4", new MessageContent("text", "x"), Horizon)).Seq);
        var repeat = Ask<MessageAck>(again, new PostMessage(Tenant, "c1", "bob", "m1", new MessageContent("text", "hi 1"), Horizon));
        Assert.True(repeat.Repeat);
        Assert.Equal(1, repeat.Seq);
    }

    [Fact]
    public async Task Snapshots_every_n_events_and_recovers_from_the_snapshot()
    {
        var actor = Start("c2");
        CreateGroup(actor, "c2");
        for (var i = 1; i <= 12; i++)
            Ask<MessageAck>(actor, new PostMessage(Tenant, "c2", "alice", $"s{i}", new MessageContent("text", "x"), Horizon));

        var pid = ConversationActor.PersistenceIdOf(Ids.EntityId(Tenant, "c2"));
        var store = Persistence.Instance.Apply(Sys).SnapshotStoreFor(null);
        LoadSnapshotResult? loaded = null;
        await AwaitAssertAsync(async () =>
        {
            loaded = await store.Ask<LoadSnapshotResult>(new LoadSnapshot(pid, SnapshotSelectionCriteria.Latest, long.MaxValue), Wait);
            Assert.NotNull(loaded.Snapshot);
            Assert.Equal(10, loaded.Snapshot.Metadata.SequenceNr);
        }, Wait);
        var snap = Assert.IsType<ConversationState>(loaded!.Snapshot!.Snapshot);
        Assert.Equal(9, snap.LastSeq);

        StopAndWait(actor);
        var again = Start("c2");
        Assert.Equal(12, Ask<ConversationView>(again, new GetConversation(Tenant, "c2", "bob")).LastSeq);
        Assert.Equal(13, Ask<MessageAck>(again, new PostMessage(Tenant, "c2", "bob", "s13", new MessageContent("text", "x"), Horizon)).Seq);
    }

    [Fact]
    public void Passivates_when_idle_and_recovers_afterwards()
    {
        var settings = Settings(passivateAfter: TimeSpan.FromMilliseconds(500));
        var props = ConversationActor.PropsFor(Ids.EntityId(Tenant, "c3"), settings);
        var parent = Sys.ActorOf(Props.Create(() => new ParentProbe(props, TestActor)));
        parent.Tell(new CreateConversation(Tenant, "c3", "alice", ConversationTypes.Channel, "News", []), TestActor);
        ExpectMsg<ConversationReply>(Wait);
        ExpectMsg<Passivate>(Wait);

        var again = Start("c3");
        var view = Ask<ConversationView>(again, new GetConversation(Tenant, "c3", "alice"));
        Assert.Equal("News", view.Title);
    }

    [Fact]
    public void Commands_keep_an_entity_from_passivating_until_they_stop()
    {
        // Reads every 100 ms against a passivate-after of 5 s: a spurious passivation would need a 5 s gap between two.
        var settings = Settings(passivateAfter: TimeSpan.FromSeconds(5));
        var props = ConversationActor.PropsFor(Ids.EntityId(Tenant, "c3b"), settings);
        var parent = Sys.ActorOf(Props.Create(() => new ParentProbe(props, TestActor)));
        parent.Tell(new CreateConversation(Tenant, "c3b", "alice", ConversationTypes.Channel, "News", []), TestActor);
        ExpectMsg<ConversationReply>(Wait);
        var busyUntil = DateTime.UtcNow + TimeSpan.FromSeconds(6);
        while (DateTime.UtcNow < busyUntil)
        {
            parent.Tell(new GetConversation(Tenant, "c3b", "alice"), TestActor);
            // Anything but the reply (a Passivate) fails here.
            ExpectMsg<ConversationView>(Wait);
            Thread.Sleep(100);
        }
        // Quiet now: it goes within about 1.25 times passivate-after.
        ExpectMsg<Passivate>(Wait);
    }

    [Theory]
    [InlineData(120_000, 30_000.0)]
    [InlineData(500, 125.0)]
    [InlineData(20, 10.0)]
    public void Idleness_is_looked_at_four_times_per_passivate_after_and_at_most_every_10_ms(int passivateAfterMs, double everyMs) =>
        Assert.Equal(everyMs, ConversationActor.IdleCheckEvery(TimeSpan.FromMilliseconds(passivateAfterMs))!.Value.TotalMilliseconds, 3);

    [Fact]
    public void Passivation_off_needs_no_idle_check()
    {
        Assert.Null(ConversationActor.IdleCheckEvery(TimeSpan.Zero));
        Assert.Null(ConversationActor.IdleCheckEvery(Timeout.InfiniteTimeSpan));
        Assert.Null(ConversationActor.IdleCheckEvery(TimeSpan.MaxValue));
    }

    [Fact]
    public async Task Events_are_tagged_by_kind_and_tenant_and_readable_by_tag()
    {
        var actor = Start("c4");
        CreateGroup(actor, "c4");
        Ask<MessageAck>(actor, new PostMessage(Tenant, "c4", "bob", "q1", new MessageContent("text", "hello"), Horizon));
        var other = Sys.ActorOf(ConversationActor.PropsFor(Ids.EntityId("t2", "c4"), Settings()));
        other.Tell(new CreateConversation("t2", "c4", "zed", ConversationTypes.Channel, null, []), TestActor);
        ExpectMsg<ConversationReply>(Wait);

        var journal = PersistenceQuery.Get(Sys).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);
        var materializer = Sys.Materializer();
        await AwaitAssertAsync(async () =>
        {
            var all = await journal.CurrentEventsByTag(ConversationActor.KindTag, Offset.NoOffset()).RunWith(Sink.Seq<EventEnvelope>(), materializer);
            Assert.Equal(3, all.Count);
            var t1 = await journal.CurrentEventsByTag(Ids.TenantTag(Tenant), Offset.NoOffset()).RunWith(Sink.Seq<EventEnvelope>(), materializer);
            Assert.Equal([typeof(ConversationCreated), typeof(MessagePosted)], t1.Select(e => e.Event.GetType()));
            var posted = (MessagePosted)t1[1].Event;
            Assert.Equal("hello", posted.Content.Text);
            Assert.True(((Sequence)t1[1].Offset).Value > ((Sequence)t1[0].Offset).Value);
        }, Wait);

        var byId = await journal.CurrentEventsByPersistenceId(ConversationActor.PersistenceIdOf(Ids.EntityId("t2", "c4")), 0, long.MaxValue)
            .RunWith(Sink.Seq<EventEnvelope>(), materializer);
        Assert.IsType<ConversationCreated>(Assert.Single(byId).Event);
    }
}

public sealed class ConversationActorOnSqlite() : ConversationActorSpecs("sqlite");

public sealed class ConversationActorOnPostgres() : ConversationActorSpecs("postgres");
