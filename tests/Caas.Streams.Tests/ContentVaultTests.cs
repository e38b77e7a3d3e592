using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Actors.Privacy;
using Caas.Streams.Kafka;
using Caas.Streams.Privacy;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;

namespace Caas.Streams.Tests;

/// <summary>The content vault on a real SQLite file: AES-GCM under per-user keys wrapped by the master key.</summary>
public sealed class ContentVaultTests : IAsyncLifetime
{
    private readonly StorageOptions _storage = StorageOptions.Sqlite(TestDatabases.NewSqliteDirectory());
    private ReadModelStore _store = null!;
    private readonly MasterKey _master = MasterKey.Generate();

    public async Task InitializeAsync()
    {
        _store = new ReadModelStore(_storage);
        await _store.EnsureSchemaAsync();
    }

    public async Task DisposeAsync() => await _store.DisposeAsync();

    private static byte[] Aad(string message) => ContentSealing.Aad("acme", "alice", message);

    [Fact]
    public void Content_round_trips_under_the_users_own_key_and_is_bound_to_its_message()
    {
        var vault = new ContentVault(_store, _master);
        var plain = Encoding.UTF8.GetBytes("héllo 👋 +1 415 555 0100");
        var sealedAlice = vault.Seal("acme", "alice", plain, Aad("m-1"));
        var again = vault.Seal("acme", "alice", plain, Aad("m-1"));
        var sealedBob = vault.Seal("acme", "bob", plain, ContentSealing.Aad("acme", "bob", "m-1"));

        Assert.Equal(sealedAlice.KeyId, again.KeyId);
        Assert.NotEqual(sealedAlice.Data, again.Data); // a fresh nonce every time
        Assert.NotEqual(sealedAlice.KeyId, sealedBob.KeyId);
        Assert.DoesNotContain("415", Encoding.UTF8.GetString(Convert.FromBase64String(sealedAlice.Data)));
        Assert.Equal(plain, vault.Open("acme", sealedAlice, Aad("m-1")));

        // Moved onto another message, flipped, or read as another tenant: refused, never silently wrong.
        Assert.ThrowsAny<CryptographicException>(() => vault.Open("acme", sealedAlice, Aad("m-2")));
        var bytes = Convert.FromBase64String(sealedAlice.Data);
        bytes[^1] ^= 1;
        Assert.ThrowsAny<CryptographicException>(() => vault.Open("acme", sealedAlice with { Data = Convert.ToBase64String(bytes) }, Aad("m-1")));
        Assert.Null(vault.Open("other", sealedAlice, Aad("m-1")));
    }

    [Fact]
    public async Task Destroying_a_key_erases_on_this_node_at_once_and_on_another_after_the_eviction_notice()
    {
        var here = new ContentVault(_store, _master);
        var there = new ContentVault(_store, _master);
        var s = here.Seal("acme", "alice", "secret"u8, Aad("m-1"));
        Assert.Equal("secret"u8.ToArray(), there.Open("acme", s, Aad("m-1"))); // cached there now

        var destroyed = await here.DestroyAsync("acme", "alice", "root");
        Assert.Equal([s.KeyId], destroyed);
        Assert.Null(here.Open("acme", s, Aad("m-1")));
        there.Evict("acme", "alice", destroyed);
        Assert.Null(there.Open("acme", s, Aad("m-1")));
        // A node that never saw the key reads it as destroyed from the table.
        Assert.Null(new ContentVault(_store, _master).Open("acme", s, Aad("m-1")));

        // A second erasure finds nothing left; new content gets a new key.
        Assert.Empty(await here.DestroyAsync("acme", "alice", "root"));
        var fresh = here.Seal("acme", "alice", "back"u8, Aad("m-2"));
        Assert.NotEqual(s.KeyId, fresh.KeyId);
        Assert.Equal("back"u8.ToArray(), there.Open("acme", fresh, Aad("m-2")));
    }

    [Fact]
    public async Task Two_nodes_creating_a_users_first_key_at_once_agree_on_one()
    {
        var vaults = Enumerable.Range(0, 4).Select(_ => new ContentVault(_store, _master)).ToArray();
        var keys = await Task.WhenAll(vaults.Select(v => Task.Run(() => v.Seal("acme", "carol", "x"u8, ContentSealing.Aad("acme", "carol", "m")).KeyId)));
        Assert.Single(keys.Distinct());
    }

    [Fact]
    public async Task A_node_with_another_master_key_refuses_to_start()
    {
        new ContentVault(_store, _master).Seal("acme", "alice", "x"u8, Aad("m"));
        await new ContentVault(_store, _master).CheckMasterKeyAsync();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => new ContentVault(_store, MasterKey.Generate()).CheckMasterKeyAsync());
        Assert.Contains("CAAS_MASTER_KEY", error.Message);
        Assert.Throws<ArgumentException>(() => MasterKey.FromBase64("not base64!"));
        Assert.Throws<ArgumentException>(() => MasterKey.FromBase64(Convert.ToBase64String(new byte[16])));
    }

    [Fact]
    public void A_sealed_event_stores_only_ciphertext_and_chat_events_carry_it_with_its_key_id()
    {
        var vault = new ContentVault(_store, _master);
        var posted = new MessagePosted(new EventMeta("acme", "alice", DateTimeOffset.UtcNow), 1, "m-1", new MessageContent("text", "top secret"),
            new MessageEnrichment([new EnricherOutput("entities", "1", JsonDocument.Parse("""{"email":"a@example.com"}""").RootElement)], []));
        var sealedEvent = (MessagePosted)ContentSealing.Seal(posted, vault);
        Assert.Equal("top secret", sealedEvent.Content.Text); // in memory the plaintext stays for live fan-out

        var record = ChatEventRecord.From(new EventEnvelope(Offset.Sequence(1), "conversation|acme|c-1", 1, sealedEvent, 0, Array.Empty<string>()))!;
        var json = record.ToJson();
        Assert.DoesNotContain("top secret", json);
        Assert.DoesNotContain("example.com", json);
        Assert.Contains($"\"key_id\":\"{sealedEvent.Sealed!.KeyId}\"", json);

        // Opened with the vault it is whole again; with no vault it is marked unavailable, never shown as ciphertext.
        var stored = JsonSerializer.Deserialize<MessagePosted>(JsonSerializer.Serialize(sealedEvent, Caas.Actors.Serialization.CaasSerializer.Json),
            Caas.Actors.Serialization.CaasSerializer.Json)!;
        var opened = (MessagePosted)ContentSealing.Open(stored, vault);
        Assert.Equal(posted.Content, opened.Content);
        Assert.Contains("example.com", opened.Enrichment!.Results[0].Data.ToString());
        Assert.Equal(ContentSealing.Unavailable, ((MessagePosted)ContentSealing.Open(stored, null)).Content);
    }
}
