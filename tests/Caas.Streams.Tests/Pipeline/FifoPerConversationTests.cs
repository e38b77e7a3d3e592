using System.Collections.Concurrent;
using Akka.Streams;
using Akka.Streams.Dsl;
using Akka.Streams.TestKit;
using Caas.Streams.Pipeline;

namespace Caas.Streams.Tests.Pipeline;

/// <summary>The order-and-persist stage alone: FIFO per conversation, no head-of-line blocking, bounds, failures.</summary>
public sealed class FifoPerConversationTests() : Akka.TestKit.Xunit2.TestKit(StreamTests.Config)
{
    private IMaterializer? _materializer;

    private IMaterializer Materializer => _materializer ??= Sys.Materializer();

    private sealed record Item(string Key, int N);

    /// <summary>Steps that the test finishes by hand, in whatever order it chooses.</summary>
    private sealed class Steps
    {
        private readonly ConcurrentDictionary<Item, TaskCompletionSource> _running = new();
        private readonly ConcurrentQueue<Item> _started = new();

        public IReadOnlyList<Item> Started => _started.ToList();

        public Task Run(Item item)
        {
            var step = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _running[item] = step;
            _started.Enqueue(item);
            return step.Task;
        }

        public bool IsRunning(Item item) => _running.ContainsKey(item);

        public void Finish(Item item) => _running[item].SetResult();
    }

    private static Flow<Item, Item, Akka.NotUsed> Stage(Func<Item, Task> step, int perKey, int maxRunning, int maxWaiting,
        Action<Item, Exception>? onFailure = null) =>
        Flow.FromGraph(new FifoPerConversation<Item>(i => i.Key, step, onFailure ?? ((_, e) => throw e), perKey, maxRunning, maxWaiting));

    [Fact]
    public void A_slow_conversation_holds_back_only_its_own_messages_and_each_starts_in_arrival_order()
    {
        var steps = new Steps();
        var (source, sink) = this.SourceProbe<Item>().Via(Stage(steps.Run, perKey: 1, maxRunning: 8, maxWaiting: 8))
            .ToMaterialized(this.SinkProbe<Item>(), Keep.Both).Run(Materializer);
        sink.Request(10);
        Item a1 = new("a", 1), a2 = new("a", 2), a3 = new("a", 3), b1 = new("b", 1), b2 = new("b", 2);
        foreach (var item in new[] { a1, a2, b1, a3, b2 }) source.SendNext(item);

        // a1 runs and does not finish; b goes on past it.
        AwaitCondition(() => steps.Started.Count == 2);
        Assert.Equal([a1, b1], steps.Started);
        steps.Finish(b1);
        sink.ExpectNext(b1);
        AwaitCondition(() => steps.IsRunning(b2));
        steps.Finish(b2);
        sink.ExpectNext(b2);
        Assert.False(steps.IsRunning(a2));

        steps.Finish(a1);
        sink.ExpectNext(a1);
        AwaitCondition(() => steps.IsRunning(a2));
        steps.Finish(a2);
        sink.ExpectNext(a2);
        AwaitCondition(() => steps.IsRunning(a3));
        steps.Finish(a3);
        sink.ExpectNext(a3);
        source.SendComplete();
        sink.ExpectComplete();
        Assert.Equal([a1, a2, a3], steps.Started.Where(i => i.Key == "a"));
    }

    [Fact]
    public void Completions_out_of_order_are_emitted_as_they_finish_while_starts_keep_arrival_order()
    {
        var steps = new Steps();
        var (source, sink) = this.SourceProbe<Item>().Via(Stage(steps.Run, perKey: 3, maxRunning: 8, maxWaiting: 8))
            .ToMaterialized(this.SinkProbe<Item>(), Keep.Both).Run(Materializer);
        sink.Request(10);
        var items = Enumerable.Range(1, 5).Select(n => new Item("a", n)).ToArray();
        foreach (var item in items) source.SendNext(item);

        AwaitCondition(() => steps.Started.Count == 3);
        steps.Finish(items[2]);
        sink.ExpectNext(items[2]);
        AwaitCondition(() => steps.Started.Count == 4);
        steps.Finish(items[1]);
        sink.ExpectNext(items[1]);
        AwaitCondition(() => steps.Started.Count == 5);
        foreach (var n in new[] { 4, 0, 3 })
        {
            steps.Finish(items[n]);
            sink.ExpectNext(items[n]);
        }
        source.SendComplete();
        sink.ExpectComplete();
        Assert.Equal(items, steps.Started);
    }

