using System.Text.Json;
using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Streams.Kafka;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;
using Confluent.Kafka;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Xunit;

namespace Caas.Streams.Tests.Kafka;

/// <summary>
/// chat.events against the real broker when a journal transaction commits after later rows were read (parallel journal
/// writers on PostgreSQL) and the plugin's gap wait has run out: the tag stream passes the row by, and the topic must
/// still carry every event of the conversation once, in order.
/// </summary>
[Collection("kafka")]
public sealed class ChatEventsLateCommitTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData("swept")]
    [InlineData("with-the-next-event")]
    public async Task An_event_the_tag_stream_passed_by_is_published_in_order_and_once(string repair)
    {
        using var scene = await GapScene.StartAsync("kafka-gaps", "t-klate", repair == "swept",
            "caas.projections.min-backoff = 200ms\ncaas.projections.max-backoff = 2s");
        var (system, storage, tenant) = (scene.System, scene.Storage, scene.Tenant);
        await using var store = new ReadModelStore(storage);
        await store.EnsureSchemaAsync();
        var name = KafkaTestBroker.NewName("late");
        var settings = KafkaTestBroker.Settings(name);
        await KafkaTestBroker.CreateTopicsAsync(2, settings.EventsTopic);

        var offsets = new ProjectionOffsetStore(store);
        using var publisher = new KafkaPublisher(settings, NullLogger.Instance);
        var projection = system.ActorOf(ChatEventsProjection.PropsFor(publisher, offsets, settings, ProjectionSettings.From(system.Settings.Config),
            ct => JournalDb.OpenAsync(storage, ct)));
        async Task<long> JournalMaxAsync()
        {
            await using var c = await store.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT MAX(ordering) FROM journal";
            return Convert.ToInt64(await cmd.ExecuteScalarAsync());
        }
        var first = await JournalMaxAsync();
        await Polling.TrueAsync(async () => await offsets.LoadAsync(ChatEventsProjection.Name) >= first, "the first rows to be published");

        // A journal writer whose transaction has its ordering value but does not commit yet.
        await using var hold = await JournalHold.StartAsync(storage, "c-slow", 4243);
        var held = scene.PostSlow("s-2");
        await hold.WaitUntilHeldAsync();

        // A later row commits and is published: the tag stream has read past the held ordering value. (Its acknowledgement
        // waits: the journal answers writes in the order they came.)
        var later = scene.PostFast("f-1");
        var passed = 0L;
        await Polling.TrueAsync(async () =>
        {
            await using var c = await store.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = $"SELECT MAX(ordering) FROM journal WHERE persistence_id = '{ConversationActor.PersistenceIdOf(Ids.EntityId(tenant, "c-fast"))}'";
            passed = Convert.ToInt64(await cmd.ExecuteScalarAsync());
            return await offsets.LoadAsync(ChatEventsProjection.Name) >= passed && passed > first;
        }, "the later row to be published");
        Assert.False(held.IsCompleted);

        // The held transaction commits now, below the projection's offset.
        await hold.ReleaseAsync();
        Assert.Equal(2, Assert.IsType<MessageAck>(await held).Seq);
        Assert.IsType<MessageAck>(await later);
        // Swept: the late row is the conversation's last, found by the sweep. Otherwise the next event shows the hole.
        var expected = 3;
        if (repair != "swept")
        {
            Assert.IsType<MessageAck>(await scene.PostSlow("s-3"));
            expected = 4;
        }

        var config = settings.ConsumerConfig("verify");
        config.GroupId = "verify-" + name;
        using var consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Subscribe(settings.EventsTopic);
        var slowSeqs = new List<long>();
        var fastSeqs = new List<long>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while ((slowSeqs.Count < expected || fastSeqs.Count < 2) && DateTime.UtcNow < deadline)
        {
            var r = KafkaFixtures.ConsumeNext(consumer);
            if (r is null) continue;
            var value = JsonDocument.Parse(r.Message.Value).RootElement;
            var seq = value.GetProperty("seq").GetInt64();
            (value.GetProperty("conversation_id").GetString() == "c-slow" ? slowSeqs : fastSeqs).Add(seq);
        }
        // Nothing missing, nothing twice, and in each conversation's order.
        Assert.Equal(Enumerable.Range(1, expected).Select(n => (long)n), slowSeqs);
        Assert.Equal([1L, 2L], fastSeqs);
        // Nothing more arrives (a repeat would come after them).
        for (var until = DateTime.UtcNow + TimeSpan.FromSeconds(2); DateTime.UtcNow < until;)
            Assert.Null(KafkaFixtures.ConsumeNext(consumer));
        await projection.GracefulStop(TimeSpan.FromSeconds(10));
    }
}
