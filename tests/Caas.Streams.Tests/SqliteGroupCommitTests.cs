using Caas.Streams.Operational;
using Caas.Streams.Pipeline;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;
using Microsoft.Data.Sqlite;

namespace Caas.Streams.Tests;

/// <summary>
/// The operational store's group commit on SQLite: writes that wait together share one transaction and one commit,
/// each in its own savepoint (one that throws is rolled back alone), and none is answered before its commit.
/// </summary>
public sealed class SqliteGroupCommitTests
{
    private static async Task<OperationalStore> StoreAsync()
    {
        var storage = TestDatabases.Storage("sqlite");
        await using (var readModel = new ReadModelStore(storage)) await readModel.EnsureSchemaAsync();
        var store = new OperationalStore(storage);
        await store.MigrateAsync();
        await using var c = await store.OpenAsync();
        await using var create = c.CreateCommand();
        create.CommandText = "CREATE TABLE group_commit_test (k TEXT PRIMARY KEY)";
        await create.ExecuteNonQueryAsync();
        return store;
    }

    private static Func<SqliteConnection, SqliteTransaction, int> Insert(string key, bool thenThrow = false) => (connection, tx) =>
    {
        using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "INSERT INTO group_commit_test (k) VALUES (@k)";
        cmd.Parameters.AddWithValue("@k", key);
        var n = cmd.ExecuteNonQuery();
        if (thenThrow) throw new InvalidOperationException("this write fails after its insert");
        return n;
    };

