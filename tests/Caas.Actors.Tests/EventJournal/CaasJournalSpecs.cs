using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.EventJournal;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Caas.Actors.Tests;

/// <summary>
/// CAAS's journal write side (<see cref="CaasJournal"/>) on a real SQLite file and a real PostgreSQL database: entities
/// persist and recover through it, the plugin's read journal reads what it wrote, a taken sequence number rejects
/// only its own write, and a connection dropped mid-write fails only the writes in flight.
/// </summary>
public abstract class CaasJournalSpecs(string kind, string extra = "") : JournalSpec(kind, "caas.journal.writer = caas\n" + extra)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private IActorRef Journal => Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null);

    private SqlReadJournal Query => PersistenceQuery.Get(Sys).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);

    protected IActorRef Start(string pid, params string[] tags) => Sys.ActorOf(Props.Create(() => new Diary(pid, tags, TestActor)));

    protected long Persist(IActorRef diary, string text)
    {
        diary.Tell(new Diary.Write(text));
        return ExpectMsg<Diary.Written>(Wait).SequenceNr;
    }

    private Diary.State Read(IActorRef diary)
    {
        diary.Tell(Diary.Read.Instance);
        return ExpectMsg<Diary.State>(Wait);
    }

    private async Task<List<EventEnvelope>> All(Source<EventEnvelope, Akka.NotUsed> source) =>
        [.. await source.RunWith(Sink.Seq<EventEnvelope>(), Sys.Materializer())];

    [Fact]
    public void The_journal_in_use_is_caas()
    {
        Assert.Equal("akka.persistence.journal.caas", Sys.Settings.Config.GetString("akka.persistence.journal.plugin"));
    }

    [Fact]
    public void An_entity_persists_and_recovers_through_it_and_keeps_its_highest_sequence_number_after_deletes()
    {
        var diary = Start("diary-1");
        for (var i = 1; i <= 5; i++) Assert.Equal(i, Persist(diary, $"e{i}"));
        StopAndWait(diary);

        diary = Start("diary-1");
        var recovered = Read(diary);
        Assert.Equal(["e1", "e2", "e3", "e4", "e5"], recovered.Events);
        Assert.Equal(5, recovered.LastSequenceNr);

        diary.Tell(new Diary.Forget(3));
        ExpectMsg<DeleteMessagesSuccess>(Wait);
        StopAndWait(diary);
        diary = Start("diary-1");
        Assert.Equal(["e4", "e5"], Read(diary).Events);

        // Everything deleted: the row that held the highest number stays (marked deleted), so numbering goes on.
        diary.Tell(new Diary.Forget(long.MaxValue));
        ExpectMsg<DeleteMessagesSuccess>(Wait);
        StopAndWait(diary);
        diary = Start("diary-1");
        var empty = Read(diary);
        Assert.Empty(empty.Events);
        Assert.Equal(5, empty.LastSequenceNr);
        Assert.Equal(6, Persist(diary, "e6"));
        StopAndWait(diary);
        Assert.Equal(["e6"], Read(Start("diary-1")).Events);
    }

    [Fact]
    public async Task The_plugins_read_journal_reads_what_it_wrote_by_tag_and_by_persistence_id_in_order()
    {
        var red = Start("red", "colour", "red");
        var blue = Start("blue", "colour");
        for (var i = 1; i <= 4; i++)
        {
            Persist(red, $"r{i}");
            Persist(blue, $"b{i}");
        }

        var colour = await All(Query.CurrentEventsByTag("colour", Offset.NoOffset()));
        Assert.Equal(["r1", "b1", "r2", "b2", "r3", "b3", "r4", "b4"], colour.Select(e => (string)e.Event));
        var offsets = colour.Select(e => ((Sequence)e.Offset).Value).ToList();
        Assert.Equal(offsets.Order(), offsets);
        Assert.Equal(offsets.Count, offsets.Distinct().Count());

        Assert.Equal(["r1", "r2", "r3", "r4"], (await All(Query.CurrentEventsByTag("red", Offset.NoOffset()))).Select(e => (string)e.Event));
        Assert.Empty(await All(Query.CurrentEventsByTag("green", Offset.NoOffset())));
        // A tag that only contains another as a part does not match it (";red;" is not ";re;").
        Assert.Empty(await All(Query.CurrentEventsByTag("re", Offset.NoOffset())));

        var byId = await All(Query.CurrentEventsByPersistenceId("blue", 2, long.MaxValue));
        Assert.Equal([2L, 3L, 4L], byId.Select(e => e.SequenceNr));
        Assert.Equal(["b2", "b3", "b4"], byId.Select(e => (string)e.Event));

        var ids = await Query.CurrentPersistenceIds().RunWith(Sink.Seq<string>(), Sys.Materializer());
        Assert.Contains("red", ids);
        Assert.Contains("blue", ids);
    }

    [Fact]
    public async Task A_taken_sequence_number_rejects_only_its_own_write_in_a_batch()
    {
        var writer = CreateTestProbe();
        Journal.Tell(new WriteMessages([Write("taken", 1, "first")], writer.Ref, 1));
        writer.ExpectMsg<WriteMessagesSuccessful>(Wait);
        writer.ExpectMsg<WriteMessageSuccess>(Wait);

        // One call, so one transaction: two entities' writes around a duplicate single row and a write whose second
        // row is free but whose first is taken.
        Journal.Tell(new WriteMessages(
        [
            Write("other-1", 1, "o1"),
            Write("taken", 1, "again"),
            Write("taken", 1, "again", 2, "more"),
            Write("other-2", 1, "p1", 2, "p2"),
            Write("twin", 1, "t1"),
            Write("twin", 1, "t1-again"),
        ], writer.Ref, 2));
        writer.ExpectMsg<WriteMessagesSuccessful>(Wait);
        Assert.Equal("o1", writer.ExpectMsg<WriteMessageSuccess>(Wait).Persistent.Payload);
        Assert.IsType<DuplicateJournalRowException>(writer.ExpectMsg<WriteMessageRejected>(Wait).Cause);
        Assert.IsType<DuplicateJournalRowException>(writer.ExpectMsg<WriteMessageRejected>(Wait).Cause);
        Assert.IsType<DuplicateJournalRowException>(writer.ExpectMsg<WriteMessageRejected>(Wait).Cause);
        Assert.Equal("p1", writer.ExpectMsg<WriteMessageSuccess>(Wait).Persistent.Payload);
        Assert.Equal("p2", writer.ExpectMsg<WriteMessageSuccess>(Wait).Persistent.Payload);
        Assert.Equal("t1", writer.ExpectMsg<WriteMessageSuccess>(Wait).Persistent.Payload);
        Assert.IsType<DuplicateJournalRowException>(writer.ExpectMsg<WriteMessageRejected>(Wait).Cause);

        Assert.Equal(["first"], (await All(Query.CurrentEventsByPersistenceId("taken", 0, long.MaxValue))).Select(e => (string)e.Event));
        Assert.Equal(["o1"], (await All(Query.CurrentEventsByPersistenceId("other-1", 0, long.MaxValue))).Select(e => (string)e.Event));
        Assert.Equal(["p1", "p2"], (await All(Query.CurrentEventsByPersistenceId("other-2", 0, long.MaxValue))).Select(e => (string)e.Event));
        Assert.Equal(["t1"], (await All(Query.CurrentEventsByPersistenceId("twin", 0, long.MaxValue))).Select(e => (string)e.Event));
    }

    private AtomicWrite Write(string pid, long seq, string payload, long? seq2 = null, string? payload2 = null)
    {
        var rows = ImmutableList.Create<IPersistentRepresentation>(new Persistent(payload, seq, pid, string.Empty, false, TestActor, "w"));
        if (seq2 is { } s) rows = rows.Add(new Persistent(payload2!, s, pid, string.Empty, false, TestActor, "w"));
        return new AtomicWrite(rows);
    }

    [Fact]
    public void Many_entities_writing_at_once_all_recover_what_was_acknowledged()
    {
        var diaries = Enumerable.Range(0, 20).Select(i => Start($"many-{i}")).ToList();
        for (var round = 1; round <= 10; round++)
        {
            foreach (var d in diaries) d.Tell(new Diary.Write($"x{round}"));
            var acks = Enumerable.Range(0, diaries.Count).Select(_ => ExpectMsg<Diary.Written>(Wait)).ToList();
            Assert.All(acks, a => Assert.Equal(round, a.SequenceNr));
        }
        foreach (var d in diaries) StopAndWait(d);
        for (var i = 0; i < diaries.Count; i++)
            Assert.Equal(Enumerable.Range(1, 10).Select(r => $"x{r}"), Read(Start($"many-{i}")).Events);
    }

    [Fact]
    public void A_long_history_recovers_whole_and_in_order()
    {
        var total = 4_077;
        var diary = Start("long-1");
        for (var from = 1; from <= total; from += 500)
        {
            diary.Tell(new Diary.WriteMany(Enumerable.Range(from, Math.Min(500, total - from + 1)).Select(i => $"e{i}").ToList()));
            ExpectMsg<Diary.Written>(Wait);
        }
        StopAndWait(diary);

        var recovered = Read(Start("long-1"));
        Assert.Equal(Enumerable.Range(1, total).Select(i => $"e{i}"), recovered.Events);
        Assert.Equal(total, recovered.LastSequenceNr);
    }

    [Fact]
    public void A_row_that_cannot_be_read_fails_the_long_recovery_and_the_journal_goes_on()
    {
        var total = 6_000;
        var diary = Start("broken-1");
        for (var from = 1; from <= total; from += 500)
        {
            diary.Tell(new Diary.WriteMany(Enumerable.Range(from, 500).Select(i => $"e{i}").ToList()));
            ExpectMsg<Diary.Written>(Wait);
        }
        StopAndWait(diary);
        // One row in the middle names a serializer this system does not have.
        using (var c = Storage.IsPostgres ? (System.Data.Common.DbConnection)new NpgsqlConnection(Storage.JournalConnectionString)
                   : new SqliteConnection(Storage.JournalConnectionString))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE journal SET identifier = 987654 WHERE persistence_id = 'broken-1' AND sequence_number = 1500";
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }

        // The recovery fails and the entity stops; nothing hangs, and other entities recover and write as before.
        var broken = Start("broken-1");
        Watch(broken);
        ExpectTerminated(broken, Wait);
        var other = Start("after-broken");
        Assert.Equal(1, Persist(other, "fine"));
        StopAndWait(other);
        Assert.Equal(["fine"], Read(Start("after-broken")).Events);
    }

    /// <summary>A persistent actor with string events, tagged as given; it tells the probe what happened.</summary>
    internal sealed class Diary : ReceivePersistentActor
    {
        public sealed record Write(string Text);
        /// <summary>Persisted in one atomic write; acknowledged once with the last sequence number.</summary>
        public sealed record WriteMany(IReadOnlyList<string> Texts);
        public sealed record Written(long SequenceNr);
        public sealed record Forget(long To);
        public sealed record Failed(string Text);
        public sealed class Read { public static readonly Read Instance = new(); }
        public sealed record State(IReadOnlyList<string> Events, long LastSequenceNr);

        private readonly List<string> _events = [];
        private readonly IActorRef _probe;

        public Diary(string pid, string[] tags, IActorRef probe)
        {
            PersistenceId = pid;
            _probe = probe;
            Recover<string>(e => _events.Add(e));
            Command<Write>(w =>
            {
                object e = tags.Length == 0 ? w.Text : new Tagged(w.Text, tags);
                Persist(e, _ =>
                {
                    _events.Add(w.Text);
                    _probe.Tell(new Written(LastSequenceNr));
                });
            });
            Command<WriteMany>(w =>
            {
                var written = 0;
                PersistAll(w.Texts.Select(t => tags.Length == 0 ? (object)t : new Tagged(t, tags)), e =>
                {
                    _events.Add(e is Tagged tagged ? (string)tagged.Payload : (string)e);
                    if (++written == w.Texts.Count) _probe.Tell(new Written(LastSequenceNr));
                });
            });
            Command<Forget>(f => DeleteMessages(f.To));
            Command<DeleteMessagesSuccess>(s => _probe.Tell(s));
            Command<DeleteMessagesFailure>(s => _probe.Tell(s));
            Command<Read>(_ => Sender.Tell(new State(_events.ToList(), LastSequenceNr)));
        }

        public override string PersistenceId { get; }

        protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
        {
            _probe.Tell(new Failed(@event is Tagged t ? (string)t.Payload : (string)@event));
            base.OnPersistFailure(cause, @event, sequenceNr);
        }
    }

    internal static IActorRef StartDiary(ActorSystem sys, string pid, IActorRef probe) => sys.ActorOf(Props.Create(() => new Diary(pid, Array.Empty<string>(), probe)));
}

