using System.Data.Common;
using Caas.Actors.Hosting;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Caas.Streams.ReadModel;

/// <summary>
/// How a store opens its connections: PostgreSQL through a pooled data source behind the <see cref="StoreBreaker"/>,
/// SQLite as a new connection to its file (a file has no outage to break on). The read model and the operational store
/// each hold one. A store of projections only (<paramref name="flushEachCommit"/> false: the read model) does not wait
/// for each commit's flush to disk: a commit lost to a crash is projected again from the journal, its offset with it.
/// </summary>
/// <param name="projectionsOnly">A file of projections only (the read model): its WAL is checkpointed every
/// <see cref="SqliteWaits.ProjectionWalAutocheckpointPages"/> pages instead of SQLite's 1,000.</param>
public sealed class StoreConnections(string connectionString, bool postgres, StoreBreaker breaker, bool flushEachCommit = true,
    bool projectionsOnly = false) : IAsyncDisposable
{
    private readonly NpgsqlDataSource? _postgres = postgres
        ? NpgsqlDataSource.Create(flushEachCommit ? connectionString : StorageOptions.WithSessionOptions(connectionString, "-c synchronous_commit=off"))
        : null;

    public StoreBreaker Breaker { get; } = breaker;

    public async Task<DbConnection> OpenAsync(CancellationToken ct = default)
    {
        if (_postgres is not null) return await Breaker.OpenAsync(async token => (DbConnection)await _postgres.OpenConnectionAsync(token), ct);
        var connection = new SqliteConnection(connectionString);
        await connection.OpenAsync(ct);
        SqliteWaits.WaitInSqlite(connection, flushEachCommit, projectionsOnly);
        return connection;
    }

    /// <summary>A synchronous open, for the content vault's key lookups (they run inside entities and the serializer).</summary>
    public DbConnection Open()
    {
        if (_postgres is not null) return Breaker.Open<DbConnection>(_postgres.OpenConnection);
        var connection = new SqliteConnection(connectionString);
        connection.Open();
        SqliteWaits.WaitInSqlite(connection, flushEachCommit, projectionsOnly);
        return connection;
    }

    public async ValueTask DisposeAsync()
    {
        if (_postgres is not null) await _postgres.DisposeAsync();
    }

    /// <summary>
    /// This process's turn to write to the SQLite file (nothing on PostgreSQL, whose writers do not exclude each other):
    /// see <see cref="SqliteWriteTurns"/>. Dispose it after the commit.
    /// </summary>
    public ValueTask<IDisposable> WriteTurnAsync(CancellationToken ct = default) =>
        _postgres is not null ? new ValueTask<IDisposable>(SqliteWriteTurns.None) : SqliteWriteTurns.TakeAsync(connectionString, ct);
}

/// <summary>
/// One writer at a time per SQLite file inside this process, queued in arrival order without blocking a thread. SQLite
/// lets one transaction write at a time; a second <c>BEGIN IMMEDIATE</c> waits in SQLite's busy handler, which sleeps on
/// a thread-pool thread in growing steps (1, 2, 5, 10 … 100 ms) and retries instead of being woken when the lock is
/// free, so several writers on one file waited many times longer than the writes took. The busy handler still covers
/// writers in other processes and those that do not take a turn.
/// </summary>
public static class SqliteWriteTurns
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, SemaphoreSlim> Files = new(StringComparer.Ordinal);
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, SemaphoreSlim> ByConnectionString = new(StringComparer.Ordinal);

    internal static readonly IDisposable None = new Turn(null);

    public static async ValueTask<IDisposable> TakeAsync(string connectionString, CancellationToken ct = default)
    {
        var gate = ByConnectionString.GetOrAdd(connectionString,
            cs => Files.GetOrAdd(Path.GetFullPath(StorageOptions.SqliteFile(cs)), _ => new SemaphoreSlim(1, 1)));
        await gate.WaitAsync(ct);
        return new Turn(gate);
    }

    private sealed class Turn(SemaphoreSlim? gate) : IDisposable
    {
        private SemaphoreSlim? _gate = gate;

        public void Dispose() => Interlocked.Exchange(ref _gate, null)?.Release();
    }
}