    [Fact]
    public void Running_steps_are_bounded_per_conversation_and_in_all()
    {
        var steps = new Steps();
        var pulled = 0;
        var sink = Source.From(Enumerable.Range(0, 1_000))
            .Select(n =>
            {
                Interlocked.Increment(ref pulled);
                return new Item(n < 6 ? "a" : $"c{n}", n);
            })
            .Via(Stage(steps.Run, perKey: 2, maxRunning: 4, maxWaiting: 5))
            .RunWith(this.SinkProbe<Item>(), Materializer);
        sink.Request(1_000);

        // a0 and a1 run (a2..a5 wait behind them), then c6 and c7 fill the slots; c8 waits for a slot: 9 held.
        AwaitCondition(() => Volatile.Read(ref pulled) == 9 && steps.Started.Count == 4);
        sink.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(9, Volatile.Read(ref pulled));
        Assert.Equal([0, 1, 6, 7], steps.Started.Select(i => i.N));

        // The freed slot goes to the conversation waiting longest for one (c8; a is at its own limit); then one more is pulled.
        steps.Finish(steps.Started[2]);
        sink.ExpectNext();
        AwaitCondition(() => steps.Started.Count == 5 && Volatile.Read(ref pulled) == 10);
        Assert.Equal(8, steps.Started[4].N);
    }

    [Fact]
    public void A_slow_downstream_stops_the_stage_pulling_upstream()
    {
        var pulled = 0;
        var sink = Source.From(Enumerable.Range(0, 1_000))
            .Select(n =>
            {
                Interlocked.Increment(ref pulled);
                return new Item($"c{n % 3}", n);
            })
            .Via(Stage(_ => Task.CompletedTask, perKey: 2, maxRunning: 4, maxWaiting: 4))
            .RunWith(this.SinkProbe<Item>(), Materializer);
        sink.EnsureSubscription();

        // Nothing is pulled downstream: the finished elements fill the stage, and it takes no more.
        AwaitCondition(() => Volatile.Read(ref pulled) == 8);
        sink.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(8, Volatile.Read(ref pulled));

        sink.Request(3);
        var first = sink.ExpectNextN(3);
        AwaitCondition(() => Volatile.Read(ref pulled) == 11);
        Assert.Equal(3, first.Count());
    }

    [Fact]
    public async Task A_failing_step_decides_its_own_element_and_the_stream_goes_on()
    {
        var failed = new ConcurrentDictionary<int, string>();
        var done = Source.From(Enumerable.Range(1, 6).Select(n => new Item($"c{n % 2}", n)))
            .Via(Stage(i => i.N switch
                {
                    2 => throw new InvalidOperationException("thrown"),
                    3 => Task.FromException(new InvalidOperationException("faulted")),
                    _ => Task.CompletedTask,
                }, perKey: 1, maxRunning: 4, maxWaiting: 4,
                onFailure: (i, e) => failed[i.N] = e.Message))
            .RunWith(Sink.Seq<Item>(), Materializer);

        var result = await done.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal([1, 2, 3, 4, 5, 6], result.Select(i => i.N).Order());
        Assert.Equal(new Dictionary<int, string> { [2] = "thrown", [3] = "faulted" }, failed.OrderBy(f => f.Key).ToDictionary());
        // Within each conversation the elements went out in arrival order (one at a time).
        foreach (var key in new[] { "c0", "c1" })
        {
            var ns = result.Where(i => i.Key == key).Select(i => i.N).ToList();
            Assert.Equal(ns.Order(), ns);
        }
    }

    [Fact]
    public void Upstream_completion_waits_for_the_running_steps()
    {
        var steps = new Steps();
        var (source, sink) = this.SourceProbe<Item>().Via(Stage(steps.Run, perKey: 1, maxRunning: 4, maxWaiting: 4))
            .ToMaterialized(this.SinkProbe<Item>(), Keep.Both).Run(Materializer);
        sink.Request(5);
        Item a1 = new("a", 1), a2 = new("a", 2);
        source.SendNext(a1);
        source.SendNext(a2);
        source.SendComplete();
        AwaitCondition(() => steps.IsRunning(a1));
        sink.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        steps.Finish(a1);
        sink.ExpectNext(a1);
        AwaitCondition(() => steps.IsRunning(a2));
        steps.Finish(a2);
        sink.ExpectNext(a2);
        sink.ExpectComplete();
    }
}

/// <summary>What the stage tests share: generous waits, since the suite runs on a loaded machine.</summary>
internal static class StreamTests
{
    public const string Config = """
        akka.loglevel = WARNING
        akka.test.single-expect-default = 30s
        akka.test.default-timeout = 30s
        """;
}
