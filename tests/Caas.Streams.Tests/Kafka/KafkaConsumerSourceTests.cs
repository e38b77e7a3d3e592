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
        // A hand-off buffer of 20 is full nearly all the time; no stall is long enough to pause.
        await using var run = await SourceRun.StartAsync("slowsrc", total, TimeSpan.FromMinutes(5), () => Task.Delay(1));
        var (control, seen) = (run.Control, run.Seen);
        await run.FinishAsync(total);

        Assert.Equal(0, control.StallPauses);
        AssertOnceInOrder(seen, total);
    }

    [Fact]
    public async Task A_stalled_stream_pauses_every_partition_and_after_it_moves_gets_every_record_once_in_order()
    {
        const int total = 1_000;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // The stream takes its first record and then nothing until the gate opens.
        await using var run = await SourceRun.StartAsync("stallsrc", total, TimeSpan.FromMilliseconds(300), () => gate.Task);
        var (control, seen) = (run.Control, run.Seen);
        // The poll thread keeps polling with every partition paused (a rebalance or a heartbeat still gets through).
        await WaitUntilAsync(() => control.Snapshot().Paused == Partitions, TimeSpan.FromSeconds(60));
        Assert.True(control.StallPauses >= Partitions);
        Assert.Empty(seen);
        gate.SetResult();
        await WaitUntilAsync(() => { lock (seen) return seen.Count >= total; }, TimeSpan.FromSeconds(120));
        await WaitUntilAsync(() => control.Snapshot().Paused == 0, TimeSpan.FromSeconds(30));
        await run.FinishAsync(total);

        AssertOnceInOrder(seen, total);
    }

    /// <summary>
    /// A topic of <see cref="Partitions"/> partitions with <c>total</c> records, and the source reading it behind a
    /// hand-off buffer of 20 into a stream that takes one record at a time, each after <c>before</c> completes.
    /// </summary>
    private sealed class SourceRun : IAsyncDisposable
    {
        private readonly ActorSystem _system;
        private readonly Task _done;

        private SourceRun(ActorSystem system, KafkaConsumerControl control, Task done)
        {
            _system = system;
            Control = control;
            _done = done;
        }

        public KafkaConsumerControl Control { get; }
        public List<(int Partition, long Offset, string Value)> Seen { get; } = [];

        public static async Task<SourceRun> StartAsync(string prefix, int total, TimeSpan stallPauseAfter, Func<Task> before)
        {
            var name = KafkaTestBroker.NewName(prefix);
            var settings = KafkaTestBroker.Settings(name) with
            {
                BufferSize = 20, MaxPendingPerPartition = 1_000_000, StallPauseAfter = stallPauseAfter,
            };
            await KafkaTestBroker.CreateTopicsAsync(Partitions, settings.MessagesTopic);
            using (var producer = KafkaTestBroker.Producer(settings))
            {
                for (var n = 0; n < total; n++)
                    producer.Produce(settings.MessagesTopic, new Message<string, string> { Key = $"k{n % 50}", Value = $"r{n}" });
                producer.Flush(TimeSpan.FromSeconds(60));
            }
            var system = ActorSystem.Create(prefix);
            List<(int, long, string)>? seen = null;
            var (control, done) = KafkaConsumerSource.Create(settings, [settings.MessagesTopic], NullLogger.Instance, prefix)
                .SelectAsync(1, async r =>
                {
                    await before();
                    lock (seen!) seen.Add((r.Partition, r.Offset, System.Text.Encoding.UTF8.GetString(r.Value!)));
                    r.Complete();
                    return r;
                })
                .ToMaterialized(Sink.Ignore<CommittableRecord>(), Keep.Both)
                .Run(system.Materializer());
            var run = new SourceRun(system, control, done);
            seen = run.Seen;
            return run;
        }

        /// <summary>Waits for every record and its commit, then stops the consumer.</summary>
        public async Task FinishAsync(int total)
        {
            await WaitUntilAsync(() => { lock (Seen) return Seen.Count >= total; }, TimeSpan.FromSeconds(120));
            await WaitUntilAsync(() => Control.Committed.Values.Sum() >= total, TimeSpan.FromSeconds(30));
            await Control.StopAsync();
            await _done.WaitAsync(TimeSpan.FromSeconds(30));
        }

        public async ValueTask DisposeAsync()
        {
            await Control.StopAsync();
            await _system.Terminate();
        }
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
