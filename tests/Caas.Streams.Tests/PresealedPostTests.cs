using System.Text;
using System.Text.Json;
using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Actors.Privacy;
using Caas.Streams.Audit;
using Caas.Streams.Operational;
using Caas.Streams.Privacy;
using Caas.Tests.Shared;
using Microsoft.Data.Sqlite;

namespace Caas.Streams.Tests;

/// <summary>
/// A post (or a recorded enrichment) whose content arrives sealed is stored with exactly that ciphertext: the entity
/// calls no vault, and the stored event has the same form, chain and readability as one the entity sealed itself.
/// </summary>
public sealed class PresealedPostTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private const string Tenant = "t-pre";
    private readonly StorageOptions _storage = StorageOptions.Sqlite(TestDatabases.NewSqliteDirectory());
    private OperationalStore _store = null!;
    private readonly MasterKey _master = MasterKey.Generate();
    private ContentVault _vault = null!;

    public async Task InitializeAsync()
    {
        _store = new OperationalStore(_storage);
        await _store.MigrateAsync();
        _vault = new ContentVault(_store, _master);
    }

    public async Task DisposeAsync() => await _store.DisposeAsync();

    /// <summary>The real vault, counting the synchronous seals (the entity's) and the opens.</summary>
    private sealed class CountingVault(IContentVault inner) : IContentVault
    {
        public int Seals;

        public SealedContent Seal(string tenantId, string userId, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
        {
            Interlocked.Increment(ref Seals);
            return inner.Seal(tenantId, userId, plaintext, associatedData);
        }

        public ValueTask<SealedContent> SealAsync(string tenantId, string userId, ReadOnlyMemory<byte> plaintext, ReadOnlyMemory<byte> associatedData,
            CancellationToken ct = default) =>
            inner.SealAsync(tenantId, userId, plaintext, associatedData, ct);

        public byte[]? Open(string tenantId, SealedContent sealedContent, ReadOnlySpan<byte> associatedData) =>
            inner.Open(tenantId, sealedContent, associatedData);
    }

    private ActorSystem System(IContentVault vault, string name) =>
        ActorSystem.Create(name, BootstrapSetup.Create()
            .WithConfig(CaasConfig.Compose(_storage, "akka.actor.provider = local\nakka.loglevel = WARNING"))
            .And(new ContentVaultSetup(vault)));

    private async Task<List<JsonElement>> StoredAsync()
    {
        await using var c = new SqliteConnection(_storage.JournalConnectionString);
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT message FROM journal ORDER BY ordering";
        var list = new List<JsonElement>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync())
        {
            HashChain.TryOpen((byte[])r.GetValue(0), out var open, out _);
            list.Add(JsonDocument.Parse(open).RootElement.Clone());
        }
        return list;
    }

    private static async Task<List<IConversationEvent>> EventsAsync(ActorSystem system, string pid) =>
        [.. (await PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier)
                .CurrentEventsByPersistenceId(pid, 0, long.MaxValue)
                .RunWith(Sink.Seq<EventEnvelope>(), system.Materializer()))
            .Select(e => (IConversationEvent)e.Event)];

    [Fact]
    public async Task A_presealed_post_is_stored_with_exactly_its_ciphertext_and_the_entity_calls_no_seal()
    {
        var counting = new CountingVault(_vault);
        var entity = Ids.EntityId(Tenant, "c-1");
        var pid = ConversationActor.PersistenceIdOf(entity);
        var horizon = TimeSpan.FromHours(1);
        var enrichment = new MessageEnrichment([], ["language"]);
        var content = new MessageContent("text", "call +1 415 555 0100");
        var presealed = await ContentSealing.SealPostAsync(_vault, Tenant, "c-1", "alice", "m-1", content, enrichment);
        var elsewhere = await ContentSealing.SealPostAsync(_vault, Tenant, "c-2", "alice", "m-4", content, null);
        var presealedEnrichment = await ContentSealing.SealEnrichmentAsync(_vault, Tenant, "c-1", "alice", "m-3",
            new MessageEnrichment([], ["sentiment"]) { Deferred = true });

        using (var system = System(counting, "presealed"))
        {
            var actor = system.ActorOf(ConversationActor.PropsFor(entity, EntitySettings.Default));
            await actor.Ask<object>(new CreateConversation(Tenant, "c-1", "alice", ConversationTypes.Group, null, [new InitialMember("bob", Role.Member)]), Timeout);

            var ack = Assert.IsType<MessageAck>(await actor.Ask<object>(
                new PostMessage(Tenant, "c-1", "alice", "m-1", content, horizon, enrichment) { Sealed = presealed }, Timeout));
            Assert.Equal(content, ack.Content);
            Assert.Equal(0, counting.Seals);

            // Unsealed (the fallback): the entity seals it, as before.
            Assert.IsType<MessageAck>(await actor.Ask<object>(new PostMessage(Tenant, "c-1", "alice", "m-2", new MessageContent("text", "plain"), horizon), Timeout));
            Assert.Equal(1, counting.Seals);

            // A deferred message's enrichment, recorded presealed: no seal either.
            Assert.IsType<MessageAck>(await actor.Ask<object>(new PostMessage(Tenant, "c-1", "alice", "m-3", new MessageContent("text", "later"), horizon,
                MessageEnrichment.DeferredForLater) { Sealed = await ContentSealing.SealPostAsync(_vault, Tenant, "c-1", "alice", "m-3",
                new MessageContent("text", "later"), MessageEnrichment.DeferredForLater) }, Timeout));
            Assert.IsType<Done>(await actor.Ask<object>(new RecordEnrichment(Tenant, "c-1", "alice", 3, "m-3",
                new MessageEnrichment([], ["sentiment"]) { Deferred = true }) { Sealed = presealedEnrichment }, Timeout));
            Assert.Equal(1, counting.Seals);

            // Sealed for another conversation: not trusted, the entity seals it itself.
            Assert.IsType<MessageAck>(await actor.Ask<object>(new PostMessage(Tenant, "c-1", "alice", "m-4", content, horizon) { Sealed = elsewhere }, Timeout));
            Assert.Equal(2, counting.Seals);
            await system.Terminate();
        }

        // Stored: exactly the presealed ciphertext, no plaintext, the same form as the one the entity sealed.
        var stored = await StoredAsync();
        var post = stored[1].GetProperty("sealed");
        Assert.Equal(presealed.KeyId, post.GetProperty("key_id").GetString());
        Assert.Equal(Convert.ToBase64String(presealed.Data), post.GetProperty("data").GetString());
        Assert.Equal(SealedContent.Current, post.GetProperty("v").GetInt32());
        Assert.Equal("c-1", post.GetProperty("conversation_id").GetString());
        Assert.DoesNotContain("415 555 0100", stored[1].GetRawText());
        Assert.Equal(Names(stored[2]), Names(stored[1]));
        Assert.Equal(Names(stored[2].GetProperty("sealed")), Names(post));
        Assert.Equal(Convert.ToBase64String(presealedEnrichment.Data), stored[4].GetProperty("sealed").GetProperty("data").GetString());
        Assert.NotEqual(Convert.ToBase64String(elsewhere.Data), stored[5].GetProperty("sealed").GetProperty("data").GetString());
        Assert.Equal("c-1", stored[5].GetProperty("sealed").GetProperty("conversation_id").GetString());

        // The chain holds over the stored bytes; a fresh node recovers and reads them, opened only on use.
        Assert.True((await new JournalVerifier(_storage).VerifyAsync()).Intact);
        var fresh = new CountingVault(new ContentVault(_store, _master));
        using (var system = System(fresh, "reader"))
        {
            var events = await EventsAsync(system, pid);
            var posted = events.OfType<MessagePosted>().ToList();
            Assert.Equal(presealed, posted[0].Sealed);
            Assert.Equal(content, posted[0].Content);
            Assert.Equal(["language"], posted[0].Enrichment!.Degraded.ToArray());
            Assert.Equal("plain", posted[1].Content.Text);
            Assert.Equal(content, posted[3].Content);
            Assert.Equal(["sentiment"], events.OfType<MessageEnriched>().Single().Enrichment!.Degraded.ToArray());
            Assert.False(events.OfType<MessageEnriched>().Single().Enrichment!.Deferred);

            var actor = system.ActorOf(ConversationActor.PropsFor(entity, EntitySettings.Default));
            var again = Assert.IsType<MessageAck>(await actor.Ask<object>(
                new PostMessage(Tenant, "c-1", "alice", "m-5", new MessageContent("text", "after recovery"), horizon), Timeout));
            Assert.Equal(5, again.Seq);
            await system.Terminate();
        }
        Assert.True((await new JournalVerifier(_storage).VerifyAsync()).Intact);
    }

    private static string[] Names(JsonElement e) => [.. e.EnumerateObject().Select(p => p.Name).Order()];
}
