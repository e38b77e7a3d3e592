using System.Data.Common;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;
using Npgsql;
using Xunit;

namespace Caas.Streams.Tests;

/// <summary>
/// <see cref="LateCommitSweep.JournaledAsync"/> on a real PostgreSQL, with transactions held open and rolled back by
/// the test: rows past an ordering gap are read again at every sweep until the gap fills, rows below it are read once
/// and still answered while the window holds them, and the answer is always what the whole window's rows give (the window starts at the offset of the first sweep).
/// </summary>
public sealed class LateCommitSweepTests : IAsyncLifetime
{
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);
    private readonly string _db = TestDatabases.NewPostgresDatabase("caas_sweep");

    public async Task InitializeAsync()
    {
        await using var c = await OpenAsync();
        // The columns the sweep reads, under the journal's name; ordering drawn from a sequence as the journal's is.
        await Execute(c, null, "CREATE TABLE journal (ordering BIGSERIAL PRIMARY KEY, persistence_id TEXT NOT NULL, sequence_number BIGINT NOT NULL)");
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private async Task<DbConnection> OpenAsync(CancellationToken ct = default)
    {
        var c = new NpgsqlConnection(_db);
        await c.OpenAsync(ct);
        return c;
    }

    private static async Task Execute(DbConnection c, DbTransaction? tx, string sql)
    {
        await using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>Inserts rows, committed, and answers the last ordering value.</summary>
    private async Task<long> Insert(params (string Pid, long Seq)[] rows)
    {
        await using var c = await OpenAsync();
        await using var tx = await c.BeginTransactionAsync();
        var last = await Insert(c, tx, rows);
        await tx.CommitAsync();
        return last;
    }

    private static async Task<long> Insert(DbConnection c, DbTransaction tx, params (string Pid, long Seq)[] rows)
    {
        long last = 0;
        foreach (var (pid, seq) in rows)
        {
            await using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = $"INSERT INTO journal (persistence_id, sequence_number) VALUES ('{pid}', {seq}) RETURNING ordering";
            last = (long)(await cmd.ExecuteScalarAsync())!;
        }
        return last;
    }

    /// <summary>What a sweep over the whole window reads: the highest sequence number per conversation among the rows after <paramref name="after"/> up to <paramref name="to"/>.</summary>
    private async Task<Dictionary<string, long>> Whole(long after, long to)
    {
        await using var c = await OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT persistence_id, MAX(sequence_number) FROM journal WHERE ordering > {after} AND ordering <= {to} " +
                          "AND persistence_id LIKE 'conversation|%' GROUP BY persistence_id";
        var map = new Dictionary<string, long>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) map[r.GetString(0)] = r.GetInt64(1);
        return map;
    }

    private static void Same(IReadOnlyDictionary<string, long> expected, IReadOnlyDictionary<string, long> actual) =>
        Assert.Equal(expected.OrderBy(p => p.Key), actual.OrderBy(p => p.Key));

    [Fact]
    public async Task A_row_committed_behind_later_ones_is_found_once_it_commits_and_what_was_settled_is_still_answered()
    {
        var sweep = new LateCommitSweep(OpenAsync, Hour);
        // The window starts at the offset of the first sweep.
        var first = await Insert(("conversation|a", 1));
        sweep.Written(first);
        Same(new Dictionary<string, long> { ["conversation|a"] = 1 }, await sweep.JournaledAsync());
        Assert.Equal(first, sweep.Settled);

        // A writer draws the next ordering value and does not commit yet; others commit after it.
        await using var held = await OpenAsync();
        await using var heldTx = await held.BeginTransactionAsync();
        var late = await Insert(held, heldTx, ("conversation|b", 1));
        await Insert(("conversation|a", 2), ("user|x", 1));
        var offset = await Insert(("conversation|a", 3));
        Assert.Equal(first + 1, late);

        sweep.Written(offset);
        Same(new Dictionary<string, long> { ["conversation|a"] = 3 }, await sweep.JournaledAsync());
        Assert.Equal(first, sweep.Settled);
        // Read again while the gap is open: the same.
        Same(new Dictionary<string, long> { ["conversation|a"] = 3 }, await sweep.JournaledAsync());
        Assert.Equal(first, sweep.Settled);

        await heldTx.CommitAsync();
        var expected = new Dictionary<string, long> { ["conversation|a"] = 3, ["conversation|b"] = 1 };
        Same(expected, await sweep.JournaledAsync());
        Assert.Equal(offset, sweep.Settled);
        Same(await Whole(first - 1, offset), expected);

        // Nothing new: the settled rows' answer is kept, not read again.
        Same(expected, await sweep.JournaledAsync());

        var next = await Insert(("conversation|c", 1), ("conversation|b", 2));
        sweep.Written(next);
        Same(await Whole(first - 1, next), await sweep.JournaledAsync());
        Assert.Equal(next, sweep.Settled);
    }

    [Fact]
    public async Task A_rolled_back_ordering_value_keeps_the_rows_after_it_read_at_every_sweep_and_the_answer_whole()
    {
        var sweep = new LateCommitSweep(OpenAsync, Hour);
        await Insert(("conversation|a", 1));
        var first = await Insert(("conversation|b", 1));
        sweep.Written(first);
        Same(new Dictionary<string, long> { ["conversation|b"] = 1 }, await sweep.JournaledAsync());
        Assert.Equal(first, sweep.Settled);

        await using (var c = await OpenAsync())
        {
            await using var tx = await c.BeginTransactionAsync();
            await Insert(c, tx, ("conversation|z", 1));
            await tx.RollbackAsync();
        }
        var offset = await Insert(("conversation|a", 2), ("conversation|c", 1));
        for (var i = 0; i < 3; i++)
        {
            sweep.Written(offset);
            Same(await Whole(first - 1, offset), await sweep.JournaledAsync());
            Assert.Equal(first, sweep.Settled);
            offset = await Insert(("conversation|d", i + 1));
        }
    }

    [Fact]
    public async Task The_window_drops_settled_rows_older_than_it_and_an_offset_that_goes_back_reads_again()
    {
        // A window of zero: each sweep looks only at the rows from the offset written now.
        var sweep = new LateCommitSweep(OpenAsync, TimeSpan.Zero);
        var first = await Insert(("conversation|a", 1), ("conversation|b", 1));
        sweep.Written(first);
        Same(new Dictionary<string, long> { ["conversation|b"] = 1 }, await sweep.JournaledAsync());
        var offset = await Insert(("conversation|c", 1), ("conversation|d", 1));
        sweep.Written(offset);
        Same(new Dictionary<string, long> { ["conversation|d"] = 1 }, await sweep.JournaledAsync());

        // A projection whose stream starts again from an earlier offset (a rebuild's swap).
        var hour = new LateCommitSweep(OpenAsync, Hour);
        hour.Written(offset);
        Same(new Dictionary<string, long> { ["conversation|d"] = 1 }, await hour.JournaledAsync());
        Assert.Equal(offset, hour.Settled);
        hour.Written(first);
        Same(new Dictionary<string, long> { ["conversation|b"] = 1 }, await hour.JournaledAsync());
        Assert.Equal(first, hour.Settled);
    }
}
