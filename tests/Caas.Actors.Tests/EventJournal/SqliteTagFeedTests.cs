using Akka.Actor;
using Akka.Persistence;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.EventJournal;
using Microsoft.Data.Sqlite;

namespace Caas.Actors.Tests;

/// <summary><see cref="SqliteTagFeed"/> on a real SQLite journal: the shared specs, a journal file without its table yet, a failed read.</summary>
public sealed class SqliteTagFeedTests() : JournalTagFeedSpecs("sqlite")
{
    protected override JournalTagFeed Feed(int maxRows = 2000, int kept = 8000) =>
        new SqliteTagFeed((ExtendedActorSystem)Sys, Storage.JournalConnectionString, TimeSpan.FromMilliseconds(20), maxRows, kept);

    [Fact]
    public async Task Before_the_first_write_creates_the_table_the_journal_reads_as_empty_and_its_rows_follow_once_it_exists()
    {
        var diary = Start("early", "early");
        Persist(diary, "e1");
        Persist(diary, "e2");
        var path = Path.Combine(Path.GetTempPath(), $"caas-feed-{Guid.NewGuid():N}.db");
        var fresh = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString();
        try
        {
            // A new node: its projections read before the journal's first write has created the table.
            var feed = new SqliteTagFeed((ExtendedActorSystem)Sys, fresh, TimeSpan.FromMilliseconds(20));
            Assert.Empty(await feed.CurrentEventsByTagAsync("early", 0));
            var live = feed.EventsByTag("early", 0).Take(2).RunWith(Sink.Seq<EventEnvelope>(), Sys.Materializer());
            await using (var connection = new SqliteConnection(fresh))
            {
                connection.Open();
                await using var create = connection.CreateCommand();
                create.CommandText = SqliteJournalStore.CreateSql;
                create.ExecuteNonQuery();
                await using var copy = connection.CreateCommand();
                copy.CommandText = "ATTACH DATABASE $source AS source; INSERT INTO journal SELECT * FROM source.journal WHERE persistence_id = 'early'; DETACH DATABASE source";
                copy.Parameters.AddWithValue("$source", new SqliteConnectionStringBuilder(Storage.JournalConnectionString).DataSource);
                copy.ExecuteNonQuery();
            }
            Assert.Equal(["e1", "e2"], (await live.WaitAsync(Wait)).Select(e => (string)e.Event));
            Assert.Equal(Describe(await Plugin("early", 0)), Describe(await feed.CurrentEventsByTagAsync("early", 0)));
        }
        finally
        {
            foreach (var file in new[] { path, path + "-wal", path + "-shm", path + "-journal" })
                if (File.Exists(file)) File.Delete(file);
        }
    }

    [Fact]
    public async Task A_read_that_fails_with_no_other_reader_waiting_leaves_no_unobserved_task_exception()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"caas-no-such-dir-{Guid.NewGuid():N}", "journal.db");
        var unobserved = new List<Exception>();
        EventHandler<UnobservedTaskExceptionEventArgs> seen = (_, e) =>
        {
            // This feed's failed read only (tests in parallel may leave their own unobserved exceptions).
            var text = e.Exception.ToString();
            if (text.Contains(nameof(SqliteTagFeed), StringComparison.Ordinal) && text.Contains("unable to open database", StringComparison.OrdinalIgnoreCase))
                lock (unobserved) unobserved.Add(e.Exception);
        };
        TaskScheduler.UnobservedTaskException += seen;
        try
        {
            var feed = new SqliteTagFeed((ExtendedActorSystem)Sys, $"Data Source={missing};Mode=ReadOnly", TimeSpan.FromMilliseconds(20));
            for (var i = 0; i < 3; i++)
                await Assert.ThrowsAsync<SqliteException>(() => feed.CurrentEventsByTagAsync("t", 0));
            for (var i = 0; i < 3; i++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
            lock (unobserved) Assert.Empty(unobserved);
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= seen;
        }
    }
}
