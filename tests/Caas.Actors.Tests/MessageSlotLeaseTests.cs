using Akka.Actor;
using Akka.TestKit;
using Caas.Actors.Common;
using Caas.Actors.Sessions;

namespace Caas.Actors.Tests;

/// <summary>The slot book without an actor: leased slots count as taken, settles move them into the windows.</summary>
public sealed class MessageSlotsTests
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan ValidFor = TimeSpan.FromSeconds(5);

    private static LeaseMessageSlots Settle(string holder, string? leaseId, long[] spentAgo, int pending, int wanted = 0) =>
        new("t1", "alice", holder, leaseId, [.. spentAgo], pending, wanted, 60, 1_000);

    [Fact]
    public void Leased_slots_count_as_taken_until_settled_and_spent_ones_leave_the_minute_after_they_were_spent()
    {
        var book = new MessageSlots();
        book.Settle(Settle("a", null, [], 0), T0, ValidFor);
        var lease = book.Grant("a", 15, T0, ValidFor);
        Assert.Equal(45, book.Free(60, 1_000, T0));

        // 10 spent 30 s before the settle, 2 on their way, 3 back
        book.Settle(Settle("a", lease.Id, Enumerable.Repeat(TimeSpan.FromSeconds(30).Ticks, 10).ToArray(), 2), T0.AddSeconds(40), ValidFor);
        Assert.Equal(48, book.Free(60, 1_000, T0.AddSeconds(40)));
        // the ten leave the minute 60 s after they were spent (at 10 s), not after the settle
        Assert.Equal(48, book.Free(60, 1_000, T0.AddSeconds(69)));
        Assert.Equal(58, book.Free(60, 1_000, T0.AddSeconds(71)));
        // the hour still counts them
        Assert.Equal(988, book.Free(10_000, 1_000, T0.AddSeconds(71)));
    }

    [Fact]
    public void Retry_after_counts_slots_still_leased_as_staying()
    {
        var book = new MessageSlots();
        for (var i = 0; i < 50; i++) book.Record(T0.AddSeconds(i).UtcTicks);
        book.Settle(Settle("a", null, [], 0), T0.AddSeconds(50), ValidFor);
        book.Grant("a", 10, T0.AddSeconds(50), ValidFor);
        Assert.Equal(0, book.Free(60, 1_000, T0.AddSeconds(50)));
        // one more fits once the first spent slot (at 0 s) leaves: 10 s from 50 s
        Assert.Equal(10, book.Refusal(60, 1_000, T0.AddSeconds(50)).RetryAfterSeconds);
        // only leased slots in the way: they settle within a lease
        var leased = new MessageSlots();
        leased.Settle(Settle("a", null, [], 0), T0, ValidFor);
        leased.Grant("a", 60, T0, ValidFor);
        Assert.Equal(1, leased.Refusal(60, 1_000, T0).RetryAfterSeconds);
    }

    [Fact]
    public void A_forfeited_lease_counts_as_spent_at_its_end_and_its_late_settle_is_not_carried()
    {
        var book = new MessageSlots();
        book.Settle(Settle("a", null, [], 0), T0, ValidFor);
        var lease = book.Grant("a", 15, T0, ValidFor);
        book.Forfeit(lease);
        Assert.Null(book.LeaseOf("a"));
        Assert.Equal(45, book.Free(60, 1_000, T0.AddSeconds(30)));
        // counted until a minute after the lease's end (5 s), not a minute after it was granted
        Assert.Equal(45, book.Free(60, 1_000, T0.AddSeconds(64)));
        Assert.Equal(60, book.Free(60, 1_000, T0.AddSeconds(66)));

        var late = new MessageSlots();
        late.Settle(Settle("a", null, [], 0), T0, ValidFor);
        var gone = late.Grant("a", 15, T0, ValidFor);
        late.Forfeit(gone);
        Assert.False(late.Settle(Settle("a", gone.Id, Enumerable.Repeat(0L, 15).ToArray(), 0), T0.AddSeconds(1), ValidFor));
        // the report was ignored: still 15 taken, not 30
        Assert.Equal(45, late.Free(60, 1_000, T0.AddSeconds(1)));
    }

    [Fact]
    public void Slots_recorded_at_the_same_time_stay_apart_and_are_released_one_at_a_time()
    {
        var book = new MessageSlots();
        var ticks = Enumerable.Range(0, 3).Select(_ => book.Record(T0.UtcTicks)).ToList();
        Assert.Equal(3, ticks.Distinct().Count());
        book.Release(ticks[1]);
        Assert.Equal(58, book.Free(60, 1_000, T0));
        book.Release(42);
        Assert.Equal(58, book.Free(60, 1_000, T0));
    }
}

