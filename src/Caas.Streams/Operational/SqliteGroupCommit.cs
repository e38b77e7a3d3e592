using Microsoft.Data.Sqlite;
using Prometheus;

namespace Caas.Streams.Operational;

/// <summary>
/// Group commit for one SQLite file: writes handed in while a transaction is being written wait, and the next
/// transaction carries all of them, so many writers' statements share one commit (one flush of the write-ahead log to
/// disk) instead of one each. Each write runs inside its own savepoint: one that throws is rolled back alone and fails
/// only its own caller; a transaction that cannot begin or commit fails every write it carried (none of them is
/// stored). A caller's task completes only once its write is committed. The transaction begins only after this
/// process's turn on the file (<see cref="ReadModel.SqliteWriteTurns"/>), like every hot writer's.
/// </summary>
/// <remarks>
/// Why: on the embedded node the message-id claims and the records of stored ids (two pipeline stages, each up to
/// <c>claim-batch-parallelism</c> batches at once) were each a transaction and a commit of their own on
/// <c>operational.db</c>; SQLite takes one writer at a time, so they queued for the file and then each paid its own
/// flush (README: "Claims and records share a commit").
/// </remarks>
public sealed class SqliteGroupCommit(Func<CancellationToken, Task<System.Data.Common.DbConnection>> open,
    Func<CancellationToken, ValueTask<IDisposable>> turn, string file)
{
    private static readonly Counter Commits = Metrics.CreateCounter("caas_sqlite_group_commits_total",
        "Transactions committed by a SQLite file's group commit (each carries one or more writes).", "file");
    private static readonly Counter Writes = Metrics.CreateCounter("caas_sqlite_group_commit_writes_total",
        "Writes carried by a SQLite file's group commit (writes / commits = mean group size).", "file");

    private readonly object _gate = new();
    private List<Write> _queue = [];
    private bool _draining;
    private long _commits;
    private long _writes;
    private readonly Counter.Child _commitsMetric = Commits.WithLabels(file);
    private readonly Counter.Child _writesMetric = Writes.WithLabels(file);

    /// <summary>Transactions committed so far.</summary>
    public long CommitCount => Interlocked.Read(ref _commits);

    /// <summary>Writes committed so far (each in some transaction).</summary>
    public long WriteCount => Interlocked.Read(ref _writes);

    /// <summary>
    /// Runs <paramref name="work"/> inside the next transaction on the file (synchronously, on the connection it is
    /// given; nothing else uses that connection meanwhile) and answers its result once that transaction is committed.
    /// </summary>
    public Task<T> RunAsync<T>(Func<SqliteConnection, SqliteTransaction, T> work, CancellationToken ct = default)
    {
        var write = new Write<T>(work, ct);
        bool start;
        lock (_gate)
        {
            _queue.Add(write);
            start = !_draining;
            _draining = true;
        }
        if (start) _ = Task.Run(DrainAsync, CancellationToken.None);
        return write.Task;
    }

    private async Task DrainAsync()
    {
        while (true)
        {
            List<Write> group;
            lock (_gate)
            {
                if (_queue.Count == 0)
                {
                    _draining = false;
                    return;
                }
                group = _queue;
                _queue = [];
            }
            await CommitAsync(group);
        }
    }

    private async Task CommitAsync(List<Write> group)
    {
        var live = group.Where(w => w.StillWanted()).ToList();
        if (live.Count == 0) return;
        var ran = new List<Write>(live.Count);
        try
        {
            await using var connection = await open(CancellationToken.None);
            using var _ = await turn(CancellationToken.None);
            await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync();
            var sqlite = (SqliteConnection)connection;
            if (live.Count == 1)
            {
                live[0].Run(sqlite, tx);
                ran.Add(live[0]);
            }
            else
            {
                foreach (var write in live)
                {
                    tx.Save("w");
                    try
                    {
                        write.Run(sqlite, tx);
                        tx.Release("w");
                        ran.Add(write);
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        tx.Rollback("w");
                        tx.Release("w");
                        write.Fail(e);
                    }
                }
            }
            if (ran.Count == 0) return; // every write failed alone: nothing to commit (the transaction rolls back)
            await tx.CommitAsync();
        }
        catch (Exception e)
        {
            // Nothing of this transaction is stored: every write it carried fails (a failed one keeps its own error).
            foreach (var write in live) write.Fail(e);
            return;
        }
        Interlocked.Increment(ref _commits);
        Interlocked.Add(ref _writes, ran.Count);
        _commitsMetric.Inc();
        _writesMetric.Inc(ran.Count);
        foreach (var write in ran) write.Complete();
    }

    private abstract class Write
    {
        public abstract bool StillWanted();

        public abstract void Run(SqliteConnection connection, SqliteTransaction tx);

        public abstract void Complete();

        public abstract void Fail(Exception e);
    }

    private sealed class Write<T>(Func<SqliteConnection, SqliteTransaction, T> work, CancellationToken ct) : Write
    {
        // Continuations run elsewhere: the drain loop goes on to the next group at once.
        private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T? _result;

        public Task<T> Task => _done.Task;

        public override bool StillWanted()
        {
            if (!ct.IsCancellationRequested) return true;
            _done.TrySetCanceled(ct);
            return false;
        }

        public override void Run(SqliteConnection connection, SqliteTransaction tx) => _result = work(connection, tx);

        public override void Complete() => _done.TrySetResult(_result!);

        public override void Fail(Exception e) => _done.TrySetException(e);
    }
}
