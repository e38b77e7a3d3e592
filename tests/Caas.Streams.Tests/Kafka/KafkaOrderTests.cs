using Akka.Actor;
using Akka.Streams;
using Caas.Enrichment;
using Caas.Streams.DeadLetters;
using Caas.Streams.Kafka;
using Caas.Streams.Pipeline;
using Caas.Streams.ReadModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Prometheus;
using Xunit;
using static Caas.Streams.Tests.Kafka.KafkaFixtures;

namespace Caas.Streams.Tests.Kafka;

/// <summary>
/// Per-conversation order of Kafka records when the pipeline pushes back (a real ingest queue of one, so most
/// submissions are refused as overloaded and retried) and when the ingest stream itself fails and must restart.
/// Real 0.9 broker, real node on PostgreSQL.
/// </summary>
[Collection("kafka")]
public sealed class KafkaOrderTests
{
    /// <summary>Slows every message down a little, so a queue of one is full most of the time.</summary>
    private sealed class SlowEnricher : IEnricher
    {
        public string Name => "slow";
        public string Version => "1";

        public async ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
        {
            await Task.Delay(5, CancellationToken.None);
            return new EnrichmentResult(Name, Version, new { });
        }
    }

    [Fact]
    public async Task Records_refused_as_overloaded_are_retried_without_later_records_of_their_conversation_overtaking_them()
    {
        const int conversations = 20, perConversation = 40;
        var name = KafkaTestBroker.NewName("order");
        var settings = KafkaTestBroker.Settings(name);
        await KafkaTestBroker.CreateTopicsAsync(2, settings.MessagesTopic);
        await using var node = await PipelineNode.StartAsync("caas.pipeline.queue-size = 1\ncaas.pipeline.parallelism = 1\ncaas.pipeline.enrich-budget = 1s\n", new SlowEnricher());
        using var alice = node.Client("t-korder", "alice");
        var ids = await CreateConversationsAsync(alice, conversations);

        // Everything is on the topic before the consumer starts, so it reads far more at once than the queue takes.
        using (var producer = KafkaTestBroker.Producer(settings))
            ProduceMessages(producer, settings.MessagesTopic, "t-korder", ids, perConversation);
        var refusedBefore = OverloadedRefusals();
        var outOfTurnBefore = Counter("caas_kafka_ingest_total{outcome=\"out_of_turn\"}");
        var (control, done) = Run(node, settings, "o1");

        var store = node.Services.GetRequiredService<ReadModelStore>();
        await WaitForMessagesAsync(Opener(store), "t-korder", conversations * perConversation, TimeSpan.FromSeconds(240));
        await WaitForReadModelAsync(store, "t-korder", conversations * perConversation);
        Assert.True(OverloadedRefusals() > refusedBefore, "the test must push the pipeline into refusing records as overloaded");
        // Records sent beside the one before them (several per conversation on their way) were refused for their turn
        // when that one was refused, and sent again after it: the order below holds through that path too.
        Assert.True(Counter("caas_kafka_ingest_total{outcome=\"out_of_turn\"}") > outOfTurnBefore,
            "the test must make pipelined records wait for a refused record before them");
        await using (var c = await store.OpenAsync())
        {
            await AssertExactlyOnceInOrderAsync(c, "t-korder", ids, perConversation);
            Assert.Empty(await node.Services.GetRequiredService<DeadLetterStore>().ListAsync(null, 1, null));
        }
        await control.StopAsync();
        await done.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>A pipeline whose submissions fail unexpectedly a few times (an exception, not an answer): the fault.</summary>
    private sealed class FailingIngest(IMessageIngest inner, string failOn, int failures) : IMessageIngest
    {
        private int _left = failures;

        public Task<IngestOutcome> SubmitAsync(IngestMessage message, CancellationToken ct = default) =>
            message.MessageId == failOn && Interlocked.Decrement(ref _left) >= 0
                ? throw new InvalidOperationException("injected failure of the ingest stream")
                : inner.SubmitAsync(message, ct);
    }

    [Fact]
    public async Task A_failed_ingest_stream_restarts_with_backoff_and_loses_nothing()
    {
        const int conversations = 3, perConversation = 30;
        var name = KafkaTestBroker.NewName("restart");
        var settings = KafkaTestBroker.Settings(name) with { RestartMinBackoff = TimeSpan.FromMilliseconds(200), RestartMaxBackoff = TimeSpan.FromSeconds(2) };
        await KafkaTestBroker.CreateTopicsAsync(1, settings.MessagesTopic);
        await using var node = await PipelineNode.StartAsync();
        using var alice = node.Client("t-krestart", "alice");
        var ids = await CreateConversationsAsync(alice, conversations);
        using (var producer = KafkaTestBroker.Producer(settings))
            ProduceMessages(producer, settings.MessagesTopic, "t-krestart", ids, perConversation);

        // The stream fails twice on one record in the middle; each time it must come back and go on.
        var ingest = new FailingIngest(node.Ingest, $"{ids[1]}-{perConversation / 2}", failures: 2);
        var system = node.Services.GetRequiredService<ActorSystem>();
        var logger = node.Services.GetRequiredService<ILoggerFactory>().CreateLogger("kafka-restart-test");
        var starts = 0;
        using var stopping = new CancellationTokenSource();
        KafkaConsumerControl? current = null;
        var supervised = KafkaIngest.Supervise(
            () => KafkaIngest.Run(settings, ingest, node.Services.GetRequiredService<DeadLetterStore>(), system.Materializer(), logger, "r1"),
            control =>
            {
                Interlocked.Increment(ref starts);
                Volatile.Write(ref current, control);
            },
            settings, logger, stopping.Token);

        var store = node.Services.GetRequiredService<ReadModelStore>();
        await WaitForMessagesAsync(Opener(store), "t-krestart", conversations * perConversation, TimeSpan.FromSeconds(240));
        await WaitForReadModelAsync(store, "t-krestart", conversations * perConversation);
        Assert.Equal(3, Volatile.Read(ref starts));
        await using (var c = await store.OpenAsync())
        {
            await AssertExactlyOnceInOrderAsync(c, "t-krestart", ids, perConversation);
            Assert.Empty(await node.Services.GetRequiredService<DeadLetterStore>().ListAsync(null, 1, null));
        }
        Assert.False(supervised.IsCompleted, "the supervisor keeps the stream running until it is stopped");
        stopping.Cancel();
        await Volatile.Read(ref current)!.StopAsync();
        await supervised.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Holds the submission of one record until a record of another conversation has been submitted.</summary>
    private sealed class GatedIngest(IMessageIngest inner, string held, string conversationOfOther) : IMessageIngest
    {
        public readonly TaskCompletionSource OtherSubmitted = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task<IngestOutcome> SubmitAsync(IngestMessage message, CancellationToken ct = default)
        {
            if (message.ConversationId == conversationOfOther) OtherSubmitted.TrySetResult();
            if (message.MessageId == held) await OtherSubmitted.Task;
            return await inner.SubmitAsync(message, ct);
        }
    }

    [Fact]
    public async Task Records_waiting_behind_their_conversation_take_no_submission_slot_from_other_conversations()
    {
        const int perConversation = 5;
        var name = KafkaTestBroker.NewName("slots");
        // Two submission slots. The topic holds a run of conversation a's records, then b's: a's first takes a slot and
        // is held until b's first is submitted; a's later records wait in a's lane, and must leave the other slot to b.
        var settings = KafkaTestBroker.Settings(name) with { Parallelism = 2, MaxHeld = 100 };
        await KafkaTestBroker.CreateTopicsAsync(1, settings.MessagesTopic);
        await using var node = await PipelineNode.StartAsync();
        using var alice = node.Client("t-kslots", "alice");
        var ids = await CreateConversationsAsync(alice, 2);
        using (var producer = KafkaTestBroker.Producer(settings))
        {
            ProduceMessages(producer, settings.MessagesTopic, "t-kslots", [ids[0]], perConversation);
            ProduceMessages(producer, settings.MessagesTopic, "t-kslots", [ids[1]], perConversation);
        }
        var ingest = new GatedIngest(node.Ingest, $"{ids[0]}-0", ids[1]);
        var (control, done) = Run(node, settings, "s1", ingest);

        // With a's waiting records holding the slots, b's first record is never taken and a's first never released.
        var other = await Task.WhenAny(ingest.OtherSubmitted.Task, Task.Delay(TimeSpan.FromSeconds(90)));
        Assert.True(other == ingest.OtherSubmitted.Task, "a record of b was submitted while a's first record held its slot");
        var store = node.Services.GetRequiredService<ReadModelStore>();
        await WaitForMessagesAsync(Opener(store), "t-kslots", 2 * perConversation, TimeSpan.FromSeconds(120));
        await using (var c = await store.OpenAsync())
            await AssertExactlyOnceInOrderAsync(c, "t-kslots", ids, perConversation);
        await control.StopAsync();
        await done.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>The texts are checked in the read model, which the projection writes a little after the journal.</summary>
    private static Task WaitForReadModelAsync(ReadModelStore store, string tenant, long expected) =>
        WaitUntilAsync(async () =>
        {
            await using var c = await store.OpenAsync();
            return await ScalarAsync(c, $"SELECT COUNT(*) FROM rm_messages WHERE tenant_id = '{tenant}'") >= expected;
        }, TimeSpan.FromSeconds(180));

    /// <summary>The pipeline's count of submissions refused because its queue was full (caas_pipeline_overloaded_total).</summary>
    private static double OverloadedRefusals() => Counter("caas_pipeline_overloaded_total");

    /// <summary>A series' value in the node's metrics (name with its labels as exported), 0 before it exists.</summary>
    private static double Counter(string series)
    {
        using var stream = new MemoryStream();
        Metrics.DefaultRegistry.CollectAndExportAsTextAsync(stream).GetAwaiter().GetResult();
        var line = System.Text.Encoding.UTF8.GetString(stream.ToArray()).Split('\n')
            .SingleOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        return line is null ? 0 : double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }
}