/// <summary>The session entity leasing slots to two holders (probes standing in for two pipelines) on a real journal.</summary>
public abstract class MessageSlotLeaseSpecs(string kind) : JournalSpec(kind, "caas.rate-leases.recall-timeout = 300ms")
{
    private const string Tenant = "t1";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    private IActorRef Start(string user) => Sys.ActorOf(UserSessionActor.PropsFor(Ids.EntityId(Tenant, user), Settings()));

    private static LeaseMessageSlots Lease(string user, TestProbe holder, string? leaseId, int spent, int wanted, int pending = 0) =>
        new(Tenant, user, holder.Ref.Path.ToString(), leaseId, [.. Enumerable.Repeat(0L, spent)], pending, wanted, 60, 1_000);

    private static T Ask<T>(TestProbe holder, IActorRef actor, object command)
    {
        holder.Send(actor, command);
        return holder.ExpectMsg<T>(Wait);
    }

    [Fact]
    public void Slots_leased_to_another_holder_are_recalled_before_anyone_is_refused()
    {
        const string user = "u-two";
        var actor = Start(user);
        var (a, b) = (CreateTestProbe(), CreateTestProbe());

        // A holds a lease of 15 (a quarter of the rate) it has not spent
        var leaseA = Ask<MessageSlotsLeased>(a, actor, Lease(user, a, null, 0, 64));
        Assert.Equal(15, leaseA.Granted);
        // B spends three blocks of 15
        string? leaseB = null;
        var spent = 0;
        for (var i = 0; i < 3; i++)
        {
            var got = Ask<MessageSlotsLeased>(b, actor, Lease(user, b, leaseB, spent, 64));
            Assert.Equal(15, got.Granted);
            (leaseB, spent) = (got.LeaseId, got.Granted);
        }
        // B wants more: only A's lease has any, so A is recalled before B hears anything
        b.Send(actor, Lease(user, b, leaseB, spent, 64));
        a.ExpectMsg<RecallMessageSlots>(Wait);
        // A spent 5 of its 15: the other 10 go to B
        var settledA = Ask<MessageSlotsLeased>(a, actor, Lease(user, a, leaseA.LeaseId, 5, 0));
        Assert.Equal(0, settledA.Granted);
        var last = b.ExpectMsg<MessageSlotsLeased>(Wait);
        Assert.Equal(10, last.Granted);

        // all 60 spent: refused, and A (holding nothing) is not asked
        var refused = Ask<Rejection>(b, actor, Lease(user, b, last.LeaseId, 10, 64));
        Assert.Equal(ErrorCodes.RateLimited, refused.Code);
        Assert.InRange(refused.RetryAfterSeconds!.Value, 1, 60);
        a.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        // a single-message acquire is refused too
        Assert.Equal(ErrorCodes.RateLimited, Ask<Rejection>(b, actor, new AcquireMessageSlot(Tenant, user, 60)).Code);
    }

    [Fact]
    public void A_holder_that_does_not_answer_a_recall_forfeits_its_lease_and_its_late_settle_is_not_carried()
    {
        const string user = "u-silent";
        var actor = Start(user);
        var (a, b) = (CreateTestProbe(), CreateTestProbe());
        var leaseA = Ask<MessageSlotsLeased>(a, actor, Lease(user, a, null, 0, 64));
        string? leaseB = null;
        var spent = 0;
        for (var i = 0; i < 3; i++)
        {
            var got = Ask<MessageSlotsLeased>(b, actor, Lease(user, b, leaseB, spent, 64));
            (leaseB, spent) = (got.LeaseId, got.Granted);
        }
        b.Send(actor, Lease(user, b, leaseB, spent, 64));
        a.ExpectMsg<RecallMessageSlots>(Wait);
        // A stays silent: after the recall timeout its 15 count as spent at the lease's end, and B is refused
        var refused = b.ExpectMsg<Rejection>(Wait);
        Assert.Equal(ErrorCodes.RateLimited, refused.Code);
        Assert.InRange(refused.RetryAfterSeconds!.Value, 1, 70);

        // A comes back: its report is already counted, so its pending slots are not carried over
        var late = Ask<MessageSlotsLeased>(a, actor, Lease(user, a, leaseA.LeaseId, 10, 0, pending: 5));
        Assert.False(late.Carried);
        Assert.Equal(ErrorCodes.RateLimited, Ask<Rejection>(b, actor, new AcquireMessageSlot(Tenant, user, 60)).Code);
    }
}

public sealed class MessageSlotLeasesOnSqlite() : MessageSlotLeaseSpecs("sqlite");

public sealed class MessageSlotLeasesOnPostgres() : MessageSlotLeaseSpecs("postgres");
