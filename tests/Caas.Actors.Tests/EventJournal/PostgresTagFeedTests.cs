using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.EventJournal;
using Npgsql;

namespace Caas.Actors.Tests;

/// <summary>
/// <see cref="PostgresTagFeed"/> on a real PostgreSQL journal: the shared specs, then the gaps that parallel writers
/// leave. A transaction holding an ordering value below committed rows holds the feed back until it commits; one that
/// rolled back is passed by once the gap has been waited for; gaps below the head when the feed first read are not
/// waited for; a database without the journal's table yet reads as empty.
/// </summary>
public sealed class PostgresTagFeedTests() : JournalTagFeedSpecs("postgres")
{
    protected override JournalTagFeed Feed(int maxRows = 2000, int kept = 8000) => Feed(TimeSpan.FromMinutes(5), maxRows, kept);

    // Gap waits in these tests are either far longer than any test (a gap must hold) or short (a gap must pass).
    private PostgresTagFeed Feed(TimeSpan gapWait, int maxRows = 2000, int kept = 8000) =>
        new((ExtendedActorSystem)Sys, Storage.JournalConnectionString, TimeSpan.FromMilliseconds(20), gapWait, maxRows, kept);

    /// <summary>Opens a transaction that inserts a journal row of another tag: it holds that ordering value until it ends.</summary>
    private async Task<(NpgsqlConnection Connection, NpgsqlTransaction Transaction, long Ordering)> HoldOrderingAsync(string pid)
    {
        var connection = new NpgsqlConnection(Storage.JournalConnectionString);
        await connection.OpenAsync();
        var tx = await connection.BeginTransactionAsync();
        await using var insert = new NpgsqlCommand("""
            INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, tags, manifest, identifier, writer_uuid)
            VALUES (0, false, @p, 1, '\x00'::bytea, ';elsewhere;', '', 1, 'test') RETURNING ordering
            """, connection, tx);
        insert.Parameters.AddWithValue("p", pid);
        return (connection, tx, (long)(await insert.ExecuteScalarAsync())!);
    }

    private static List<string> Texts(IEnumerable<EventEnvelope> events) => events.Select(e => (string)e.Event).ToList();

    [Fact]
    public async Task A_row_committed_above_an_uncommitted_one_waits_until_that_one_commits()
    {
        var diary = Start("gapped", "g");
        Persist(diary, "before");
        var feed = Feed(TimeSpan.FromMinutes(5));
        Assert.Equal(["before"], Texts(await feed.CurrentEventsByTagAsync("g", 0)));

        var (connection, tx, held) = await HoldOrderingAsync("holder");
        await using (connection)
        {
            Persist(diary, "after");
            // The row of "after" is committed, but below it a value is still held: nothing past the gap is given.
            Assert.Equal(["before"], Texts(await feed.CurrentEventsByTagAsync("g", 0)));
            var live = feed.EventsByTag("g", 0).Take(2).RunWith(Sink.Seq<EventEnvelope>(), Sys.Materializer());
            await Task.Delay(300);
            Assert.False(live.IsCompleted);

            await tx.CommitAsync();
            var events = await live.WaitAsync(Wait);
            Assert.Equal(["before", "after"], Texts(events));
            Assert.True(((Sequence)events[1].Offset).Value > held);
            Assert.Equal(Describe(await Plugin("g", 0)), Describe(await feed.CurrentEventsByTagAsync("g", 0)));
            Assert.Equal(0, ((PostgresTagFeed)feed).GapsPassed);
        }
    }

