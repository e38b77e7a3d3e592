using System.Collections.Concurrent;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.ReadModel;

/// <summary>Read-your-writes settings (HOCON-free: appsettings <c>Caas:Edge</c> carries the cap; the poll is here).</summary>
public sealed record ProgressSettings(TimeSpan PollInterval)
{
    public static ProgressSettings Default { get; } = new(TimeSpan.FromMilliseconds(100));
}

/// <summary>
/// The read model's progress mark: per persistence id, the highest journal sequence number the projection has applied,
/// stored in <c>rm_progress</c> in the same transaction as the rows (so a mark never runs ahead of what a reader sees).
/// Every event type raises it, so it answers "is this write visible yet?" for edits, reactions, members, roles and
/// moderation as well as new posts. A reader waits for the mark to reach the journal sequence number its write was
/// acknowledged with: a batch committed by this node's projection wakes it at once; a projection running on another
/// node is seen by a bounded poll of the table.
/// </summary>
public sealed class ProjectionProgress(ReadModelStore store, ProgressSettings? settings = null)
{
    private readonly TimeSpan _poll = (settings ?? ProgressSettings.Default).PollInterval;
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<Waiter, byte>> _waiters = new(StringComparer.Ordinal);

    private sealed class Waiter(long seq)
    {
        public long Seq { get; } = seq;
        public TaskCompletionSource<long> Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>The projected mark of one persistence id (0 when the projection has applied none of its events).</summary>
    public async Task<long> MarkAsync(string persistenceId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "SELECT sequence_nr FROM rm_progress WHERE persistence_id = @p", ("p", persistenceId));
        return await cmd.ExecuteScalarAsync(ct) is { } v and not DBNull ? Convert.ToInt64(v) : 0L;
    }

    /// <summary>
    /// Waits until the projection has applied <paramref name="persistenceId"/>'s events up to <paramref name="journalSeq"/>,
    /// at most <paramref name="cap"/>.
    /// </summary>
    /// <returns>The mark reached: at least <paramref name="journalSeq"/>, or below it when the cap ran out (then read the rest from the journal).</returns>
    public async Task<long> WaitAsync(string persistenceId, long journalSeq, TimeSpan cap, CancellationToken ct = default)
    {
        if (journalSeq <= 0) return 0;
        var waiter = new Waiter(journalSeq);
        var set = _waiters.GetOrAdd(persistenceId, _ => new ConcurrentDictionary<Waiter, byte>());
        set.TryAdd(waiter, 0);
        try
        {
            var deadline = DateTimeOffset.UtcNow + cap;
            while (true)
            {
                // Registered before reading, so a commit between the read and the wait still wakes this waiter.
                var mark = await MarkAsync(persistenceId, ct);
                if (mark >= journalSeq) return mark;
                var left = deadline - DateTimeOffset.UtcNow;
                if (left <= TimeSpan.Zero) return mark;
                var woken = await Task.WhenAny(waiter.Reached.Task, Task.Delay(left < _poll ? left : _poll, ct));
                if (woken == waiter.Reached.Task) return await waiter.Reached.Task;
                ct.ThrowIfCancellationRequested();
            }
        }
        finally
        {
            set.TryRemove(waiter, out _);
            if (set.IsEmpty) _waiters.TryRemove(new KeyValuePair<string, ConcurrentDictionary<Waiter, byte>>(persistenceId, set));
        }
    }

    /// <summary>Called by the writer after a batch committed: wakes the readers whose writes are now visible.</summary>
    public void Committed(IReadOnlyDictionary<string, long> marks)
    {
        if (_waiters.IsEmpty) return;
        foreach (var (pid, mark) in marks)
        {
            if (!_waiters.TryGetValue(pid, out var set)) continue;
            foreach (var waiter in set.Keys)
                if (waiter.Seq <= mark) waiter.Reached.TrySetResult(mark);
        }
    }
}
