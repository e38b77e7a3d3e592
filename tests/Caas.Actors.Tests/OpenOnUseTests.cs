using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Akka.Actor.Setup;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Actors.Privacy;
using Caas.Actors.Serialization;
using Caas.Tests.Shared;

namespace Caas.Actors.Tests;

/// <summary>
/// Sealed events read back through the bound serializer are opened when their content is first read, not when they
/// are read: applying them to the entity's state (recovery) and writing their stored form decrypt nothing.
/// </summary>
public sealed class OpenOnUseTests : IDisposable
{
    /// <summary>AES-256-GCM under one in-memory key per user, counting what it opens.</summary>
    private sealed class CountingVault : IContentVault
    {
        private readonly Dictionary<string, byte[]> _keys = [];
        public int Opens;
        /// <summary>Opens to fail, as a key store that cannot be reached fails them.</summary>
        public int Failing;
        private long _erasures;

        public long Erasures => Interlocked.Read(ref _erasures);

        /// <summary>Destroys the user's key, as an erasure does (its sealed content then opens to nothing).</summary>
        public void Destroy(string tenantId, string userId)
        {
            _keys[tenantId + "/" + userId] = [];
            Interlocked.Increment(ref _erasures);
        }

        public SealedContent Seal(string tenantId, string userId, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
        {
            var keyId = tenantId + "/" + userId;
            if (!_keys.TryGetValue(keyId, out var key)) _keys[keyId] = key = RandomNumberGenerator.GetBytes(32);
            var output = new byte[12 + plaintext.Length + 16];
            RandomNumberGenerator.Fill(output.AsSpan(0, 12));
            using var aes = new AesGcm(key, 16);
            aes.Encrypt(output.AsSpan(0, 12), plaintext, output.AsSpan(12, plaintext.Length), output.AsSpan(12 + plaintext.Length), associatedData);
            return new SealedContent(keyId, output);
        }

        public byte[]? Open(string tenantId, SealedContent sealedContent, ReadOnlySpan<byte> associatedData)
        {
            Interlocked.Increment(ref Opens);
            if (Failing > 0 && Interlocked.Decrement(ref Failing) >= 0) throw new InvalidOperationException("the key store is down");
            if (_keys[sealedContent.KeyId].Length == 0) return null;
            var data = sealedContent.Data;
            var plain = new byte[data.Length - 28];
            using var aes = new AesGcm(_keys[sealedContent.KeyId], 16);
            aes.Decrypt(data.AsSpan(0, 12), data.AsSpan(12, plain.Length), data.AsSpan(12 + plain.Length), plain, associatedData);
            return plain;
        }
    }

    private static readonly EventMeta Meta = new("acme", "alice", DateTimeOffset.UnixEpoch);
    private readonly CountingVault _vault = new();
    private readonly ActorSystem _system;

    public OpenOnUseTests()
    {
        var config = CaasConfig.Compose(StorageOptions.Sqlite(TestDatabases.NewSqliteDirectory()), "akka.actor.provider = local\nakka.loglevel = WARNING");
        _system = ActorSystem.Create("open-on-use", BootstrapSetup.Create().WithConfig(config).And(new ContentVaultSetup(_vault)));
    }

    public void Dispose() => _system.Terminate().Wait(TimeSpan.FromSeconds(10));

    private T RoundTrip<T>(T e) where T : notnull
    {
        var serializer = _system.Serialization.FindSerializerFor(e);
        return (T)_system.Serialization.Deserialize(serializer.ToBinary(e), serializer.Identifier, CaasSerializer.Manifests[typeof(T)]);
    }

    [Fact]
    public void Recovery_and_the_stored_form_decrypt_nothing_and_reading_the_content_opens_it_once()
    {
        var enrichment = new MessageEnrichment([], ["language"]);
        var created = new ConversationCreated(Meta, "c-1", ConversationTypes.Group, null, [new InitialMember("alice", Role.Owner)]);
        var posted = (MessagePosted)ContentSealing.Seal(new MessagePosted(Meta, 1, "m-1", new MessageContent("text", "secret"), enrichment), _vault, "c-1");
        var edited = (MessageEdited)ContentSealing.Seal(new MessageEdited(Meta, 1, "m-1", new MessageContent("text", "edited")) { Edit = 1 }, _vault, "c-1");
        var storedPost = _system.Serialization.FindSerializerFor(posted).ToBinary(posted);

        var readPost = RoundTrip(posted);
        var readEdit = RoundTrip(edited);
        var state = ConversationState.Empty().Apply(created).Apply(readPost).Apply(readEdit);
        Assert.Equal(1, state.LastSeq);
        Assert.Equal(1, state.Messages[1].Edits);
        // The stored form of an event read back is its ciphertext again, written without opening it.
        Assert.Equal(storedPost, new CaasSerializer((ExtendedActorSystem)_system).ToBinary(readPost));
        Assert.Equal(0, _vault.Opens);

        Assert.Equal("secret", readPost.Content.Text);
        Assert.Equal(["language"], readPost.Enrichment!.Degraded.ToArray());
        Assert.Equal("edited", readEdit.Content.Text);
        Assert.Equal(2, _vault.Opens);
        Assert.Equal("secret", readPost.Content.Text);
        Assert.Equal(2, _vault.Opens);

        // A copy keeps opening on use; replacing one part keeps the other.
        var relinked = readPost with { Meta = Meta with { Hash = "h" } };
        Assert.Equal("secret", relinked.Content.Text);
        var unreadable = RoundTrip(posted) with { Content = ContentSealing.Unreadable };
        Assert.Equal(["language"], unreadable.Enrichment!.Degraded.ToArray());
        // Two reads of one stored event are equal (records compare their opened content).
        var plain = (MessagePosted)ContentSealing.Seal(new MessagePosted(Meta, 2, "m-2", new MessageContent("text", "again")), _vault, "c-1");
        Assert.Equal(RoundTrip(plain), RoundTrip(plain));
    }

