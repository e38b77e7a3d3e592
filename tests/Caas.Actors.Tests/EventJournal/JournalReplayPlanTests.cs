using Caas.Actors.EventJournal;
using Caas.Tests.Shared;
using Npgsql;

namespace Caas.Actors.Tests;

/// <summary>
/// A recovery's read on PostgreSQL is a walk of journal_uq in its order (it streams from the first row, no sort, no
/// bitmap scan) whatever the statistics say: on a journal filled without them, and once analyzed with one conversation
/// a third of the table (where the planner otherwise walks the sequence_number index over every row). And it reads
/// exactly the conversation's rows of the range, in order, beside persistence ids that sort next to it.
/// </summary>
public sealed class JournalReplayPlanTests
{
    [Fact]
    public async Task The_replay_walks_journal_uq_with_and_without_statistics()
    {
        var storage = TestDatabases.Storage("postgres");
        await using (var store = new PostgresJournalStore(storage.JournalConnectionString, 2))
            await store.InitializeAsync(CancellationToken.None);
        await using var c = new NpgsqlConnection(storage.JournalConnectionString);
        await c.OpenAsync();
        await ExecAsync(c, """
            INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, tags, manifest, identifier, writer_uuid)
            SELECT 0, false, 'conversation|t|c-' || (i % 1000), i / 1000 + 1, decode(repeat('ab', 200), 'hex'), ';conversation;', 'm', 1, 'w'
            FROM generate_series(0, 199999) i;
            ANALYZE journal;
            ALTER TABLE journal SET (autovacuum_enabled = false);
            INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, tags, manifest, identifier, writer_uuid)
            SELECT 0, false, 'conversation|t|big', i, decode(repeat('ab', 200), 'hex'), ';conversation;', 'm', 1, 'w'
            FROM generate_series(1, 100000) i
            """);

        // The statistics know nothing of the 100,000 new rows.
        AssertWalk(await ExplainAsync(c, "conversation|t|big"));
        await ExecAsync(c, "ANALYZE journal");
        // Now they do: one conversation is a third of the table.
        AssertWalk(await ExplainAsync(c, "conversation|t|big"));
        AssertWalk(await ExplainAsync(c, "conversation|t|c-7"));
    }

    [Fact]
    public async Task The_replay_reads_exactly_the_range_of_its_persistence_id_in_order()
    {
        var storage = TestDatabases.Storage("postgres");
        await using var store = new PostgresJournalStore(storage.JournalConnectionString, 2);
        await store.InitializeAsync(CancellationToken.None);
        await using (var c = new NpgsqlConnection(storage.JournalConnectionString))
        {
            await c.OpenAsync();
            // Neighbours in text order ("a" < "a|" < "a1" < "b"), each with sequence numbers 1..20, inserted interleaved
            // and in reverse so that the heap order is not the answer's.
            await ExecAsync(c, """
                INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, tags, manifest, identifier, writer_uuid)
                SELECT s, s = 9 AND p = 'a', p, s, decode('00', 'hex'), NULL, 'm', 1, 'w'
                FROM unnest(ARRAY['b', 'a1', 'a|', 'a', '']) p, generate_series(20, 1, -1) s
                """);
        }
        var seen = new List<(string Pid, long Seq, long Created)>();
        await store.ReplayAsync("a", 3, 12, long.MaxValue, r => seen.Add((r.PersistenceId, r.SequenceNr, r.Created)), CancellationToken.None);
        Assert.Equal(new long[] { 3, 4, 5, 6, 7, 8, 10, 11, 12 }, seen.Select(r => r.Seq));
        Assert.All(seen, r => Assert.Equal(r.Seq, r.Created));
        seen.Clear();
        await store.ReplayAsync("a", 1, long.MaxValue, 4, r => seen.Add((r.PersistenceId, r.SequenceNr, r.Created)), CancellationToken.None);
        Assert.Equal(new long[] { 1, 2, 3, 4 }, seen.Select(r => r.Seq));
        seen.Clear();
        await store.ReplayAsync("a1", 19, long.MaxValue, long.MaxValue, r => seen.Add((r.PersistenceId, r.SequenceNr, r.Created)), CancellationToken.None);
        Assert.Equal(new long[] { 19, 20 }, seen.Select(r => r.Seq));
        seen.Clear();
        await store.ReplayAsync("a0", 1, long.MaxValue, long.MaxValue, r => seen.Add((r.PersistenceId, r.SequenceNr, r.Created)), CancellationToken.None);
        Assert.Empty(seen);
    }

    private static void AssertWalk(string plan)
    {
        Assert.Contains("Index Scan using journal_uq", plan);
        Assert.DoesNotContain("Sort", plan);
        Assert.DoesNotContain("Bitmap", plan);
        Assert.DoesNotContain("Seq Scan", plan);
        Assert.DoesNotContain("journal_sequence_number_idx", plan);
    }

    /// <summary>The plan of the statement the store runs, prepared by the store (its settings, its parameters).</summary>
    private static async Task<string> ExplainAsync(NpgsqlConnection c, string persistenceId)
    {
        await using var tx = await c.BeginTransactionAsync();
        await using var cmd = await PostgresJournalStore.ReplayCommandAsync(c, tx, persistenceId, 1, long.MaxValue, long.MaxValue, CancellationToken.None);
        cmd.CommandText = "EXPLAIN " + cmd.CommandText;
        var lines = new List<string>();
        await using (var r = await cmd.ExecuteReaderAsync())
            while (await r.ReadAsync()) lines.Add(r.GetString(0));
        await tx.RollbackAsync();
        return string.Join("\n", lines);
    }

    private static async Task ExecAsync(NpgsqlConnection c, string sql)
    {
        await using var cmd = new NpgsqlCommand(sql, c);
        await cmd.ExecuteNonQueryAsync();
    }
}
