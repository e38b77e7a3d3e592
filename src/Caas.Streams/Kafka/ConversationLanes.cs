namespace Caas.Streams.Kafka;

/// <summary>
/// One lane per conversation: work for a key starts only when the key's previous work has finished (whatever its
/// outcome), while other keys run side by side. The Kafka ingest hands records to <see cref="RunAsync{T}"/> in offset
/// order, so a record refused as overloaded and retried holds back the later records of its conversation: order per
/// conversation holds under backpressure and retries. A lane is dropped when its last work is done; a failed work
/// fails the rest of its lane.
/// </summary>
public sealed class ConversationLanes
{
    private readonly Dictionary<string, Task> _tails = new(StringComparer.Ordinal);

    public int Count
    {
        get { lock (_tails) return _tails.Count; }
    }

    public Task<T> RunAsync<T>(string key, Func<Task<T>> work)
    {
        Task<T> next;
        lock (_tails)
        {
            var previous = _tails.GetValueOrDefault(key) ?? Task.CompletedTask;
            next = AfterAsync(previous, work);
            _tails[key] = next;
        }
        _ = next.ContinueWith(_ =>
        {
            lock (_tails)
                if (_tails.TryGetValue(key, out var tail) && tail == next) _tails.Remove(key);
        }, TaskScheduler.Default);
        return next;
    }

    /// <summary>
    /// A failure of the previous work fails this one too, without running it: the stream fails on the first, and a
    /// later record of the conversation must not be persisted ahead of one that was never handled.
    /// </summary>
    private static async Task<T> AfterAsync<T>(Task previous, Func<Task<T>> work)
    {
        await previous;
        return await work();
    }
}
