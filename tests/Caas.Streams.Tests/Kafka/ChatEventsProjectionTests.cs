using System.Text.Json;
using Akka.Actor;
using Caas.Actors.Conversations;
using Caas.Streams.Kafka;
using Caas.Streams.Pipeline;
using Caas.Streams.ReadModel;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using static Caas.Streams.Tests.Kafka.KafkaFixtures;

namespace Caas.Streams.Tests.Kafka;

/// <summary>The chat.events projection against the real 0.9 broker, which is killed (-9) and restarted mid-stream.</summary>
[Collection("kafka")]
public sealed class ChatEventsProjectionTests
{
    [Fact]
    public async Task While_the_broker_is_down_the_breaker_opens_and_the_offset_holds_then_the_backlog_drains_with_nothing_lost()
    {
        const string tenant = "t-kevents";
        var name = KafkaTestBroker.NewName("events");
        var settings = KafkaTestBroker.Settings(name) with { BreakerMaxFailures = 2, BreakerReset = TimeSpan.FromSeconds(2) };
        await KafkaTestBroker.CreateTopicsAsync(4, settings.EventsTopic);
        await using var node = await PipelineNode.StartAsync();
        using var alice = node.Client(tenant, "alice");
        var ids = await CreateConversationsAsync(alice, 10);
        var store = node.Services.GetRequiredService<ReadModelStore>();
        var offsets = new ProjectionOffsetStore(store);
        using var publisher = new KafkaPublisher(settings, NullLogger.Instance);
        var system = node.Services.GetRequiredService<ActorSystem>();
        var projection = system.ActorOf(ChatEventsProjection.PropsFor(publisher, offsets, settings,
            ProjectionSettings.Default with { MinBackoff = TimeSpan.FromMilliseconds(200), MaxBackoff = TimeSpan.FromSeconds(2) }));

        // A loaded machine may answer overloaded (ask timeout); a retry with the same message_id is safe, and the test
        // needs every message persisted.
        async Task PostAsync(int from, int count) => await Task.WhenAll(Enumerable.Range(from, count).Select(async n =>
        {
            for (var attempt = 0; ; attempt++)
            {
                var outcome = await node.Ingest.SubmitAsync(new IngestMessage(tenant, ids[n % ids.Count], "alice", $"e-{n}",
                    new MessageContent("text", $"n={n}"), IngestSource.Bulk));
                if (outcome is Persisted) return;
                Assert.True(attempt < 20, $"e-{n} was not persisted: {outcome}");
                await Task.Delay(500);
            }
        }));
        async Task<long> JournalMaxAsync()
        {
            await using var c = await store.OpenAsync();
            return await ScalarAsync(c, "SELECT MAX(ordering) FROM journal");
        }

        await PostAsync(0, 200);
        var beforeKill = await JournalMaxAsync();
        await WaitUntilAsync(async () => await offsets.LoadAsync(ChatEventsProjection.Name) >= beforeKill, TimeSpan.FromSeconds(60));

        KafkaTestBroker.Kill();
        var downSince = DateTime.UtcNow;
        await PostAsync(200, 300);
        var breaker = ChatEventsProjection.BreakerState.WithLabels(ChatEventsProjection.Name);
        await WaitUntilAsync(() => breaker.Value == 2, TimeSpan.FromSeconds(60));
        // Down for about 30 s: the offset holds where the broker last acknowledged.
        var remaining = TimeSpan.FromSeconds(30) - (DateTime.UtcNow - downSince);
        if (remaining > TimeSpan.Zero) await Task.Delay(remaining);
        Assert.True(await offsets.LoadAsync(ChatEventsProjection.Name) <= beforeKill, "the offset moved while the broker was down");
        await KafkaTestBroker.StartAsync();

        var journalMax = await JournalMaxAsync();
        await WaitUntilAsync(async () => await offsets.LoadAsync(ChatEventsProjection.Name) >= journalMax, TimeSpan.FromSeconds(90));
        Assert.Equal(0, breaker.Value);

        // Every event of the journal is on the topic (at least once), each conversation's on one partition in order.
        long expected;
        await using (var c = await store.OpenAsync())
            expected = await ScalarAsync(c, $"SELECT COUNT(*) FROM journal WHERE persistence_id LIKE 'conversation|{tenant}|%'");
        var config = settings.ConsumerConfig("verify");
        config.GroupId = "verify-" + name;
        using var consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Subscribe(settings.EventsTopic);
        var seen = new Dictionary<string, (int Partition, HashSet<long> Seqs)>();
        var keys = new HashSet<string>();
        var posted = new HashSet<string>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (keys.Count < expected && DateTime.UtcNow < deadline)
        {
            var r = KafkaFixtures.ConsumeNext(consumer);
            if (r is null) continue;
            var value = JsonDocument.Parse(r.Message.Value).RootElement;
            var conversation = value.GetProperty("conversation_id").GetString()!;
            var seq = value.GetProperty("seq").GetInt64();
            Assert.Equal(tenant, value.GetProperty("tenant_id").GetString());
            Assert.StartsWith("conv.", value.GetProperty("type").GetString());
            Assert.Equal($"{tenant}|{conversation}|{seq}", r.Message.Key);
            Assert.Equal(JsonValueKind.Object, value.GetProperty("payload").ValueKind);
            if (!seen.TryGetValue(conversation, out var s)) seen[conversation] = s = (r.Partition.Value, []);
            Assert.Equal(s.Partition, r.Partition.Value);
            // A repeat (at-least-once after the outage) is the same key again; new seqs arrive in order.
            if (keys.Add(r.Message.Key)) Assert.Equal(s.Seqs.Count + 1, seq);
            s.Seqs.Add(seq);
            if (value.GetProperty("type").GetString()!.StartsWith("conv.message-posted.", StringComparison.Ordinal))
                posted.Add(value.GetProperty("payload").GetProperty("message_id").GetString()!);
        }
        Assert.Equal(expected, keys.Count);
        Assert.Equal(ids.Count, seen.Count);
        Assert.Equal(Enumerable.Range(0, 500).Select(n => $"e-{n}").ToHashSet(), posted);
        await projection.GracefulStop(TimeSpan.FromSeconds(10));
    }
}
