using Caas.Streams.Operational;
using Caas.Streams.Pipeline;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;

namespace Caas.Streams.Tests.Pipeline;

/// <summary>Claims and records in batches against real databases: one commit per batch, lookups only for taken ids.</summary>
public sealed class MessageIdClaimsBatchTests
{
    private static async Task<OperationalStore> StoreAsync(string kind)
    {
        var storage = TestDatabases.Storage(kind);
        // The purge looks at the read model's messages too.
        await using (var readModel = new ReadModelStore(storage)) await readModel.EnsureSchemaAsync();
        var store = new OperationalStore(storage);
        await store.MigrateAsync();
        return store;
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Many_fresh_claims_are_one_commit_and_need_no_lookup(string kind)
    {
        await using var store = await StoreAsync(kind);
        var claims = new MessageIdClaims(store);
        var requests = Enumerable.Range(0, 200).Select(n => new ClaimRequest("t", $"m{n}", $"c{n % 7}")).ToList();

        var answers = await claims.ClaimManyAsync(requests);

        Assert.Equal(1, claims.Commits);
        Assert.Equal(0, claims.Lookups);
        Assert.All(answers, a => Assert.True(a.Fresh));
        Assert.Equal(requests.Select(r => r.ConversationId), answers.Select(a => a.Claim!.ConversationId));
        Assert.Equal(new MessageIdClaim("c3", null, null, null), await claims.FindAsync("t", "m3"));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Taken_ids_in_a_batch_are_answered_with_their_claims_by_one_lookup(string kind)
    {
        await using var store = await StoreAsync(kind);
        var claims = new MessageIdClaims(store);
        await claims.ClaimManyAsync([new ClaimRequest("t", "old", "c1"), new ClaimRequest("t", "elsewhere", "c2")]);
        Assert.True((await claims.RecordManyAsync([new ClaimRecord("t", "stored", "c1", 4, "alice", DateTimeOffset.FromUnixTimeMilliseconds(1_000))]))[0]);

        var answers = await claims.ClaimManyAsync([
            new ClaimRequest("t", "new", "c1"),
            new ClaimRequest("t", "old", "c1"),
            new ClaimRequest("t", "elsewhere", "c1"),
            new ClaimRequest("t", "stored", "c1"),
            new ClaimRequest("t", "new", "c3"),
            new ClaimRequest("other", "old", "c9"),
        ]);

        // The two batches of claims and the one of records; the ids taken are looked up (and renewed) once.
        Assert.Equal(3, claims.Commits);
        Assert.Equal(1, claims.Lookups);
        Assert.Equal((new MessageIdClaim("c1", null, null, null), true), answers[0]);
        Assert.Equal((new MessageIdClaim("c1", null, null, null), false), answers[1]);
        Assert.Equal((new MessageIdClaim("c2", null, null, null), false), answers[2]);
        Assert.Equal((new MessageIdClaim("c1", 4, "alice", DateTimeOffset.FromUnixTimeMilliseconds(1_000)), false), answers[3]);
        // The same id twice in one batch: the first request took it, the second sees that claim.
        Assert.Equal((new MessageIdClaim("c1", null, null, null), false), answers[4]);
        Assert.Equal((new MessageIdClaim("c9", null, null, null), true), answers[5]);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task A_retried_pending_claim_is_renewed_so_the_purge_keeps_it(string kind)
    {
        await using var store = await StoreAsync(kind);
        var early = new MessageIdClaims(store, new ShiftedClock(TimeSpan.FromDays(-2)));
        await early.ClaimManyAsync([new ClaimRequest("t", "retried", "c1"), new ClaimRequest("t", "abandoned", "c1")]);

        var now = new MessageIdClaims(store);
        Assert.False((await now.ClaimManyAsync([new ClaimRequest("t", "retried", "c1")]))[0].Fresh);

        Assert.Equal(1, await now.PurgeAsync("t", TimeSpan.FromDays(1)));
        Assert.NotNull(await now.FindAsync("t", "retried"));
        Assert.Null(await now.FindAsync("t", "abandoned"));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Many_records_are_one_commit_and_another_conversations_id_is_not_taken_over(string kind)
    {
        await using var store = await StoreAsync(kind);
        var claims = new MessageIdClaims(store);
        await claims.ClaimManyAsync([new ClaimRequest("t", "mine", "c1"), new ClaimRequest("t", "theirs", "c2")]);
        var at = DateTimeOffset.FromUnixTimeMilliseconds(5_000);

        var recorded = await claims.RecordManyAsync([
            new ClaimRecord("t", "mine", "c1", 1, "alice", at),
            new ClaimRecord("t", "theirs", "c1", 2, "alice", at),
            new ClaimRecord("t", "unclaimed", "c1", 3, "alice", at),
            new ClaimRecord("t", "mine", "c1", 1, "alice", at),
        ]);

        Assert.Equal(2, claims.Commits);
        Assert.Equal([true, false, true, true], recorded);
        Assert.Equal(new MessageIdClaim("c1", 1, "alice", at), await claims.FindAsync("t", "mine"));
        Assert.Equal(new MessageIdClaim("c2", null, null, null), await claims.FindAsync("t", "theirs"));
        Assert.Equal(new MessageIdClaim("c1", 3, "alice", at), await claims.FindAsync("t", "unclaimed"));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Concurrent_batches_over_the_same_ids_give_each_id_to_exactly_one_request(string kind)
    {
        await using var store = await StoreAsync(kind);
        var claims = new MessageIdClaims(store);
        var ids = Enumerable.Range(0, 100).Select(n => $"m{n}").ToList();

        // Eight batches, each over all ids in its own order (a naive insert order would deadlock on PostgreSQL).
        var batches = await Task.WhenAll(Enumerable.Range(0, 8).Select(b => Task.Run(() => claims.ClaimManyAsync(
            ids.OrderBy(id => (id.GetHashCode() * (b + 1)) ^ b).Select(id => new ClaimRequest("t", id, $"c{b}")).ToList()))));

        var freshPerId = ids.ToDictionary(id => id, _ => 0);
        for (var b = 0; b < batches.Length; b++)
        {
            var order = ids.OrderBy(id => (id.GetHashCode() * (b + 1)) ^ b).ToList();
            for (var i = 0; i < order.Count; i++)
            {
                var (claim, fresh) = batches[b][i];
                if (fresh) freshPerId[order[i]]++;
                Assert.NotNull(claim);
                Assert.Equal(fresh, claim!.ConversationId == $"c{b}");
            }
        }
        Assert.All(freshPerId.Values, count => Assert.Equal(1, count));
    }
}