    [Fact]
    public async Task A_gap_that_never_fills_is_passed_once_it_has_been_waited_for()
    {
        var diary = Start("rolled", "r");
        Persist(diary, "first");
        var feed = Feed(TimeSpan.FromMilliseconds(500));
        Assert.Equal(["first"], Texts(await feed.CurrentEventsByTagAsync("r", 0)));

        var (connection, tx, _) = await HoldOrderingAsync("rolled-back");
        await using (connection)
        {
            Persist(diary, "second");
            await tx.RollbackAsync();
        }
        // The first read sees the gap and starts its clock; the live stream gets "second" once the gap is given up.
        Assert.Equal(["first"], Texts(await feed.CurrentEventsByTagAsync("r", 0)));
        var events = await feed.EventsByTag("r", 0).Take(2).RunWith(Sink.Seq<EventEnvelope>(), Sys.Materializer()).WaitAsync(Wait);
        Assert.Equal(["first", "second"], Texts(events));
        Assert.Equal(1, feed.GapsPassed);
        Assert.Equal(Describe(await Plugin("r", 0)), Describe(events));
    }

    [Fact]
    public async Task Gaps_below_the_head_when_the_feed_first_read_are_not_waited_for()
    {
        var diary = Start("old-gaps", "o");
        Persist(diary, "a");
        var (connection, tx, _) = await HoldOrderingAsync("rolled-back");
        await using (connection)
        {
            Persist(diary, "b");
            await tx.RollbackAsync();
        }
        Persist(diary, "c");
        // A feed made now (a node starting) reads past the old gap at once, though it would wait for a new one.
        var feed = Feed(TimeSpan.FromMinutes(5));
        Assert.Equal(["a", "b", "c"], Texts(await feed.CurrentEventsByTagAsync("o", 0)));
        Assert.Equal(0, feed.GapsPassed);
    }

    [Fact]
    public async Task Before_the_journal_table_exists_the_journal_reads_as_empty_and_its_rows_follow_once_it_exists()
    {
        var empty = Caas.Tests.Shared.TestDatabases.NewPostgresDatabase("caasfeed");
        var feed = new PostgresTagFeed((ExtendedActorSystem)Sys, empty, TimeSpan.FromMilliseconds(20), TimeSpan.FromMinutes(5));
        await using (feed)
        {
            Assert.Empty(await feed.CurrentEventsByTagAsync("early", 0));
            var live = feed.EventsByTag("early", 0).Take(1).RunWith(Sink.Seq<EventEnvelope>(), Sys.Materializer());
            var diary = Start("early", "early");
            Persist(diary, "e1");
            await using (var connection = new NpgsqlConnection(empty))
            {
                await connection.OpenAsync();
                // The journal's table (its columns) created late, with the test journal's row copied in.
                await using var source = new NpgsqlConnection(Storage.JournalConnectionString);
                await source.OpenAsync();
                await using var ddl = new NpgsqlCommand("""
                    CREATE TABLE journal (ordering bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, created bigint NOT NULL,
                        deleted boolean NOT NULL, persistence_id text NOT NULL, sequence_number bigint NOT NULL, message bytea NOT NULL,
                        tags text, manifest text, identifier integer, writer_uuid text)
                    """, connection);
                await ddl.ExecuteNonQueryAsync();
                await using var read = new NpgsqlCommand(
                    "SELECT created, persistence_id, sequence_number, message, tags, manifest, identifier FROM journal WHERE persistence_id = 'early'", source);
                await using var reader = await read.ExecuteReaderAsync();
                Assert.True(await reader.ReadAsync());
                await using var insert = new NpgsqlCommand("""
                    INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, tags, manifest, identifier, writer_uuid)
                    VALUES (@c, false, @p, @s, @m, @t, @mf, @i, 'copy')
                    """, connection);
                insert.Parameters.AddWithValue("c", reader.GetInt64(0));
                insert.Parameters.AddWithValue("p", reader.GetString(1));
                insert.Parameters.AddWithValue("s", reader.GetInt64(2));
                insert.Parameters.AddWithValue("m", (byte[])reader.GetValue(3));
                insert.Parameters.AddWithValue("t", reader.GetString(4));
                insert.Parameters.AddWithValue("mf", reader.GetString(5));
                insert.Parameters.AddWithValue("i", reader.GetInt32(6));
                await insert.ExecuteNonQueryAsync();
            }
            Assert.Equal(["e1"], Texts(await live.WaitAsync(Wait)));
        }
    }
}