public sealed class CaasJournalOnSqlite() : CaasJournalSpecs("sqlite")
{
    [Fact]
    public async Task The_replay_reads_every_column_of_each_row_as_stored_nulls_repeats_and_changes_included()
    {
        await using var store = new SqliteJournalStore(Storage.JournalConnectionString);
        await store.InitializeAsync(CancellationToken.None);
        // (seq, created, message, manifest, identifier, writer, deleted): manifests and writers that repeat, change back
        // and are missing, a message of no bytes, a row marked deleted.
        var rows = new (long Seq, long Created, byte[] Message, string? Manifest, int? Identifier, string? Writer, bool Deleted)[]
        {
            (1, 100, [1, 2, 3], "m.a", 7, "w-1", false),
            (2, 101, [4], "m.a", 7, "w-1", false),
            (3, 102, [], "m.b", null, "w-1", false),
            (4, 103, [5, 6], "m.a", 7, "w-2", false),
            (5, 104, [7], null, 7, null, false),
            (6, 105, [8], "m.a", 7, "w-2", true),
            (7, 106, [9, 10], "m.é", 8, "w-2", false),
            (8, 107, [11], "m.a", 7, "w-1", false),
        };
        await using (var c = new SqliteConnection(Storage.JournalConnectionString))
        {
            c.Open();
            foreach (var r in rows)
            {
                await using var insert = c.CreateCommand();
                insert.CommandText = "INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, tags, manifest, identifier, writer_uuid) " +
                                     "VALUES ($c, $d, 'mixed', $s, $m, '', $mf, $i, $w)";
                insert.Parameters.AddWithValue("$c", r.Created);
                insert.Parameters.AddWithValue("$d", r.Deleted ? 1 : 0);
                insert.Parameters.AddWithValue("$s", r.Seq);
                insert.Parameters.AddWithValue("$m", r.Message);
                insert.Parameters.AddWithValue("$mf", (object?)r.Manifest ?? DBNull.Value);
                insert.Parameters.AddWithValue("$i", (object?)r.Identifier ?? DBNull.Value);
                insert.Parameters.AddWithValue("$w", (object?)r.Writer ?? DBNull.Value);
                await insert.ExecuteNonQueryAsync();
            }
        }

        async Task<List<string>> Read(long from, long to, long max)
        {
            var read = new List<string>();
            await store.ReplayAsync("mixed", from, to, max, row => read.Add(
                $"{row.PersistenceId} {row.SequenceNr} {row.Created} [{string.Join(",", row.Message.ToArray())}] {row.Manifest ?? "null"} " +
                $"{row.Identifier?.ToString() ?? "null"} {row.WriterUuid ?? "null"}"), CancellationToken.None);
            return read;
        }
        static string Expected((long Seq, long Created, byte[] Message, string? Manifest, int? Identifier, string? Writer, bool Deleted) r) =>
            $"mixed {r.Seq} {r.Created} [{string.Join(",", r.Message)}] {r.Manifest ?? "null"} {r.Identifier?.ToString() ?? "null"} {r.Writer ?? "null"}";

        Assert.Equal(rows.Where(r => !r.Deleted).Select(Expected), await Read(1, long.MaxValue, long.MaxValue));
        Assert.Equal(rows.Where(r => !r.Deleted && r.Seq is >= 3 and <= 7).Take(2).Select(Expected), await Read(3, 7, 2));
        Assert.Empty(await Read(9, long.MaxValue, long.MaxValue));
        Assert.Empty(await Read(1, long.MaxValue, 0));
    }