    private static async Task<List<string>> KeysAsync(OperationalStore store)
    {
        await using var c = await store.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT k FROM group_commit_test ORDER BY k";
        var keys = new List<string>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) keys.Add(reader.GetString(0));
        return keys;
    }

    [Fact]
    public async Task Claims_and_records_that_wait_together_share_a_commit_and_are_answered_only_once_it_is_written()
    {
        await using var store = await StoreAsync();
        var claims = new MessageIdClaims(store);
        var group = store.GroupCommit!;
        await claims.ClaimManyAsync([new ClaimRequest("t", "stored", "c1")]);
        var (commits, writes) = (group.CommitCount, group.WriteCount);

        // While another writer holds the file, a claim batch, a record batch and another claim batch wait.
        var turn = await store.WriteTurnAsync();
        var first = claims.ClaimManyAsync([new ClaimRequest("t", "a", "c1"), new ClaimRequest("t", "b", "c2")]);
        var record = claims.RecordManyAsync([new ClaimRecord("t", "stored", "c1", 7, "alice", DateTimeOffset.FromUnixTimeMilliseconds(9_000))]);
        var second = claims.ClaimManyAsync([new ClaimRequest("t", "a", "c3"), new ClaimRequest("t", "c", "c3")]);
        await Task.WhenAny(Task.WhenAll(first, record, second), Task.Delay(300));
        Assert.False(first.IsCompleted || record.IsCompleted || second.IsCompleted);
        Assert.Equal(commits, group.CommitCount);
        turn.Dispose();

        Assert.Equal([true, true], (await first).Select(a => a.Fresh));
        Assert.Equal([true], await record);
        var later = await second;
        Assert.False(later[0].Fresh); // "a" went to c1 in the first batch, committed before or with this one
        Assert.Equal("c1", later[0].Claim!.ConversationId);
        Assert.True(later[1].Fresh);
        // Three batches and the second's lookup of "a" (which follows its claim's commit): four writes. The first
        // transaction took at least the first batch and the waiting ones shared the next, so at most three commits
        // (one commit per write would be four) and at least two (the lookup comes after a commit).
        Assert.Equal(writes + 4, group.WriteCount);
        Assert.InRange(group.CommitCount - commits, 2, 3);
        Assert.Equal(new MessageIdClaim("c1", 7, "alice", DateTimeOffset.FromUnixTimeMilliseconds(9_000)), await claims.FindAsync("t", "stored"));
    }

    [Fact]
    public async Task A_write_that_throws_is_rolled_back_alone_and_fails_only_its_caller()
    {
        await using var store = await StoreAsync();
        var group = store.GroupCommit!;

        var turn = await store.WriteTurnAsync();
        var before = group.RunAsync(Insert("a"));
        var failing = group.RunAsync(Insert("b", thenThrow: true));
        var after = group.RunAsync(Insert("c"));
        turn.Dispose();

        Assert.Equal(1, await before);
        Assert.Equal("this write fails after its insert", (await Assert.ThrowsAsync<InvalidOperationException>(() => failing)).Message);
        Assert.Equal(1, await after);
        Assert.Equal(["a", "c"], await KeysAsync(store));
        Assert.Equal(2, group.WriteCount);
    }

    [Fact]
    public async Task A_write_whose_caller_gave_up_before_its_turn_is_not_run()
    {
        await using var store = await StoreAsync();
        var group = store.GroupCommit!;

        var turn = await store.WriteTurnAsync();
        using var cancel = new CancellationTokenSource();
        var kept = group.RunAsync(Insert("kept"));
        var dropped = group.RunAsync(Insert("dropped"), cancel.Token);
        cancel.Cancel();
        turn.Dispose();

        Assert.Equal(1, await kept);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => dropped);
        Assert.Equal(["kept"], await KeysAsync(store));
    }

    /// <summary>
    /// A write that holds the group's drain inside its transaction until released: writes handed in meanwhile all wait
    /// for the next transaction, so the test knows which writes share one.
    /// </summary>
    private static (Task<int> Held, Action Release) Hold(SqliteGroupCommit group)
    {
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new ManualResetEventSlim();
        var held = group.RunAsync((_, _) =>
        {
            running.TrySetResult();
            release.Wait(TimeSpan.FromMinutes(2));
            return 0;
        });
        running.Task.Wait(TimeSpan.FromMinutes(2));
        return (held, release.Set);
    }

    [Fact]
    public async Task A_transaction_that_cannot_commit_fails_every_write_it_carried_and_stores_none()
    {
        // A real commit failure: a deferred foreign key is checked by SQLite at COMMIT, after every write's savepoint
        // was released, so the whole transaction is refused.
        var file = Path.Combine(Path.GetTempPath(), $"caas-group-commit-{Guid.NewGuid():N}.db");
        var cs = new SqliteConnectionStringBuilder { DataSource = file, ForeignKeys = true, Pooling = false }.ToString();
        try
        {
            await using (var setup = new SqliteConnection(cs))
            {
                await setup.OpenAsync();
                await using var create = setup.CreateCommand();
                create.CommandText = """
                    CREATE TABLE parent (k TEXT PRIMARY KEY);
                    CREATE TABLE group_commit_test (k TEXT PRIMARY KEY,
                        parent TEXT REFERENCES parent (k) DEFERRABLE INITIALLY DEFERRED);
                    INSERT INTO parent (k) VALUES ('p');
                    """;
                await create.ExecuteNonQueryAsync();
            }
            var group = new SqliteGroupCommit(async ct =>
            {
                var c = new SqliteConnection(cs);
                await c.OpenAsync(ct);
                return c;
            }, _ => ValueTask.FromResult<IDisposable>(new Nothing()), "group-commit-test");

            Func<SqliteConnection, SqliteTransaction, int> Child(string key, string parent) => (connection, tx) =>
            {
                using var cmd = connection.CreateCommand();
                cmd.Transaction = tx;
                cmd.CommandText = "INSERT INTO group_commit_test (k, parent) VALUES (@k, @p)";
                cmd.Parameters.AddWithValue("@k", key);
                cmd.Parameters.AddWithValue("@p", parent);
                return cmd.ExecuteNonQuery();
            };

            // Three writes wait together behind a held one, so they share the next transaction; the second names a
            // parent that does not exist.
            var (held, release) = Hold(group);
            var first = group.RunAsync(Child("a", "p"));
            var orphan = group.RunAsync(Child("b", "missing"));
            var third = group.RunAsync(Child("c", "p"));
            release();
            Assert.Equal(0, await held);
            var (commits, writes) = (group.CommitCount, group.WriteCount);

            foreach (var write in new[] { first, orphan, third })
                Assert.Contains("FOREIGN KEY", (await Assert.ThrowsAsync<SqliteException>(() => write)).Message);
            Assert.Equal((commits, writes), (group.CommitCount, group.WriteCount));

            // The file is usable afterwards: the next write commits.
            Assert.Equal(1, await group.RunAsync(Child("d", "p")));
            Assert.Equal(commits + 1, group.CommitCount);
            await using var read = new SqliteConnection(cs);
            await read.OpenAsync();
            await using var cmd = read.CreateCommand();
            cmd.CommandText = "SELECT group_concat(k) FROM group_commit_test";
            Assert.Equal("d", await cmd.ExecuteScalarAsync());
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (var f in new[] { file, file + "-wal", file + "-shm", file + "-journal" }) File.Delete(f);
        }
    }

    [Fact]
    public async Task A_transaction_that_cannot_begin_fails_every_write_it_carried_and_the_next_one_goes_on()
    {
        await using var store = await StoreAsync();
        var broken = false;
        // While "broken", a transaction's connection cannot be opened (a file in a folder that does not exist).
        var group = new SqliteGroupCommit(async ct =>
        {
            if (!Volatile.Read(ref broken)) return await store.OpenAsync(ct);
            var nowhere = new SqliteConnection($"Data Source={Path.Combine(Path.GetTempPath(), $"caas-missing-{Guid.NewGuid():N}", "x.db")};Mode=ReadWrite");
            await nowhere.OpenAsync(ct);
            return nowhere;
        }, ct => store.WriteTurnAsync(ct), "group-commit-test");

        var (held, release) = Hold(group);
        var a = group.RunAsync(Insert("a"));
        var b = group.RunAsync(Insert("b"));
        Volatile.Write(ref broken, true);
        release();
        Assert.Equal(0, await held);
        var commits = group.CommitCount;
        await Assert.ThrowsAsync<SqliteException>(() => a);
        await Assert.ThrowsAsync<SqliteException>(() => b);
        Assert.Equal(commits, group.CommitCount);

        Volatile.Write(ref broken, false);
        Assert.Equal(1, await group.RunAsync(Insert("c")));
        Assert.Equal(["c"], await KeysAsync(store));
    }

    private sealed class Nothing : IDisposable
    {
        public void Dispose()
        {
        }
    }
}
