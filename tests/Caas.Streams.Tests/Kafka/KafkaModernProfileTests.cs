using Caas.Streams.Kafka;
using Caas.Streams.ReadModel;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Xunit;
using static Caas.Streams.Tests.Kafka.KafkaFixtures;

namespace Caas.Streams.Tests.Kafka;

/// <summary>
/// The modern-broker path (API version negotiation, idempotent producer, headers) against librdkafka's built-in
/// mock cluster (<c>test.mock.num.brokers</c>): the 0.9 test broker has none of these.
/// </summary>
public sealed class KafkaModernProfileTests
{
    [Fact]
    public async Task Records_from_an_idempotent_producer_with_headers_are_ingested_exactly_once()
    {
        // The mock cluster lives inside this client; other clients reach its brokers over loopback.
        var mockConfig = new AdminClientConfig();
        mockConfig.Set("test.mock.num.brokers", "3");
        using var cluster = new AdminClientBuilder(mockConfig).Build();
        var brokers = cluster.GetMetadata(TimeSpan.FromSeconds(10)).Brokers;
        Assert.Equal(3, brokers.Count);
        var settings = new KafkaSettings
        {
            Bootstrap = string.Join(",", brokers.Select(b => $"{b.Host}:{b.Port}")),
            Profile = KafkaProfile.Modern,
            GroupId = "g-modern",
            MessagesTopic = "m.messages",
            EventsTopic = "m.events",
            DeadLetterTopic = "m.dlq",
            TopicPartitions = 4,
            SessionTimeoutMs = 6_000,
        };
        // The mock cluster reports no controller, so AdminClient topic creation cannot be exercised on it; it
        // creates a topic (4 partitions) on first use, as a broker with auto-create does.
        await using var node = await PipelineNode.StartAsync();
        using var alice = node.Client("t-kmodern", "alice");
        var ids = await CreateConversationsAsync(alice, 20);
        var config = settings.ProducerConfig();
        Assert.True(config.EnableIdempotence);
        using (var producer = new ProducerBuilder<string, string>(config).Build())
        {
            for (var n = 0; n < 50; n++)
                foreach (var c in ids)
                    producer.Produce(settings.MessagesTopic, new Message<string, string>
                    {
                        Key = c,
                        Value = MessageJson("t-kmodern", c, "alice", $"{c}-{n}", $"n={n}"),
                        Headers = new Headers { { "tenant_id", "t-kmodern"u8.ToArray() } },
                    });
            Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
        }

        var (control, done) = Run(node, settings, "modern");
        var store = node.Services.GetRequiredService<ReadModelStore>();
        await WaitForMessagesAsync(Opener(store), "t-kmodern", 1_000, TimeSpan.FromSeconds(120));
        await WaitUntilAsync(() => KafkaConsumerControl.GroupLag(settings, settings.MessagesTopic, TimeSpan.FromSeconds(10)) == 0,
            TimeSpan.FromSeconds(30));
        Assert.True(control.CommitCount > 0);
        await using (var c = await store.OpenAsync()) await AssertExactlyOnceInOrderAsync(c, "t-kmodern", ids, 50);

        // The headers travelled (the 0.9 broker would have dropped them).
        var readerConfig = settings.ConsumerConfig("header-check");
        readerConfig.GroupId = "header-check";
        using var reader = new ConsumerBuilder<string, string>(readerConfig).Build();
        reader.Assign(new TopicPartitionOffset(settings.MessagesTopic, 0, Offset.Beginning));
        var first = reader.Consume(TimeSpan.FromSeconds(10));
        Assert.NotNull(first);
        Assert.Equal("t-kmodern"u8.ToArray(), first.Message.Headers.GetLastBytes("tenant_id"));
        await control.StopAsync();
        await done.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
