namespace Caas.Streams.Kafka;

/// <summary>Where a record stands in its conversation's lane when its work starts.</summary>
/// <param name="AfterMessageId">
/// The message id of the record before it, when that record is still on its way (the work may submit this one
/// pipelined, stored only after that id: <see cref="Caas.Actors.Conversations.PostMessage.AfterMessageId"/>); null when
/// it has finished (or there is none).
/// </param>
/// <param name="Previous">The record before it: finished when it has its outcome (faulted when it failed).</param>
/// <param name="Entered">
/// The work calls this once it has handed the record to the pipeline: the next record of the lane starts only then
/// (or once this work is over), so a lane's records enter the pipeline in their order.
/// </param>
public readonly record struct LanePosition(string? AfterMessageId, Task Previous, Action Entered);

/// <summary>
/// One lane per conversation. The Kafka ingest hands records to <see cref="RunAsync{T}"/> in offset order; a record's
/// work starts once the record before it has entered the pipeline (<see cref="LanePosition.Entered"/>) and the
/// record <c>depth</c> places before it has finished (at most <c>depth</c> of a conversation on their way at once),
/// while other conversations run side by side. With depth 1 a record starts only when the one before it has finished,
/// whatever its outcome. A failed work fails the rest of its lane (the stream fails on the first). A lane is dropped
/// when its last work is done.
/// </summary>
public sealed class ConversationLanes(int depth = 1)
{
    private readonly int _depth = Math.Max(1, depth);
    private readonly Dictionary<string, Lane> _lanes = new(StringComparer.Ordinal);

    private sealed class Lane
    {
        /// <summary>The last records' completions, oldest first (at most depth).</summary>
        public readonly Queue<Task> Recent = new();
        public Task Tail = Task.CompletedTask;
        public Task TailStarted = Task.CompletedTask;
        public string? TailId;
    }

    public int Count
    {
        get { lock (_lanes) return _lanes.Count; }
    }

    public Task<T> RunAsync<T>(string key, string? messageId, Func<LanePosition, Task<T>> work)
    {
        Task<T> next;
        lock (_lanes)
        {
            if (!_lanes.TryGetValue(key, out var lane)) _lanes[key] = lane = new Lane();
            var gate = lane.Recent.Count >= _depth ? lane.Recent.Dequeue() : Task.CompletedTask;
            var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            next = StartAsync(gate, lane.TailStarted, lane.Tail, lane.TailId, started, work);
            lane.Recent.Enqueue(next);
            lane.Tail = next;
            lane.TailStarted = started.Task;
            lane.TailId = messageId;
        }
        _ = next.ContinueWith(_ =>
        {
            lock (_lanes)
                if (_lanes.TryGetValue(key, out var lane) && lane.Tail == next) _lanes.Remove(key);
        }, TaskScheduler.Default);
        return next;
    }

    private static async Task<T> StartAsync<T>(Task gate, Task previousStarted, Task previous, string? previousId, TaskCompletionSource started,
        Func<LanePosition, Task<T>> work)
    {
        try
        {
            // A failure before this record fails it too, without running it: a later record of the conversation must not
            // be stored ahead of one that was never handled.
            await gate;
            await previousStarted;
            if (previous.IsFaulted || previous.IsCanceled) await previous;
            return await work(new LanePosition(previous.IsCompleted ? null : previousId, previous, () => started.TrySetResult()));
        }
        finally
        {
            started.TrySetResult();
        }
    }
}