    [Fact]
    public void A_failed_open_is_not_kept_the_next_read_opens_and_every_reader_then_sees_the_same_content()
    {
        var posted = (MessagePosted)ContentSealing.Seal(new MessagePosted(Meta, 1, "m-1", new MessageContent("text", "secret")), _vault, "c-1");
        var edited = (MessageEdited)ContentSealing.Seal(new MessageEdited(Meta, 1, "m-1", new MessageContent("text", "edited")) { Edit = 1 }, _vault, "c-1");
        var readPost = RoundTrip(posted);
        var readEdit = RoundTrip(edited);

        _vault.Failing = 2;
        Assert.Throws<InvalidOperationException>(() => readPost.Content);
        Assert.Throws<InvalidOperationException>(() => readEdit.Content);
        Assert.Equal(2, _vault.Opens);
        Assert.Equal("secret", readPost.Content.Text);
        Assert.Equal("edited", readEdit.Content.Text);
        Assert.Equal(4, _vault.Opens);

        // Read from many threads at once: one content for all (whichever open was stored first).
        var again = RoundTrip(posted);
        var seen = new MessageContent[16];
        Parallel.For(0, seen.Length, i => seen[i] = again.Content);
        Assert.All(seen, c => Assert.Same(seen[0], c));
        Assert.Equal("secret", seen[0].Text);
        // A copy made before the first read opens what was read; one made after shares what was opened.
        var before = RoundTrip(posted);
        var copy = before with { Seq = 9 };
        Assert.Equal("secret", copy.Content.Text);
        Assert.Same(again.Content, (again with { Seq = 9 }).Content);
    }

    [Fact]
    public void A_recorded_enrichment_is_sealed_under_the_author_and_opened_only_when_read()
    {
        var enrichment = new MessageEnrichment([new EnricherOutput("entities", "1", System.Text.Json.JsonSerializer.SerializeToElement(new { email = "a@example.com" }))], []);
        var enriched = (MessageEnriched)ContentSealing.Seal(new MessageEnriched(Meta, 1, "m-1", enrichment), _vault, "c-1");
        Assert.Equal("acme/alice", enriched.Sealed!.KeyId);
        var stored = System.Text.Encoding.UTF8.GetString(_system.Serialization.FindSerializerFor(enriched).ToBinary(enriched));
        Assert.DoesNotContain("example.com", stored);

        var read = RoundTrip(enriched);
        Assert.Equal(0, _vault.Opens);
        // recovery applies it without reading the enrichment: nothing decrypted
        ConversationState.Empty().Apply(new ConversationCreated(Meta, "c-1", ConversationTypes.Group, null, [new InitialMember("alice", Role.Owner)]))
            .Apply(read);
        Assert.Equal(0, _vault.Opens);
        Assert.Contains("a@example.com", read.Enrichment!.Results[0].Data.ToString());
        Assert.Equal(1, _vault.Opens);
        // bound to its conversation: the same ciphertext read as another conversation's opens to nothing
        Assert.Null(((MessageEnriched)ContentSealing.InConversation(RoundTrip(enriched), "c-2")).Enrichment);
    }

    [Fact]
    public void Content_opened_before_its_author_was_erased_reads_as_erased_afterwards_from_the_same_event()
    {
        // A projection's feed keeps the events it read and hands them to other readers later (a rebuild after an
        // erasure among them): what an event opened before the erasure must not be what it answers after it.
        var enrichment = new MessageEnrichment([new EnricherOutput("entities", "1", System.Text.Json.JsonSerializer.SerializeToElement(new { email = "a@example.com" }))], []);
        var posted = RoundTrip((MessagePosted)ContentSealing.Seal(new MessagePosted(Meta, 1, "m-1", new MessageContent("text", "secret"), enrichment), _vault, "c-1"));
        var edited = RoundTrip((MessageEdited)ContentSealing.Seal(new MessageEdited(Meta, 2, "m-1", new MessageContent("text", "edited")) { Edit = 1 }, _vault, "c-1"));
        var enriched = RoundTrip((MessageEnriched)ContentSealing.Seal(new MessageEnriched(Meta, 3, "m-1", enrichment), _vault, "c-1"));
        Assert.Equal("secret", posted.Content.Text);
        Assert.Equal("edited", edited.Content.Text);
        Assert.NotNull(enriched.Enrichment);
        var opens = _vault.Opens;
        // Read again with nothing erased: answered from what was opened.
        Assert.Equal("secret", posted.Content.Text);
        Assert.Equal(opens, _vault.Opens);

        _vault.Destroy("acme", "alice");
        Assert.Equal(ContentSealing.Erased, posted.Content);
        Assert.Null(posted.Enrichment);
        Assert.Equal(ContentSealing.Erased, edited.Content);
        Assert.Null(enriched.Enrichment);
        // Opened again once, then kept until the next erasure.
        var after = _vault.Opens;
        Assert.Equal(ContentSealing.Erased, posted.Content);
        Assert.Equal(after, _vault.Opens);
    }
}
