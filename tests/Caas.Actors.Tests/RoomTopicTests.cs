using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Rooms;

namespace Caas.Actors.Tests;

/// <summary>
/// Sharded room topics (<c>caas.rooms.topics = sharded</c>): the topic actor's subscriptions and fan-out, where the
/// conversation region puts it, and the setting. The cluster behaviour (two nodes, a node leaving) is in
/// Caas.Web.Tests' TwoNodeShardedTopicHubTests.
/// </summary>
public sealed class RoomTopicTests : Akka.TestKit.Xunit2.TestKit
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static RoomSignal Signal(string conversation, string user) =>
        new("t1", conversation, RoomSignalKinds.Typing, user, "conn-" + user, "node", null, DateTimeOffset.UtcNow);

    [Fact]
    public void A_topic_sends_each_message_once_to_each_subscriber_and_forgets_one_that_stops_or_leaves()
    {
        var topic = Sys.ActorOf(Props.Create(() => new RoomTopicActor(TimeSpan.FromMinutes(2))));
        var a = CreateTestProbe();
        var b = CreateTestProbe();
        topic.Tell(new RoomTopicSubscribe("t1", "c1"), a.Ref);
        a.ExpectMsg<RoomTopicSubscribed>(Wait);
        Assert.Equal(topic, a.LastSender);
        topic.Tell(new RoomTopicSubscribe("t1", "c1"), b.Ref);
        b.ExpectMsg<RoomTopicSubscribed>(Wait);
        // Subscribing twice is one subscription.
        topic.Tell(new RoomTopicSubscribe("t1", "c1"), b.Ref);
        b.ExpectMsg<RoomTopicSubscribed>(Wait);
        topic.Tell(new GetRoomTopic("t1", "c1"), TestActor);
        Assert.Equal(2, ExpectMsg<RoomTopicView>(Wait).Subscribers);

        var e1 = new ConversationEventPublished("t1", "c1", 1, new ConversationDeleted(new EventMeta("t1", "alice", DateTimeOffset.UtcNow)));
        var events = new ConversationEventsPublished([e1]);
        topic.Tell(events);
        topic.Tell(Signal("c1", "bob"));
        foreach (var probe in new[] { a, b })
        {
            Assert.Same(events, probe.ExpectMsg<ConversationEventsPublished>(Wait));
            Assert.Equal("bob", probe.ExpectMsg<RoomSignal>(Wait).UserId);
            probe.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        }

        // One leaves, the other stops: neither gets anything more.
        topic.Tell(new RoomTopicUnsubscribe("t1", "c1"), a.Ref);
        Watch(b.Ref);
        Sys.Stop(b.Ref);
        ExpectTerminated(b.Ref, Wait);
        AwaitAssert(() =>
        {
            topic.Tell(new GetRoomTopic("t1", "c1"), TestActor);
            Assert.Equal(0, ExpectMsg<RoomTopicView>(Wait).Subscribers);
        }, Wait);
        topic.Tell(Signal("c1", "carol"));
        a.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void A_topic_stops_on_hand_off_so_that_its_subscribers_see_it_terminate()
    {
        var topic = Sys.ActorOf(Props.Create(() => new RoomTopicActor(TimeSpan.FromMinutes(2))));
        var feed = CreateTestProbe();
        topic.Tell(new RoomTopicSubscribe("t1", "c1"), feed.Ref);
        feed.ExpectMsg<RoomTopicSubscribed>(Wait);
        feed.Watch(topic);
        topic.Tell(StopEntity.Instance);
        feed.ExpectTerminated(topic, Wait);
    }

    [Fact]
    public void A_topic_lives_in_its_conversations_shard_and_takes_the_room_messages()
    {
        var extractor = new ConversationMessageExtractor(100);
        var signal = Signal("c_42", "bob");
        var topicId = extractor.EntityId(signal);
        Assert.Equal(RoomTopicIds.Of("t1", "c_42"), topicId);
        Assert.True(RoomTopicIds.IsTopic(topicId!));
        Assert.False(RoomTopicIds.IsTopic(Ids.EntityId("t1", "c_42")));
        // Same shard as the conversation entity, so the entity's publish stays on its node.
        var conversationShard = extractor.ShardId(Ids.EntityId("t1", "c_42"));
        Assert.Equal(conversationShard, extractor.ShardId(topicId!));
        Assert.Equal(conversationShard, extractor.ShardId(signal));
        // Several conversations: their topics follow them shard for shard, and the shards differ between them.
        var shards = Enumerable.Range(0, 50).Select(i => extractor.ShardId(Ids.EntityId("t1", "c" + i))).ToList();
        Assert.Equal(shards, Enumerable.Range(0, 50).Select(i => extractor.ShardId(new RoomTopicSubscribe("t1", "c" + i))!).ToList());
        Assert.True(shards.Distinct().Count() > 1);
        // The conversation entity's own commands keep their ids and shards.
        Assert.Equal(Ids.EntityId("t1", "c_42"), extractor.EntityId(new GetConversation("t1", "c_42", "alice")));
        Assert.Null(extractor.EntityId("not a room message"));
        var published = new ConversationEventsPublished(ImmutableArray.Create(
            new ConversationEventPublished("t1", "c_42", 3, new ConversationDeleted(new EventMeta("t1", "alice", DateTimeOffset.UtcNow)))));
        Assert.Equal(topicId, extractor.EntityId(published));
    }

    [Fact]
    public void The_setting_takes_pubsub_or_sharded_and_refuses_anything_else()
    {
        Assert.False(RoomTopicRouter.IsSharded(Config.Empty));
        Assert.False(RoomTopicRouter.IsSharded(ConfigurationFactory.ParseString("caas.rooms.topics = pubsub")));
        Assert.True(RoomTopicRouter.IsSharded(ConfigurationFactory.ParseString("caas.rooms.topics = Sharded")));
        var error = Assert.Throws<ConfigurationException>(() => RoomTopicRouter.IsSharded(ConfigurationFactory.ParseString("caas.rooms.topics = gossip")));
        Assert.Contains("CAAS_ROOM_TOPICS", error.Message);
    }
}
