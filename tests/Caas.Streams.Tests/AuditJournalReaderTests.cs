using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Streams.Audit;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;

namespace Caas.Streams.Tests;

/// <summary>
/// The audit replay's own read of the journal, on both stores: a tenant's events by tag and a conversation's by
/// persistence id, across page boundaries, in order, without another tenant's (a LIKE wildcard in a tenant id matches
/// nothing else), without rows marked deleted, without rows written after the replay started, and stopping early.
/// </summary>
public sealed class AuditJournalReaderTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static async Task PostAsync(IActorRef actor, string tenant, string conversation, int from, int count)
    {
        // Concurrent asks: the entity persists what arrives during a write together, so the fill is quick.
        var replies = await Task.WhenAll(Enumerable.Range(from, count).Select(i =>
            actor.Ask<object>(new PostMessage(tenant, conversation, "alice", $"m-{i}", new MessageContent("text", $"message {i}"), TimeSpan.FromHours(1)), Timeout)));
        Assert.All(replies, r => Assert.IsNotType<Rejection>(r));
    }

    private static async Task<List<AuditJournalReader.Row>> AllAsync(IAsyncEnumerable<IReadOnlyList<AuditJournalReader.Row>> pages, List<int>? sizes = null)
    {
        var rows = new List<AuditJournalReader.Row>();
        await foreach (var page in pages)
        {
            sizes?.Add(page.Count);
            rows.AddRange(page);
        }
        return rows;
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task A_tenant_and_a_conversation_read_back_in_order_across_pages_and_nothing_else(string kind)
    {
        var storage = TestDatabases.Storage(kind);
        using var system = ActorSystem.Create("audit-reader", CaasConfig.Compose(storage, "akka.actor.provider = local\nakka.loglevel = WARNING"));
        // "t_1" as a LIKE pattern would match "tx1" too: the reader escapes it.
        var (tenant, other) = ("t_1", "tx1");
        var actor = system.ActorOf(ConversationActor.PropsFor(Ids.EntityId(tenant, "c-1"), EntitySettings.Default));
        var neighbour = system.ActorOf(ConversationActor.PropsFor(Ids.EntityId(other, "c-1"), EntitySettings.Default));
        await actor.Ask<object>(new CreateConversation(tenant, "c-1", "alice", ConversationTypes.Group, "audited", []), Timeout);
        await neighbour.Ask<object>(new CreateConversation(other, "c-1", "alice", ConversationTypes.Group, "neighbour", []), Timeout);
        var posts = AuditJournalReader.PageSize * 2 + 150;
        await PostAsync(actor, tenant, "c-1", 0, posts / 2);
        await PostAsync(neighbour, other, "c-1", 0, 5);
        await PostAsync(actor, tenant, "c-1", posts / 2, posts - posts / 2);

        var reader = new AuditJournalReader(storage, system);
        var pid = AuditReplay.ConversationPersistenceId(tenant, "c-1");
        var sizes = new List<int>();
        var byTag = await AllAsync(reader.ByTagAsync(Ids.TenantTag(tenant)), sizes);
        Assert.Equal(posts + 1, byTag.Count);
        // A page is a window of the journal's ordering: never more than a page of rows, never empty.
        Assert.InRange(sizes.Count, 3, 4);
        Assert.All(sizes, n => Assert.InRange(n, 1, AuditJournalReader.PageSize));
        Assert.All(byTag, r => Assert.Equal(pid, r.PersistenceId));
        Assert.Equal(Enumerable.Range(1, posts + 1).Select(i => (long)i), byTag.Select(r => r.Seq));
        Assert.True(byTag.Zip(byTag.Skip(1)).All(p => p.Item1.Ordering < p.Item2.Ordering));
        Assert.IsType<ConversationCreated>(byTag[0].Event);
        Assert.Equal(posts, byTag.Select(r => r.Event).OfType<MessagePosted>().Select(p => p.MessageId).Distinct().Count());

        var byPid = await AllAsync(reader.ByPersistenceIdAsync(pid));
        Assert.Equal(byTag.Select(r => (r.Seq, r.Ordering)), byPid.Select(r => (r.Seq, r.Ordering)));
        Assert.Equal(6, (await AllAsync(reader.ByTagAsync(Ids.TenantTag(other)))).Count);

        // Rows marked deleted (as the plugin marks them before removing) are not replayed.
        await using (var c = await JournalDb.OpenAsync(storage))
        await using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = $"UPDATE journal SET deleted = {(storage.IsPostgres ? "true" : "1")} WHERE persistence_id = @p AND sequence_number <= 10";
            JournalDb.Parameter(cmd, "@p", pid);
            Assert.Equal(10, await cmd.ExecuteNonQueryAsync());
        }
        Assert.Equal(Enumerable.Range(11, posts - 9).Select(i => (long)i), (await AllAsync(reader.ByTagAsync(Ids.TenantTag(tenant)))).Select(r => r.Seq));
        Assert.Equal(posts - 9, (await AllAsync(reader.ByPersistenceIdAsync(pid))).Count);

        // What is written after a tenant's replay starts is not part of it; a consumer may stop after any page.
        await using (var pages = reader.ByTagAsync(Ids.TenantTag(tenant)).GetAsyncEnumerator())
        {
            Assert.True(await pages.MoveNextAsync());
            await PostAsync(actor, tenant, "c-1", posts, 20);
            var rest = pages.Current.Count;
            while (await pages.MoveNextAsync()) rest += pages.Current.Count;
            Assert.Equal(posts - 9, rest);
        }
        await using (var pages = reader.ByTagAsync(Ids.TenantTag(tenant)).GetAsyncEnumerator())
        {
            Assert.True(await pages.MoveNextAsync());
            Assert.InRange(pages.Current.Count, 1, AuditJournalReader.PageSize);
        }
        Assert.Equal(posts + 11, (await AllAsync(reader.ByTagAsync(Ids.TenantTag(tenant)))).Count);
    }
}
