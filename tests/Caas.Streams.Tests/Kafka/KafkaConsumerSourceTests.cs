using Akka.Actor;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Streams.Kafka;
using Confluent.Kafka;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using static Caas.Streams.Tests.Kafka.KafkaFixtures;

namespace Caas.Streams.Tests.Kafka;

/// <summary>The committable source's backpressure against the real 0.9 broker: a full hand-off buffer and a stalled stream.</summary>
[Collection("kafka")]
public sealed class KafkaConsumerSourceTests
{
    private const int Partitions = 4;

    [Fact]
    public async Task A_slow_stream_is_waited_for_without_pausing_a_partition_and_gets_every_record_once_in_order()
    {
        const int total = 2_000;
        var name = KafkaTestBroker.NewName("slowsrc");
        // A hand-off buffer of 20 is full nearly all the time; no stall is long enough to pause.
        var settings = KafkaTestBroker.Settings(name) with
        {
            BufferSize = 20, MaxPendingPerPartition = 1_000_000, StallPauseAfter = TimeSpan.FromMinutes(5),
        };
        await KafkaTestBroker.CreateTopicsAsync(Partitions, settings.MessagesTopic);
        Produce(settings, total);
        using var system = ActorSystem.Create("slowsrc");
        var seen = new List<(int Partition, long Offset, string Value)>();
        var (control, done) = KafkaConsumerSource.Create(settings, [settings.MessagesTopic], NullLogger.Instance, "slow")
            .SelectAsync(1, async r =>
            {
                await Task.Delay(1);
                lock (seen) seen.Add((r.Partition, r.Offset, System.Text.Encoding.UTF8.GetString(r.Value!)));
                r.Complete();
                return r;
            })
            .ToMaterialized(Sink.Ignore<CommittableRecord>(), Keep.Both)
            .Run(system.Materializer());
        await WaitUntilAsync(() => { lock (seen) return seen.Count >= total; }, TimeSpan.FromSeconds(120));
        await WaitUntilAsync(() => control.Committed.Values.Sum() >= total, TimeSpan.FromSeconds(30));
        await control.StopAsync();
        await done.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, control.StallPauses);
        AssertOnceInOrder(seen, total);
    }

    [Fact]
    public async Task A_stalled_stream_pauses_every_partition_and_after_it_moves_gets_every_record_once_in_order()
    {
        const int total = 1_000;
        var name = KafkaTestBroker.NewName("stallsrc");
        var settings = KafkaTestBroker.Settings(name) with
        {
            BufferSize = 20, MaxPendingPerPartition = 1_000_000, StallPauseAfter = TimeSpan.FromMilliseconds(300),
        };
        await KafkaTestBroker.CreateTopicsAsync(Partitions, settings.MessagesTopic);
        Produce(settings, total);
        using var system = ActorSystem.Create("stallsrc");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var seen = new List<(int Partition, long Offset, string Value)>();
        var (control, done) = KafkaConsumerSource.Create(settings, [settings.MessagesTopic], NullLogger.Instance, "stall")
            .SelectAsync(1, async r =>
            {
                // The stream takes its first record and then nothing until the gate opens.
                await gate.Task;
                lock (seen) seen.Add((r.Partition, r.Offset, System.Text.Encoding.UTF8.GetString(r.Value!)));
                r.Complete();
                return r;
            })
            .ToMaterialized(Sink.Ignore<CommittableRecord>(), Keep.Both)
            .Run(system.Materializer());
        // The poll thread keeps polling with every partition paused (a rebalance or a heartbeat still gets through).
        await WaitUntilAsync(() => control.Snapshot().Paused == Partitions, TimeSpan.FromSeconds(60));
        Assert.True(control.StallPauses >= Partitions);
        Assert.Empty(seen);
        gate.SetResult();
        await WaitUntilAsync(() => { lock (seen) return seen.Count >= total; }, TimeSpan.FromSeconds(120));
        await WaitUntilAsync(() => control.Snapshot().Paused == 0, TimeSpan.FromSeconds(30));
        await WaitUntilAsync(() => control.Committed.Values.Sum() >= total, TimeSpan.FromSeconds(30));
        await control.StopAsync();
        await done.WaitAsync(TimeSpan.FromSeconds(30));

        AssertOnceInOrder(seen, total);
    }

    private static void Produce(KafkaSettings settings, int total)
    {
        using var producer = KafkaTestBroker.Producer(settings);
        for (var n = 0; n < total; n++)
            producer.Produce(settings.MessagesTopic, new Message<string, string> { Key = $"k{n % 50}", Value = $"r{n}" });
        producer.Flush(TimeSpan.FromSeconds(60));
    }

    private static void AssertOnceInOrder(List<(int Partition, long Offset, string Value)> seen, int total)
    {
        // Every record exactly once (the values are unique), and each partition's records in offset order.
        Assert.Equal(total, seen.Count);
        Assert.Equal(total, seen.Select(s => s.Value).Distinct().Count());
        foreach (var partition in seen.GroupBy(s => s.Partition))
        {
            var offsets = partition.Select(s => s.Offset).ToList();
            Assert.Equal(offsets.OrderBy(o => o), offsets);
        }
    }
}
