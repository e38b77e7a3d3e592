using Caas.Streams.Kafka;
using Xunit;

namespace Caas.Streams.Tests.Kafka;

/// <summary>The Kafka ingest's lanes, alone: entry order, how many of a conversation at once, what a record is told of the one before it.</summary>
public sealed class ConversationLanesTests
{
    private static readonly TimeSpan Within = TimeSpan.FromSeconds(30);

    /// <summary>A record's work that enters at once and then waits until the test lets it finish.</summary>
    private sealed class Work
    {
        public readonly TaskCompletionSource<LanePosition> Started = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly TaskCompletionSource<string> Finish = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task<string> RunAsync(LanePosition lane)
        {
            lane.Entered();
            Started.TrySetResult(lane);
            return await Finish.Task;
        }
    }

    [Fact]
    public async Task A_lane_runs_at_most_depth_records_at_once_in_order_each_told_the_id_of_the_one_before_while_it_is_on_its_way()
    {
        var lanes = new ConversationLanes(depth: 3);
        var works = Enumerable.Range(0, 5).Select(_ => new Work()).ToArray();
        var done = works.Select((w, i) => lanes.RunAsync("t|c", $"m{i}", w.RunAsync)).ToArray();
        var other = new Work();
        var otherDone = lanes.RunAsync("t|other", "o0", other.RunAsync);

        var first = await works[0].Started.Task.WaitAsync(Within);
        Assert.Null(first.AfterMessageId);
        Assert.Equal("m0", (await works[1].Started.Task.WaitAsync(Within)).AfterMessageId);
        Assert.Equal("m1", (await works[2].Started.Task.WaitAsync(Within)).AfterMessageId);
        await other.Started.Task.WaitAsync(Within); // another conversation is not held by this one
        // Three on their way: the fourth waits for the first to finish.
        await Task.Delay(200);
        Assert.False(works[3].Started.Task.IsCompleted);
        works[1].Finish.SetResult("m1"); // the second finishing first frees nothing: the first is still the oldest
        await Task.Delay(200);
        Assert.False(works[3].Started.Task.IsCompleted);
        works[0].Finish.SetResult("m0");
        var fourth = await works[3].Started.Task.WaitAsync(Within);
        Assert.Equal("m2", fourth.AfterMessageId);
        Assert.False(fourth.Previous.IsCompleted);
        works[2].Finish.SetResult("m2");
        // The one before it finished before it started: nothing to wait for, no precondition.
        var fifth = await works[4].Started.Task.WaitAsync(Within);
        Assert.Equal("m3", fifth.AfterMessageId); // the fourth is still on its way
        works[3].Finish.SetResult("m3");
        works[4].Finish.SetResult("m4");
        other.Finish.SetResult("o0");
        Assert.Equal(["m0", "m1", "m2", "m3", "m4"], await Task.WhenAll(done).WaitAsync(Within));
        await otherDone;
        await WaitUntilEmptyAsync(lanes);

        // A lane started again after it was dropped has no record before its first.
        var again = new Work();
        var againDone = lanes.RunAsync("t|c", "m5", again.RunAsync);
        Assert.Null((await again.Started.Task.WaitAsync(Within)).AfterMessageId);
        again.Finish.SetResult("m5");
        await againDone;
    }

    [Fact]
    public async Task A_record_enters_only_after_the_one_before_it_entered_and_depth_one_is_one_at_a_time()
    {
        var lanes = new ConversationLanes(depth: 1);
        var entered = new List<int>();
        var releaseFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var firstDone = lanes.RunAsync("k", "a", async lane =>
        {
            Assert.Null(lane.AfterMessageId);
            await releaseFirst.Task;
            lock (entered) entered.Add(1);
            return 1;
        });
        var secondDone = lanes.RunAsync("k", "b", lane =>
        {
            // Depth one: the first has finished before the second starts, so there is no precondition.
            Assert.Null(lane.AfterMessageId);
            Assert.True(lane.Previous.IsCompletedSuccessfully);
            lock (entered) entered.Add(2);
            return Task.FromResult(2);
        });
        await Task.Delay(200);
        Assert.False(secondDone.IsCompleted);
        releaseFirst.SetResult();
        Assert.Equal(new[] { 1, 2 }, await Task.WhenAll(firstDone, secondDone).WaitAsync(Within));
        Assert.Equal(new[] { 1, 2 }, entered);
    }

    [Fact]
    public async Task A_failed_record_fails_the_later_records_of_its_lane_one_at_a_time_without_running_them()
    {
        var lanes = new ConversationLanes(depth: 1);
        var fail = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var ran = 0;
        var first = lanes.RunAsync("k", "a", _ => fail.Task);
        var second = lanes.RunAsync("k", "b", _ =>
        {
            Interlocked.Increment(ref ran);
            return Task.FromResult(2);
        });
        fail.SetException(new InvalidOperationException("boom"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => first.WaitAsync(Within));
        await Assert.ThrowsAsync<InvalidOperationException>(() => second.WaitAsync(Within));
        Assert.Equal(0, ran);
    }

    [Fact]
    public async Task A_pipelined_record_that_waits_for_a_failed_one_before_it_fails_too()
    {
        var lanes = new ConversationLanes(depth: 4);
        var fail = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = lanes.RunAsync("k", "a", lane =>
        {
            lane.Entered();
            return fail.Task;
        });
        // On its way beside the first, refused, it waits for the first's outcome (as KafkaIngest does).
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var second = lanes.RunAsync("k", "b", async lane =>
        {
            Assert.Equal("a", lane.AfterMessageId);
            lane.Entered();
            waiting.SetResult();
            await lane.Previous;
            return 2;
        });
        await waiting.Task.WaitAsync(Within);
        fail.SetException(new InvalidOperationException("boom"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => first.WaitAsync(Within));
        await Assert.ThrowsAsync<InvalidOperationException>(() => second.WaitAsync(Within));
    }

    private static async Task WaitUntilEmptyAsync(ConversationLanes lanes)
    {
        var deadline = DateTime.UtcNow + Within;
        while (lanes.Count > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{lanes.Count} lanes left");
            await Task.Delay(10);
        }
    }
}
