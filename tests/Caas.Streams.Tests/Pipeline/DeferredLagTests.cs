using System.Data.Common;
using Caas.Actors.Conversations;
using Caas.Streams.Pipeline;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Caas.Streams.Tests.Pipeline;

/// <summary>
/// The enrichment lag sampled incrementally (<see cref="DeferredLag"/>) answers what the full count from the offset
/// (<see cref="EnrichmentProjection.LagAsync"/>) answers, while each sample reads only the rows added since the last
/// one (and the overlap behind them, where a late commit lands). On both journals' databases.
/// </summary>
public sealed class DeferredLagTests
{
    private static readonly string Deferred = ";conversation;" + EnrichmentTags.Deferred + ";";
    private static readonly DateTime Now = DateTime.UtcNow;

    private static async Task<DbConnection> JournalAsync(string kind)
    {
        DbConnection c = kind == "postgres"
            ? new NpgsqlConnection(TestDatabases.NewPostgresDatabase("lag"))
            : new SqliteConnection($"Data Source={Path.Combine(TestDatabases.NewSqliteDirectory(), "journal.db")}");
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "CREATE TABLE journal (ordering BIGINT PRIMARY KEY, created BIGINT NOT NULL, tags TEXT NULL)";
        await cmd.ExecuteNonQueryAsync();
        return c;
    }

    /// <summary>Rows <paramref name="from"/>..<paramref name="to"/>; those <paramref name="deferred"/> picks carry the tag; row n was created n seconds after an hour ago.</summary>
    private static async Task AddAsync(DbConnection c, long from, long to, Func<long, bool> deferred)
    {
        for (var n = from; n <= to; n++)
        {
            await using var cmd = c.CreateCommand();
            cmd.CommandText = "INSERT INTO journal (ordering, created, tags) VALUES (@o, @c, @t)";
            JournalDb.Parameter(cmd, "o", n);
            JournalDb.Parameter(cmd, "c", Now.AddHours(-1).AddSeconds(n).Ticks);
            JournalDb.Parameter(cmd, "t", deferred(n) ? Deferred : ";conversation;tenant:t;");
            await cmd.ExecuteNonQueryAsync();
        }
    }

    private static async Task SameAsFullCount(DbConnection c, DeferredLag lag, long offset, long head)
    {
        var (messages, oldest) = await lag.SampleAsync(c, offset, head);
        var full = await EnrichmentProjection.LagAsync(c, offset);
        Assert.Equal(full.Messages, messages);
        Assert.InRange(oldest, full.OldestSeconds - 5, full.OldestSeconds + 5);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Each_sample_reads_the_new_rows_and_counts_what_the_full_scan_counts(string kind)
    {
        await using var c = await JournalAsync(kind);
        var lag = new DeferredLag(overlap: 60);
        await AddAsync(c, 1, 100, n => n % 10 == 0);

        await SameAsFullCount(c, lag, offset: 0, head: 100);
        Assert.Equal(0, lag.LastReadFrom);
        Assert.Equal(10, (await lag.SampleAsync(c, 0, 100)).Messages);

        // The projection enriched up to 50; ordinary traffic 101..200 with one deferred row (170) and ordering 150 not
        // committed yet (a PostgreSQL transaction that took it earlier).
        await AddAsync(c, 101, 149, _ => false);
        await AddAsync(c, 151, 200, n => n == 170);
        await SameAsFullCount(c, lag, offset: 50, head: 200);
        Assert.Equal(50, lag.LastReadFrom);
        // Row 150 commits, deferred; rows up to 400 arrive, none deferred. The next sample reads from 200 - 60 on,
        // not from the offset: it finds 150 and never reads the first hundred rows again.
        await AddAsync(c, 150, 150, _ => true);
        await AddAsync(c, 201, 400, _ => false);
        await SameAsFullCount(c, lag, offset: 50, head: 400);
        Assert.Equal(140, lag.LastReadFrom);
        Assert.Equal(7, (await lag.SampleAsync(c, 50, 400)).Messages); // 60..100, 150, 170
        Assert.Equal(340, lag.LastReadFrom);

        // Everything enriched: nothing left, and the age is 0.
        Assert.Equal((0L, 0d), await lag.SampleAsync(c, 400, 400));
        // A projection reset to an earlier offset reads from it again.
        await SameAsFullCount(c, lag, offset: 0, head: 400);
        Assert.Equal(0, lag.LastReadFrom);
        Assert.Equal(12, (await lag.SampleAsync(c, 0, 400)).Messages);
    }
}