    [Theory]
    // (threshold in pages, the WAL's least and greatest size in pages after about 3,900 pages of writes)
    [InlineData(100_000, 3_000, int.MaxValue)] // nothing checkpointed: every page written is still in the WAL
    [InlineData(200, 0, 1_000)]                 // checkpointed every ~200 pages: the WAL starts over again and again
    public async Task The_writer_checkpoints_the_WAL_only_past_its_threshold(int pages, long atLeast, long atMost)
    {
        var dir = Directory.CreateTempSubdirectory("caas-journal-wal-");
        try
        {
            var file = Path.Combine(dir.FullName, "journal.db");
            var connectionString = $"Data Source={file}";
            await using (var store = new SqliteJournalStore(connectionString, pages))
            {
                await store.InitializeAsync(CancellationToken.None);
                // 120 commits of 50 writes of 1 KB, spread over 50 persistence ids (about 3,900 pages with the indexes).
                var payload = new byte[1024];
                for (var batch = 0; batch < 120; batch++)
                {
                    var writes = Enumerable.Range(0, 50).Select(i => new PendingWrite(
                        [new JournalRow($"wal-{i}", batch + 1, 1, payload, "", "m", 7, "w")])).ToList();
                    await store.WriteAsync(writes, CancellationToken.None);
                    Assert.All(writes, w => Assert.Null(w.Outcome.Result));
                }
                // Measured before the store closes its writer (the last connection to close checkpoints and removes the WAL).
                long pageSize;
                await using (var c = new SqliteConnection(connectionString))
                {
                    c.Open();
                    await using var cmd = c.CreateCommand();
                    cmd.CommandText = "PRAGMA page_size";
                    pageSize = (long)(await cmd.ExecuteScalarAsync())!;
                }
                var walPages = new FileInfo(file + "-wal").Length / pageSize;
                Assert.InRange(walPages, atLeast, atMost);
            }
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Rows_go_to_the_plugins_journal_table_with_csv_tags()
    {
        Persist(Start("t-1", "a"), "x");
        using var c = new SqliteConnection(Storage.JournalConnectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT tags, deleted, identifier IS NOT NULL, writer_uuid IS NOT NULL FROM journal WHERE persistence_id = 't-1'";
        using var r = cmd.ExecuteReader();
        Assert.True(r.Read());
        Assert.Equal(";a;", r.GetString(0));
        Assert.False(r.GetBoolean(1));
        Assert.True(r.GetBoolean(2));
        Assert.True(r.GetBoolean(3));
    }
}

/// <summary>
/// The same specs with a recovery's events read and handed over on one thread (<c>replay-pipelined-from = 0</c>; the
/// default pipelines a replay of 2,000 events or more), one at a time (the journal's old behaviour) and in bursts of seven
/// (so every long history ends in a partial burst, and a broken row falls inside one).
/// </summary>
public sealed class CaasJournalOnSqliteReplayingOneAtATime() : CaasJournalSpecs("sqlite",
    "akka.persistence.journal.caas.replay-burst = 1\nakka.persistence.journal.caas.replay-pipelined-from = 0");

public sealed class CaasJournalOnSqliteReplayingInBurstsOfSeven() : CaasJournalSpecs("sqlite",
    "akka.persistence.journal.caas.replay-burst = 7\nakka.persistence.journal.caas.replay-pipelined-from = 0");

/// <summary>
/// The same specs with every replay of 100 events or more read on one thread and deserialized on another
/// (<c>replay-pipelined-from</c>): the long histories cross many chunks and end in a partial one, and the broken row fails
/// the recovery from the deserializing thread.
/// </summary>
public sealed class CaasJournalOnSqlitePipelined() : CaasJournalSpecs("sqlite", "akka.persistence.journal.caas.replay-pipelined-from = 100");

public sealed class CaasJournalOnPostgresPipelined() : CaasJournalSpecs("postgres", "akka.persistence.journal.caas.replay-pipelined-from = 100");

public sealed class CaasJournalOnPostgres() : CaasJournalSpecs("postgres")
{
    [Fact]
    public async Task A_connection_dropped_mid_write_fails_only_the_writes_in_flight_and_the_next_writes_succeed()
    {
        var wait = TimeSpan.FromSeconds(30);
        var a = StartDiary(Sys, "drop-a", TestActor);
        var b = StartDiary(Sys, "drop-b", TestActor);
        a.Tell(new Diary.Write("a1"));
        ExpectMsg<Diary.Written>(wait);
        b.Tell(new Diary.Write("b1"));
        ExpectMsg<Diary.Written>(wait);

        // Hold the table so that the next writes wait inside the database, then end the sessions of the writers waiting.
        await using var holder = new NpgsqlConnection(Storage.JournalConnectionString);
        await holder.OpenAsync();
        await using var tx = await holder.BeginTransactionAsync();
        await using (var lockCmd = new NpgsqlCommand("LOCK TABLE journal IN EXCLUSIVE MODE", holder, tx)) await lockCmd.ExecuteNonQueryAsync();
        a.Tell(new Diary.Write("a2"));
        b.Tell(new Diary.Write("b2"));
        await using (var admin = new NpgsqlConnection(Storage.JournalConnectionString))
        {
            await admin.OpenAsync();
            var waiting = 0L;
            for (var tries = 0; tries < 300 && waiting < 1; tries++)
            {
                await using var cmd = new NpgsqlCommand(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'INSERT INTO journal%' " +
                    "AND wait_event_type = 'Lock'", admin);
                waiting = (long)(await cmd.ExecuteScalarAsync())!;
                if (waiting < 1) await Task.Delay(100);
            }
            Assert.True(waiting >= 1, "no journal write waited on the lock");
            // This test's database only: pg_stat_activity lists the whole server, and the other tests running beside this
            // one have journal writers of their own (an idle session shows its last query), whose writes this must not fail.
            await using var kill = new NpgsqlCommand(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() " +
                "AND query LIKE 'INSERT INTO journal%' AND pid <> pg_backend_pid()", admin);
            await kill.ExecuteNonQueryAsync();
        }
        await tx.RollbackAsync();

        // The writes in flight fail and their entities are told (and stop); a write that reached a writer only after
        // the kill may go through. Either way, what was acknowledged is stored and what failed is not.
        var failed = new List<string>();
        for (var i = 0; i < 2; i++)
            switch (ExpectMsg<object>(wait))
            {
                case Diary.Failed f: failed.Add(f.Text); break;
                case Diary.Written: break;
                case var other: Assert.Fail($"unexpected {other}"); break;
            }
        Assert.NotEmpty(failed);

        // The next writes go through on fresh connections.
        foreach (var text in failed)
        {
            var pid = text == "a2" ? "drop-a" : "drop-b";
            var again = StartDiary(Sys, pid, TestActor);
            again.Tell(new Diary.Write(text[0] + "3"));
            Assert.Equal(2, ExpectMsg<Diary.Written>(wait).SequenceNr);
        }

        var query = PersistenceQuery.Get(Sys).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);
        foreach (var (pid, letter) in new[] { ("drop-a", "a"), ("drop-b", "b") })
        {
            var events = (await query.CurrentEventsByPersistenceId(pid, 0, long.MaxValue).RunWith(Sink.Seq<EventEnvelope>(), Sys.Materializer()))
                .Select(e => (string)e.Event).ToList();
            Assert.Equal(failed.Contains(letter + "2") ? [letter + "1", letter + "3"] : [letter + "1", letter + "2"], events);
        }
    }
}
