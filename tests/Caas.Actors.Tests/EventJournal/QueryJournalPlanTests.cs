using Caas.Actors.EventJournal;
using Caas.Actors.Hosting;
using Caas.Tests.Shared;
using Npgsql;

namespace Caas.Actors.Tests;

/// <summary>
/// The query journal's PostgreSQL sessions plan the plugin's events-by-tag query as a walk of the journal's primary
/// key (no bitmap scan of the whole ordering range and sort), on a real PostgreSQL whose journal has no statistics yet,
/// where the planner otherwise takes the tag filter for almost no rows.
/// </summary>
public sealed class QueryJournalPlanTests
{
    // The plugin's events-by-tag statement (Akka.Persistence.Sql, tag-read-mode = Csv), as PostgreSQL logs it.
    private const string EventsByTag = """
        SELECT r.ordering, r.created, r.deleted, r.persistence_id, r.sequence_number, r.message, r.tags, r.manifest, r.identifier, r.writer_uuid
        FROM journal r WHERE r.tags IS NOT NULL AND r.tags LIKE '%;conversation;%' ESCAPE '~' AND NOT r.deleted
        AND r.ordering > 20000 AND r.ordering <= 120000 ORDER BY r.ordering LIMIT 2000
        """;

    [Fact]
    public void The_query_journal_s_sessions_get_the_option_and_other_stores_do_not()
    {
        var storage = StorageOptions.Postgres("Host=127.0.0.1;Port=5432;Username=u;Password=p;Database=d");
        Assert.Contains("enable_bitmapscan=off", new NpgsqlConnectionStringBuilder(storage.QueryJournalConnectionString).Options);
        Assert.Null(new NpgsqlConnectionStringBuilder(storage.JournalConnectionString).Options);
        var config = CaasConfig.StorageConfig(storage);
        Assert.Equal(storage.QueryJournalConnectionString, config.GetString("akka.persistence.query.journal.sql.connection-string"));
        Assert.Equal(storage.JournalConnectionString, config.GetString("akka.persistence.journal.caas.connection-string"));
        var sqlite = StorageOptions.Sqlite(TestDatabases.NewSqliteDirectory());
        Assert.Equal(sqlite.JournalConnectionString, sqlite.QueryJournalConnectionString);
    }

    [Fact]
    public async Task Events_by_tag_walks_the_primary_key_on_a_journal_without_statistics()
    {
        var storage = TestDatabases.Storage("postgres");
        // The node's own journal table, filled without statistics.
        await using (var store = new PostgresJournalStore(storage.JournalConnectionString, 2))
            await store.InitializeAsync(CancellationToken.None);
        await using (var c = new NpgsqlConnection(storage.JournalConnectionString))
        {
            await c.OpenAsync();
            await using var fill = new NpgsqlCommand("""
                ALTER TABLE journal SET (autovacuum_enabled = false);
                INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, tags, manifest, identifier, writer_uuid)
                SELECT 0, false, 'conversation|t|c-' || (i % 100), i, decode(repeat('ab', 300), 'hex'), ';conversation;tenant:t;', 'm', 1, 'w'
                FROM generate_series(1, 150000) i
                """, c);
            await fill.ExecuteNonQueryAsync();
        }

        await using var session = new NpgsqlConnection(storage.QueryJournalConnectionString);
        await session.OpenAsync();
        await using (var show = new NpgsqlCommand("SHOW enable_bitmapscan", session))
            Assert.Equal("off", (string?)await show.ExecuteScalarAsync());
        var plan = await ExplainAsync(session);
        Assert.Contains("Index Scan", plan);
        Assert.DoesNotContain("Sort", plan);
        Assert.DoesNotContain("Bitmap", plan);
    }

    private static async Task<string> ExplainAsync(NpgsqlConnection c)
    {
        await using var cmd = new NpgsqlCommand("EXPLAIN " + EventsByTag, c);
        var lines = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) lines.Add(r.GetString(0));
        return string.Join("\n", lines);
    }
}
