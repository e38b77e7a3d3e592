using Caas.Actors.Common;
using Caas.Actors.EventJournal;
using Caas.Actors.Hosting;
using Caas.Streams.Audit;
using Microsoft.Data.Sqlite;

namespace Caas.Streams.Tests;

/// <summary>
/// An audit checkpoint run on a SQLite journal reads what it signs without the journal's write lock: the journal's
/// writer (every message's persist) is not held up while it reads and hashes; the lock is taken only to insert.
/// </summary>
public sealed class AuditCheckpointLockTests
{
    private static async Task WriteAsync(SqliteJournalStore store, string pid, long seq)
    {
        var write = new PendingWrite([new JournalRow(pid, seq, 1, [1, 2, (byte)seq], "", "m", 7, "w")]);
        await store.WriteAsync([write], CancellationToken.None);
        Assert.Null(await write.Outcome);
    }

    private static async Task<long> CountAsync(string connectionString)
    {
        await using var c = new SqliteConnection(connectionString);
        c.Open();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT COUNT(*) FROM {AuditCheckpoints.Table}";
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task A_run_reads_while_another_connection_holds_the_journals_write_lock_and_takes_the_lock_only_to_sign()
    {
        var dir = Directory.CreateTempSubdirectory("caas-audit-lock-");
        try
        {
            // A short busy timeout: a run that waited for the write lock fails in 2 s instead of SQLite's 30.
            var journal = $"Data Source={Path.Combine(dir.FullName, "journal.db")};Default Timeout=2";
            var storage = new StorageOptions(false, journal, $"Data Source={Path.Combine(dir.FullName, "readmodel.db")}");
            var checkpoints = new AuditCheckpoints(storage, new AuditKey(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray()));
            await using (var store = new SqliteJournalStore(journal))
            {
                await store.InitializeAsync(CancellationToken.None);
                await WriteAsync(store, "conversation|t|a", 1);
                await WriteAsync(store, "conversation|t|b", 1);
                Assert.Equal(2, await checkpoints.RunAsync());

                await using var holder = new SqliteConnection(journal);
                holder.Open();
                await using (var begin = holder.CreateCommand())
                {
                    begin.CommandText = "BEGIN IMMEDIATE";
                    begin.ExecuteNonQuery();
                }
                // Nothing new to sign: the run reads and finishes while the lock is held elsewhere (it used to begin with
                // BEGIN IMMEDIATE and wait for the lock, then fail with SQLITE_BUSY).
                Assert.Equal(0, await checkpoints.RunAsync());

                await using (var rollback = holder.CreateCommand())
                {
                    rollback.CommandText = "ROLLBACK";
                    rollback.ExecuteNonQuery();
                }
                await WriteAsync(store, "conversation|t|a", 2);
                await using (var begin = holder.CreateCommand())
                {
                    begin.CommandText = "BEGIN IMMEDIATE";
                    begin.ExecuteNonQuery();
                }
                // Something to sign: the insert needs the lock, so the run fails and signs nothing, and marks nothing seen.
                var busy = await Assert.ThrowsAsync<SqliteException>(() => checkpoints.RunAsync());
                Assert.Equal(SQLitePCL.raw.SQLITE_BUSY, busy.SqliteErrorCode);
                Assert.Equal(2, await CountAsync(journal));
                await using (var rollback = holder.CreateCommand())
                {
                    rollback.CommandText = "ROLLBACK";
                    rollback.ExecuteNonQuery();
                }
                // Released: the next run signs the new head, extending the chain.
                Assert.Equal(1, await checkpoints.RunAsync());
                Assert.Equal(3, await CountAsync(journal));
            }
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            dir.Delete(recursive: true);
        }
    }
}
