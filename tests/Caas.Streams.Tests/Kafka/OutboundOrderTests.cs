using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Streams.Kafka;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;
using Xunit;

namespace Caas.Streams.Tests.Kafka;

/// <summary>
/// An outbound projection's marks on both stores: a batch with a hole gets the passed-by events in front, in order; a
/// replayed batch publishes nothing again; marks and offset are saved together; a projection that was already running
/// when the marks appeared judges only the entities it has published since.
/// </summary>
public sealed class OutboundOrderTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;

    private static EventEnvelope Envelope(string pid, long offset, long seqNr) =>
        new(Offset.Sequence(offset), pid, seqNr, new MessagePosted(new EventMeta("t-order", "alice", Now), seqNr, $"m-{seqNr}", new MessageContent("text", "x")),
            Now.ToUnixTimeMilliseconds(), []);

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Holes_are_filled_in_order_repeats_are_dropped_and_marks_are_saved_with_the_offset(string kind)
    {
        var storage = TestDatabases.Storage(kind);
        await using var store = new ReadModelStore(storage);
        await store.EnsureSchemaAsync();
        // The journal as the persistence-id reader sees it: every event of both entities, committed.
        var journal = new List<EventEnvelope>
        {
            Envelope("conversation|a", 1, 1), Envelope("conversation|b", 2, 1), Envelope("conversation|a", 3, 2),
            Envelope("conversation|a", 4, 3), Envelope("conversation|b", 5, 2), Envelope("conversation|a", 6, 4),
        };
        var reads = new List<(string, long, long)>();
        var order = new OutboundOrder(store, "test-out", (pid, from, to, _) =>
        {
            reads.Add((pid, from, to));
            return Task.FromResult<IReadOnlyList<EventEnvelope>>([.. journal.Where(e => e.PersistenceId == pid && e.SequenceNr >= from && e.SequenceNr <= to)]);
        });

        // The tag stream passed a's seq 2 and 3 by (committed late): they come from the journal in front of seq 4.
        var plan = await order.PlanAsync([journal[0], journal[1], journal[4], journal[5]]);
        Assert.Equal(["a1", "b1", "b2", "a2", "a3", "a4"], plan.Events.Select(e => $"{e.PersistenceId[^1]}{e.SequenceNr}"));
        Assert.Equal([("conversation|a", 2L, 3L)], reads);
        Assert.Equal(new Hole("conversation|a", 2, 3), Assert.Single(plan.Holes));
        await order.CommitAsync(plan, 6);
        var (marks, trackedSince) = await order.LoadAsync(["conversation|a", "conversation|b", "conversation|c"]);
        Assert.Equal(0, trackedSince);
        Assert.Equal(4, marks["conversation|a"]);
        Assert.Equal(2, marks["conversation|b"]);
        Assert.False(marks.ContainsKey("conversation|c"));
        Assert.Equal(6, await new ProjectionOffsetStore(store).LoadAsync("test-out"));

        // The same batch again (a replay): nothing is published twice, nothing read.
        reads.Clear();
        var replay = await order.PlanAsync([journal[0], journal[1], journal[4], journal[5]]);
        Assert.Empty(replay.Events);
        Assert.Empty(reads);

        // A projection that already had an offset when it first kept marks: an entity it has not published since is not
        // judged (its first event sets the mark), one it has is.
        var upgraded = new OutboundOrder(store, "test-upgraded", (_, _, _, _) => throw new InvalidOperationException("nothing to read"));
        await new ProjectionOffsetStore(store).SaveAsync("test-upgraded", 3);
        var first = await upgraded.PlanAsync([Envelope("conversation|a", 4, 3)]);
        Assert.Equal(3, first.TrackedSince);
        Assert.Equal([3L], first.Events.Select(e => e.SequenceNr));
        await upgraded.CommitAsync(first, 4);
        Assert.Equal(3, (await upgraded.LoadAsync(["conversation|a"])).TrackedSince);
    }
}