/// <summary>
/// How a SQLite connection waits for another writer. Microsoft.Data.Sqlite, left alone, answers SQLITE_BUSY by sleeping
/// 150 ms and retrying; with two writers on one file (every write of the embedded node's stores), that sleep became the
/// cost of most contended writes (a thread-time trace of the chunked upload put 78% of a chunk request's time in it).
/// SQLite's own busy handler (<c>PRAGMA busy_timeout</c>) waits in steps of 1, 2, 5, 10 … ms and takes the lock as
/// soon as it is free; the driver's loop remains behind it for a wait longer than the timeout.
/// <para>
/// Reads go through a memory map of the file (<c>PRAGMA mmap_size</c>, up to <see cref="MmapBytes"/>) rather than
/// copies into each connection's own page cache (2 MB by default, empty on a new connection): the term suggestions'
/// 2,000 scattered row reads on a million-message index took about a third less time that way.
/// </para>
/// </summary>
public static class SqliteWaits
{
    /// <summary>The longest SQLite waits for a lock itself (the driver's command timeout, 30 s, is the same).</summary>
    public const int BusyTimeoutMs = 30_000;

    /// <summary>How much of a database file is read through the memory map.</summary>
    public const long MmapBytes = 256L * 1024 * 1024;

    /// <summary>
    /// WAL pages before a commit on a file of projections only (the read model) checkpoints it, instead of SQLite's
    /// 1,000 (<c>CAAS_READMODEL_WAL_AUTOCHECKPOINT</c>). A projection batch of 1,000 messages touches index pages all
    /// over the file, so with SQLite's default nearly every commit ran a checkpoint inside the file's write turn (its
    /// copy back into the database and two flushes), and the next commit dirtied the same pages again: the read model's
    /// and search index's batches, which share that turn, caught up with the journal at about 12,000 events/s; with
    /// 20,000 pages at 15,300-16,300 (README, "The projections behind the journal").
    /// </summary>
    public static int ProjectionWalAutocheckpointPages { get; } =
        int.TryParse(Environment.GetEnvironmentVariable("CAAS_READMODEL_WAL_AUTOCHECKPOINT"), out var pages) && pages > 0 ? pages : 20_000;

    /// <param name="flushEachCommit">False for a file of projections only: <c>synchronous = NORMAL</c> (in WAL mode a
    /// commit is not flushed; checkpoints are), instead of SQLite's default FULL.</param>
    /// <param name="projectionsOnly">A file of projections only: a checkpoint every <see cref="ProjectionWalAutocheckpointPages"/> pages.</param>
    /// <remarks>
    /// The settings belong to SQLite's connection, which Microsoft.Data.Sqlite's pool keeps open and hands out again, so
    /// they are set once per connection SQLite opened (remembered by its handle), not on every open from the pool: the
    /// statements had been parsed and run for every claim, record and projection batch.
    /// </remarks>
    public static void WaitInSqlite(SqliteConnection connection, bool flushEachCommit = true, bool projectionsOnly = false)
    {
        var settings = Settings(flushEachCommit, projectionsOnly);
        var handle = connection.Handle;
        if (handle is not null && Configured.TryGetValue(handle, out var done) && ReferenceEquals(done, settings)) return;
        using var pragma = connection.CreateCommand();
        pragma.CommandText = settings;
        pragma.ExecuteNonQuery();
        if (handle is not null) Configured.AddOrUpdate(handle, settings);
    }

    /// <summary>The settings last applied to each open SQLite connection (its handle outlives a return to the pool).</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<SQLitePCL.sqlite3, string> Configured = new();

    private static readonly string[] Variants =
    [
        Pragmas(false, false), Pragmas(false, true), Pragmas(true, false), Pragmas(true, true),
    ];

    private static string Settings(bool flushEachCommit, bool projectionsOnly) => Variants[(flushEachCommit ? 2 : 0) + (projectionsOnly ? 1 : 0)];

    private static string Pragmas(bool flushEachCommit, bool projectionsOnly) =>
        $"PRAGMA busy_timeout = {BusyTimeoutMs}; PRAGMA mmap_size = {MmapBytes}" + (flushEachCommit ? "" : "; PRAGMA synchronous = NORMAL") +
        (projectionsOnly ? $"; PRAGMA wal_autocheckpoint = {ProjectionWalAutocheckpointPages}" : "");
}
