using System.Collections.Concurrent;
using Akka.Streams;
using Akka.Streams.Dsl;
using Akka.Streams.TestKit;
using Caas.Streams.Pipeline;

namespace Caas.Streams.Tests.Pipeline;

/// <summary>The batching stage alone: many elements share a step under load, bounds, failures, order.</summary>
public sealed class BatchesTests() : Akka.TestKit.Xunit2.TestKit(StreamTests.Config)
{
    private IMaterializer? _materializer;

    private IMaterializer Materializer => _materializer ??= Sys.Materializer();

    [Fact]
    public async Task Elements_arriving_while_a_step_runs_share_the_next_step_and_keep_their_order()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var batches = new ConcurrentQueue<int[]>();
        var pulled = 0;
        var done = Source.From(Enumerable.Range(1, 50))
            .Select(n =>
            {
                Interlocked.Increment(ref pulled);
                return n;
            })
            .Via(Batches.InBatches<int>(512, 1, async batch =>
            {
                batches.Enqueue(batch.ToArray());
                if (batches.Count == 1) await gate.Task;
            }, (_, e) => throw e))
            .RunWith(Sink.Seq<int>(), Materializer);

        // The first element went alone (nothing was running); the rest gather while its step is held.
        AwaitCondition(() => Volatile.Read(ref pulled) == 50);
        gate.SetResult();
        var result = await done.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(Enumerable.Range(1, 50), result);
        Assert.Equal([[1], Enumerable.Range(2, 49).ToArray()], batches.ToArray());
    }

    [Fact]
    public async Task A_step_that_blocks_its_thread_does_not_block_the_graph_and_the_rest_gather_behind_it()
    {
        // Microsoft.Data.Sqlite runs a statement and its commit synchronously under its async API. Run on the graph's
        // thread, such a step held the whole fused graph for every statement and, done before the next element came,
        // never let a batch form (one commit per message). The first step here blocks its thread until the last element
        // has been pulled, which can only happen while the graph runs on without it.
        var lastPulled = new ManualResetEventSlim();
        var batches = new ConcurrentQueue<int[]>();
        var done = Source.From(Enumerable.Range(1, 100))
            .Select(n =>
            {
                if (n == 100) lastPulled.Set();
                return n;
            })
            .Via(Batches.InBatches<int>(512, 1, batch =>
            {
                batches.Enqueue(batch.ToArray());
                if (batches.Count == 1) Assert.True(lastPulled.Wait(TimeSpan.FromSeconds(20)), "the graph stood still behind the blocked step");
                return Task.CompletedTask;
            }, (_, e) => throw e))
            .RunWith(Sink.Seq<int>(), Materializer);

        var result = await done.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(Enumerable.Range(1, 100), result);
        Assert.Equal([[1], Enumerable.Range(2, 99).ToArray()], batches.ToArray());
    }

    [Fact]
    public void Busy_steps_and_a_full_batch_stop_pulling_upstream()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var pulled = 0;
        var sink = Source.From(Enumerable.Range(1, 1_000))
            .Select(n =>
            {
                Interlocked.Increment(ref pulled);
                return n;
            })
            .Via(Batches.InBatches<int>(5, 2, _ => gate.Task, (_, e) => throw e))
            .RunWith(this.SinkProbe<int>(), Materializer);
        sink.Request(1_000);

        // Two steps of one element each run and the next batch is full at five; Akka's own buffers may hold one batch
        // and one element more. Then nothing more is taken.
        AwaitCondition(() => Volatile.Read(ref pulled) >= 7);
        sink.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        var held = Volatile.Read(ref pulled);
        Assert.InRange(held, 7, 1 + 1 + 5 + 5 + 1);
        sink.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(held, Volatile.Read(ref pulled));

        gate.SetResult();
        Assert.Equal(Enumerable.Range(1, 20), sink.ExpectNextN(20));
    }

    [Fact]
    public void A_slow_downstream_runs_no_step_and_stops_the_pulls()
    {
        var steps = 0;
        var pulled = 0;
        var sink = Source.From(Enumerable.Range(1, 1_000))
            .Select(n =>
            {
                Interlocked.Increment(ref pulled);
                return n;
            })
            .Via(Batches.InBatches<int>(4, 2, _ =>
            {
                Interlocked.Increment(ref steps);
                return Task.CompletedTask;
            }, (_, e) => throw e))
            .RunWith(this.SinkProbe<int>(), Materializer);
        sink.EnsureSubscription();

        // Nothing is asked for downstream: no step runs, and only the batch forming holds elements.
        AwaitCondition(() => Volatile.Read(ref pulled) >= 1);
        sink.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        var held = Volatile.Read(ref pulled);
        Assert.InRange(held, 1, 4 + 1);
        sink.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(held, Volatile.Read(ref pulled));
        Assert.Equal(0, Volatile.Read(ref steps));

        sink.Request(100);
        Assert.Equal(Enumerable.Range(1, 100), sink.ExpectNextN(100));
    }

    [Fact]
    public async Task A_failed_step_hands_its_batch_to_on_failure_and_the_stream_goes_on()
    {
        var failed = new ConcurrentQueue<int>();
        var done = Source.From(Enumerable.Range(1, 30))
            .Via(Batches.InBatches<int>(4, 2, batch => batch.Contains(7) ? throw new InvalidOperationException("no sevens") : Task.CompletedTask,
                (batch, _) =>
                {
                    foreach (var n in batch) failed.Enqueue(n);
                }))
            .RunWith(Sink.Seq<int>(), Materializer);

        var result = await done.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(Enumerable.Range(1, 30), result);
        Assert.Contains(7, failed);
        Assert.InRange(failed.Count, 1, 4);
    }
}
