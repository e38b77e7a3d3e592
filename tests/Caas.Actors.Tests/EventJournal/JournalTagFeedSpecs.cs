using Akka.Actor;
using Akka.Persistence;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.EventJournal;

namespace Caas.Actors.Tests;

/// <summary>
/// A <see cref="JournalTagFeed"/> on a real journal written by CAAS's journal (each database's feed runs these): it
/// answers what the plugin's read journal answers (same offsets, entities, sequence numbers, events and tags, deleted
/// rows left out), in ranges of any size, live, and a range read once is not read again for a second reader.
/// </summary>
public abstract class JournalTagFeedSpecs(string kind) : JournalSpec(kind, "caas.journal.writer = caas")
{
    protected static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private SqlReadJournal Query => PersistenceQuery.Get(Sys).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);

    /// <summary>A new feed on the test's journal.</summary>
    protected abstract JournalTagFeed Feed(int maxRows = 2000, int kept = 8000);

    protected IActorRef Start(string pid, params string[] tags) =>
        Sys.ActorOf(Props.Create(() => new CaasJournalSpecs.Diary(pid, tags, TestActor)));

    protected void Persist(IActorRef diary, string text)
    {
        diary.Tell(new CaasJournalSpecs.Diary.Write(text));
        ExpectMsg<CaasJournalSpecs.Diary.Written>(Wait);
    }

    protected static IEnumerable<string> Describe(IEnumerable<EventEnvelope> events) =>
        events.Select(e => $"{((Sequence)e.Offset).Value}|{e.PersistenceId}|{e.SequenceNr}|{e.Event}|{string.Join(",", e.Tags)}|{e.Timestamp}");

    protected async Task<List<EventEnvelope>> Plugin(string tag, long offset) =>
        [.. await Query.CurrentEventsByTag(tag, Offset.Sequence(offset)).RunWith(Sink.Seq<EventEnvelope>(), Sys.Materializer())];

    [Fact]
    public async Task It_answers_what_the_plugins_read_journal_answers_for_every_tag_offset_and_range_size()
    {
        var red = Start("red", "colour", "red");
        var blue = Start("blue", "colour");
        var plain = Start("plain");
        var grey = Start("grey", "colour-grey");
        for (var i = 1; i <= 6; i++)
        {
            Persist(red, $"r{i}");
            Persist(blue, $"b{i}");
            Persist(plain, $"p{i}");
            if (i % 3 == 0) Persist(grey, $"g{i}");
        }
        // Rows marked deleted are left out, as the plugin leaves them out.
        blue.Tell(new CaasJournalSpecs.Diary.Forget(2));
        ExpectMsg<DeleteMessagesSuccess>(Wait);

        var all = await Plugin("colour", 0);
        Assert.Equal(10, all.Count);
        Assert.DoesNotContain(all, e => (string)e.Event is "b1" or "b2");
        foreach (var maxRows in new[] { 1, 3, 2000 })
            foreach (var tag in new[] { "colour", "red", "colour-grey", "green", "re", "colou" })
                foreach (var offset in new long[] { 0, 5, 17, 100 })
                {
                    var expected = Describe(await Plugin(tag, offset)).ToList();
                    var got = Describe(await Feed(maxRows).CurrentEventsByTagAsync(tag, offset)).ToList();
                    Assert.True(expected.SequenceEqual(got), $"tag {tag} from {offset}, {maxRows} rows a read: [{string.Join("; ", got)}], the plugin: [{string.Join("; ", expected)}]");
                }
        Assert.Empty(await Feed().CurrentEventsByTagAsync("re", 0));
    }

    [Fact]
    public async Task The_live_stream_delivers_rows_written_after_it_started_in_order_and_a_second_reader_reads_nothing_again()
    {
        var red = Start("live-red", "live");
        var other = Start("live-other");
        for (var i = 1; i <= 5; i++) Persist(red, $"a{i}");
        var feed = Feed(maxRows: 4);
        var first = feed.EventsByTag("live", 0).Take(12).RunWith(Sink.Seq<EventEnvelope>(), Sys.Materializer());
        for (var i = 6; i <= 12; i++)
        {
            Persist(other, $"x{i}");
            Persist(red, $"a{i}");
        }
        var events = await first.WaitAsync(Wait);
        Assert.Equal(Enumerable.Range(1, 12).Select(i => $"a{i}"), events.Select(e => (string)e.Event));
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (long)i), events.Select(e => e.SequenceNr));
        var offsets = events.Select(e => ((Sequence)e.Offset).Value).ToList();
        Assert.Equal(offsets.Order(), offsets);

        // Everything up to the head has been read by the first reader: a second one, from the start or from any
        // offset inside, gets the same events from the kept ranges without reading the database.
        var reads = feed.Reads;
        var again = await feed.CurrentEventsByTagAsync("live", 0);
        Assert.Equal(Describe(events), Describe(again));
        var fromMiddle = await feed.CurrentEventsByTagAsync("live", offsets[4]);
        Assert.Equal(Describe(events.Skip(5)), Describe(fromMiddle));
        // Only the reads that find nothing past the head went to the database (one per call).
        Assert.Equal(reads + 2, feed.Reads);
        Assert.Equal(Describe(await Plugin("live", 0)), Describe(again));
    }

    [Fact]
    public async Task A_quiet_tag_keeps_one_range_while_other_tags_move_the_journal_on()
    {
        var busy = Start("busy", "busy");
        var quiet = Start("quiet", "quiet");
        Persist(quiet, "q1");
        var feed = Feed();
        for (var i = 1; i <= 30; i++)
        {
            Persist(busy, $"e{i}");
            // A projection of the quiet tag polls at every step: each poll finds nothing new up to a newer head.
            Assert.Equal(["q1"], (await feed.CurrentEventsByTagAsync("quiet", 0)).Select(e => (string)e.Event));
        }
        // The range with q1, then one empty range extended at every poll (not 30 of them).
        Assert.Equal(2, feed.KeptRanges("quiet"));
        Persist(quiet, "q2");
        Assert.Equal(["q1", "q2"], (await feed.CurrentEventsByTagAsync("quiet", 0)).Select(e => (string)e.Event));
        Assert.Equal(Describe(await Plugin("quiet", 0)), Describe(await feed.CurrentEventsByTagAsync("quiet", 0)));
    }

    [Fact]
    public async Task Kept_ranges_are_bounded_and_a_reader_behind_them_reads_the_database_again()
    {
        var diary = Start("bounded", "b");
        for (var i = 1; i <= 20; i++) Persist(diary, $"e{i}");
        var feed = Feed(maxRows: 5, kept: 5);
        Assert.Equal(20, (await feed.CurrentEventsByTagAsync("b", 0)).Count);
        var reads = feed.Reads;
        // Only the last range (e16..e20) is kept: from the start, the three before it are read again, then the one
        // past the head that finds nothing.
        Assert.Equal(Enumerable.Range(1, 20).Select(i => $"e{i}"), (await feed.CurrentEventsByTagAsync("b", 0)).Select(e => (string)e.Event));
        Assert.Equal(reads + 3 + 1, feed.Reads);
    }

    [Fact]
    public async Task A_tag_keeps_at_most_1024_ranges_however_few_events_they_hold()
    {
        var diary = Start("ranges", "r");
        const int total = 1_100;
        for (var from = 1; from <= total; from += 275)
        {
            diary.Tell(new CaasJournalSpecs.Diary.WriteMany(Enumerable.Range(from, 275).Select(i => $"e{i}").ToList()));
            ExpectMsg<CaasJournalSpecs.Diary.Written>(Wait);
        }
        // One event per read: 1,100 ranges of one event each, far under the bound on events kept.
        var feed = Feed(maxRows: 1, kept: 100_000);
        var all = await feed.CurrentEventsByTagAsync("r", 0);
        Assert.Equal(Enumerable.Range(1, total).Select(i => $"e{i}"), all.Select(e => (string)e.Event));
        Assert.Equal(1024, feed.KeptRanges("r"));
        // The newest are kept: after the 76th event nothing is read again but the empty range at the head; from the
        // start the 76 evicted ranges are read again (each evicted again at once, being the oldest).
        var reads = feed.Reads;
        Assert.Equal(total - 76, (await feed.CurrentEventsByTagAsync("r", ((Sequence)all[75].Offset).Value)).Count);
        Assert.Equal(reads + 1, feed.Reads);
        Assert.Equal(total, (await feed.CurrentEventsByTagAsync("r", 0)).Count);
        Assert.Equal(reads + 1 + 76 + 1, feed.Reads);
    }
}
