using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Actors.Privacy;
using Caas.Streams.Kafka;
using Caas.Streams.Operational;
using Caas.Streams.Privacy;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;

namespace Caas.Streams.Tests;

/// <summary>The content vault on a real SQLite file (the operational store): AES-GCM under per-user keys wrapped by the master key.</summary>
public sealed class ContentVaultTests : IAsyncLifetime
{
    private readonly StorageOptions _storage = StorageOptions.Sqlite(TestDatabases.NewSqliteDirectory());
    private OperationalStore _store = null!;
    private readonly MasterKey _master = MasterKey.Generate();

    public async Task InitializeAsync()
    {
        _store = new OperationalStore(_storage);
        await _store.MigrateAsync();
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
        Assert.DoesNotContain("415 555 0100", Encoding.UTF8.GetString(sealedAlice.Data));
        Assert.Equal(plain, vault.Open("acme", sealedAlice, Aad("m-1")));

        // Moved onto another message, flipped, or read as another tenant: refused, never silently wrong.
        Assert.Throws<SealedContentUnreadableException>(() => vault.Open("acme", sealedAlice, Aad("m-2")));
        var bytes = sealedAlice.Data.ToArray();
        bytes[^1] ^= 1;
        Assert.Throws<SealedContentUnreadableException>(() => vault.Open("acme", sealedAlice with { Data = bytes }, Aad("m-1")));
        Assert.Equal("tampered", Assert.Throws<SealedContentUnreadableException>(() => vault.Open("other", sealedAlice, Aad("m-1"))).Reason);
        // Data that was not base64 in storage reads as no bytes: tampered, not an empty message.
        Assert.Equal("tampered", Assert.Throws<SealedContentUnreadableException>(() => vault.Open("acme", sealedAlice with { Data = [] }, Aad("m-1"))).Reason);
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
        var sealedEvent = (MessagePosted)ContentSealing.Seal(posted, vault, "c-1");
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

    private static System.Data.Common.DbCommand Sql(System.Data.Common.DbConnection c, object? _, string sql, params (string Name, object Value)[] args)
    {
        var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = "@" + name;
            p.Value = value;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    private static T Stored<T>(T e) => JsonSerializer.Deserialize<T>(JsonSerializer.Serialize(e, Caas.Actors.Serialization.CaasSerializer.Json),
        Caas.Actors.Serialization.CaasSerializer.Json)!;

    [Fact]
    public void Sealed_content_is_bound_to_its_conversation_event_type_and_edit_number()
    {
        var vault = new ContentVault(_store, _master);
        var meta = new EventMeta("acme", "alice", DateTimeOffset.UtcNow);
        var post = Stored((MessagePosted)ContentSealing.Seal(new MessagePosted(meta, 1, "m-1", new MessageContent("text", "the post")), vault, "c-1"));
        var edit1 = Stored((MessageEdited)ContentSealing.Seal(new MessageEdited(meta, 1, "m-1", new MessageContent("text", "the first edit")) { Edit = 1 }, vault, "c-1"));
        var edit2 = Stored((MessageEdited)ContentSealing.Seal(new MessageEdited(meta, 1, "m-1", new MessageContent("text", "the second edit")) { Edit = 2 }, vault, "c-1"));
        Assert.Equal(SealedContent.Current, post.Sealed!.V);
        Assert.Equal("c-1", post.Sealed.ConversationId);
        Assert.Equal("the post", ((MessagePosted)ContentSealing.Open(post, vault)).Content.Text);
        Assert.Equal("the second edit", ((MessageEdited)ContentSealing.Open(edit2, vault)).Content.Text);

        // An edit's ciphertext swapped into the post, or into another edit of the same message: an error, never the other text.
        Assert.Equal(ContentSealing.Unreadable, ((MessagePosted)ContentSealing.Open(post with { Sealed = edit1.Sealed }, vault)).Content);
        Assert.Equal(ContentSealing.Unreadable, ((MessageEdited)ContentSealing.Open(edit2 with { Sealed = edit1.Sealed }, vault)).Content);
        // The post's ciphertext onto an edit.
        Assert.Equal(ContentSealing.Unreadable, ((MessageEdited)ContentSealing.Open(edit1 with { Sealed = post.Sealed }, vault)).Content);
        // Relabelled for another conversation: does not open.
        Assert.Equal(ContentSealing.Unreadable,
            ((MessagePosted)ContentSealing.Open(post with { Sealed = post.Sealed with { ConversationId = "c-2" } }, vault)).Content);
        // Copied whole into another conversation's journal: the reader that knows the entity refuses it.
        var opened = (MessagePosted)ContentSealing.Open(post, vault);
        Assert.Equal(ContentSealing.Unreadable, ((MessagePosted)ContentSealing.InConversation(opened, "c-2")).Content);
        Assert.Equal("the post", ((MessagePosted)ContentSealing.InConversation(opened, "c-1")).Content.Text);
    }

    [Fact]
    public void Content_sealed_in_the_first_format_still_opens_with_its_own_binding()
    {
        var vault = new ContentVault(_store, _master);
        var meta = new EventMeta("acme", "alice", DateTimeOffset.UtcNow);
        var body = JsonSerializer.SerializeToUtf8Bytes(new { content = new MessageContent("text", "written before v2") }, Caas.Actors.Serialization.CaasSerializer.Json);
        var v1 = vault.Seal("acme", "alice", body, ContentSealing.Aad("acme", "alice", "m-old"));
        var stored = Stored(new MessagePosted(meta, 1, "m-old", new MessageContent("text", null)) { Sealed = v1 });
        Assert.Equal(0, stored.Sealed!.V);
        Assert.Equal("written before v2", ((MessagePosted)ContentSealing.Open(stored, vault)).Content.Text);
        Assert.Equal(ContentSealing.Unreadable, ((MessagePosted)ContentSealing.Open(stored with { MessageId = "m-other" }, vault)).Content);
    }

    [Fact]
    public async Task A_missing_data_key_is_an_error_not_an_erasure_and_reads_again_once_restored()
    {
        var vault = new ContentVault(_store, _master);
        var meta = new EventMeta("acme", "alice", DateTimeOffset.UtcNow);
        var post = Stored((MessagePosted)ContentSealing.Seal(new MessagePosted(meta, 1, "m-1", new MessageContent("text", "kept")), vault, "c-1"));

        // The key table restored from a copy older than the key: the row is gone, not tombstoned.
        string tenant, user, wrapped, masterId;
        long created;
        await using (var c = await _store.OpenAsync())
        {
            await using (var read = Sql(c, null, "SELECT tenant_id, user_id, wrapped_key, master_key_id, created_at FROM data_keys WHERE key_id = @k",
                             ("k", post.Sealed!.KeyId)))
            await using (var r = await read.ExecuteReaderAsync())
            {
                Assert.True(await r.ReadAsync());
                (tenant, user, wrapped, masterId, created) = (r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt64(4));
            }
            await using var delete = Sql(c, null, "DELETE FROM data_keys WHERE key_id = @k", ("k", post.Sealed.KeyId));
            Assert.Equal(1, await delete.ExecuteNonQueryAsync());
        }

        var elsewhere = new ContentVault(_store, _master);
        Assert.Equal("missing_key", Assert.Throws<SealedContentUnreadableException>(() => elsewhere.Open("acme", post.Sealed, ContentSealing.Aad("acme", "c-1", "alice", "m-1", "posted", 0))).Reason);
        var unreadable = ((MessagePosted)ContentSealing.Open(post, elsewhere)).Content;
        Assert.Equal(ContentSealing.Unreadable, unreadable);
        Assert.NotEqual(ContentSealing.Erased, unreadable);
        // The vault that had it cached keeps reading it; a missing key is not remembered as destroyed anywhere.
        Assert.Equal("kept", ((MessagePosted)ContentSealing.Open(post, vault)).Content.Text);

        await using (var c = await _store.OpenAsync())
        await using (var restore = Sql(c, null,
                         "INSERT INTO data_keys (key_id, tenant_id, user_id, wrapped_key, master_key_id, created_at) VALUES (@id, @t, @u, @w, @m, @at)",
                         ("id", post.Sealed.KeyId), ("t", tenant), ("u", user), ("w", wrapped), ("m", masterId), ("at", created)))
            await restore.ExecuteNonQueryAsync();
        Assert.Equal("kept", ((MessagePosted)ContentSealing.Open(post, elsewhere)).Content.Text);

        // Only a destroyed (tombstoned) key reads as erased.
        await elsewhere.DestroyAsync("acme", "alice", "root");
        Assert.Equal(ContentSealing.Erased, ((MessagePosted)ContentSealing.Open(post, elsewhere)).Content);
    }
}
