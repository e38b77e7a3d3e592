using System.Text;
using System.Text.Json;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Privacy;
using Caas.Actors.Serialization;

namespace Caas.Actors.Tests;

/// <summary>
/// The direct reader for the journal's common rows builds exactly what the serializer's System.Text.Json contract builds
/// from the same stored bytes, and declines every row it is not made for (the serializer then reads it the general way).
/// </summary>
public sealed class MessageEventReaderTests
{
    private static MessagePosted General(byte[] bytes) => (MessagePosted)JsonSerializer.Deserialize(bytes, typeof(MessagePosted), CaasSerializer.Json)!;

    private static MessagePosted Sealed(Random random, int n)
    {
        var at = new DateTimeOffset(2026, 12, 4, 10, 0, 0, TimeSpan.FromHours(random.Next(-11, 13))).AddTicks(random.NextInt64(0, TimeSpan.TicksPerDay));
        string[] texts = ["alice", "b\u00f6b", "\u65e5\u672c", "quote\"and\\slash", "tab\tnew\nline", "emoji \ud83d\udc4b", "<b>&amp;</b>"];
        string Pick() => texts[random.Next(texts.Length)] + n;
        var meta = new EventMeta("tenant-" + Pick(), Pick(), at,
            random.Next(3) == 0 ? null : Convert.ToHexString(Guid.NewGuid().ToByteArray()),
            random.Next(4) == 0 ? null : Convert.ToHexString(Guid.NewGuid().ToByteArray()));
        var data = Encoding.UTF8.GetBytes(Pick() + new string('x', random.Next(0, 300)));
        var sealedContent = new SealedContent("dk_" + n, data)
        {
            V = random.Next(2) == 0 ? 0 : SealedContent.Current,
            ConversationId = random.Next(2) == 0 ? null : "c-" + Pick(),
        };
        return new MessagePosted(meta, random.NextInt64(1, long.MaxValue), "m-" + Pick(), new MessageContent("text", "never stored"))
        {
            Sealed = sealedContent,
            EnrichmentDeferred = random.Next(3) == 0,
        };
    }

    [Fact]
    public void Sealed_posts_read_as_the_general_reader_reads_them()
    {
        var random = new Random(17);
        for (var n = 0; n < 500; n++)
        {
            var bytes = CaasSerializer.StoredBytes(Sealed(random, n));
            Assert.True(MessageEventReader.TryRead(bytes, out var direct), Encoding.UTF8.GetString(bytes));
            var general = General(bytes);
            Assert.Equal(general, direct);
            Assert.Equal((general.Meta, general.Sealed, general.EnrichmentDeferred), (direct.Meta, direct.Sealed, direct.EnrichmentDeferred));
            Assert.Null(direct.Content);
            Assert.Null(direct.Enrichment);
            Assert.Equal(general, MessageEventReader.TryRead(MessageEventReader.Manifest, bytes));
        }
    }

    [Fact]
    public void Sealed_edits_deletes_and_reactions_read_as_the_general_reader_reads_them()
    {
        var random = new Random(23);
        for (var n = 0; n < 300; n++)
        {
            var post = Sealed(random, n);
            IConversationEvent[] events =
            [
                new MessageEdited(post.Meta, post.Seq, post.MessageId, new MessageContent("text", "never stored"))
                    { Sealed = post.Sealed, Edit = random.Next(3) },
                new MessageDeleted(post.Meta, post.Seq, post.MessageId),
                new ReactionAdded(post.Meta, post.Seq, post.MessageId, post.MessageId[..3] + "\ud83d\udc4d"),
                new ReactionRemoved(post.Meta, post.Seq, post.MessageId, ":shipit:"),
            ];
            foreach (var e in events)
            {
                var manifest = CaasSerializer.Manifests[e.GetType()];
                var bytes = CaasSerializer.StoredBytes(e);
                var direct = MessageEventReader.TryRead(manifest, bytes);
                Assert.NotNull(direct);
                Assert.Equal(JsonSerializer.Deserialize(bytes, e.GetType(), CaasSerializer.Json), direct);
            }
        }
    }

    [Fact]
    public void Its_manifests_are_the_serializers()
    {
        Assert.Equal(MessageEventReader.Manifest, CaasSerializer.Manifests[typeof(MessagePosted)]);
        Assert.Equal(MessageEventReader.EditedManifest, CaasSerializer.Manifests[typeof(MessageEdited)]);
        Assert.Equal(MessageEventReader.DeletedManifest, CaasSerializer.Manifests[typeof(MessageDeleted)]);
        Assert.Equal(MessageEventReader.ReactionAddedManifest, CaasSerializer.Manifests[typeof(ReactionAdded)]);
        Assert.Equal(MessageEventReader.ReactionRemovedManifest, CaasSerializer.Manifests[typeof(ReactionRemoved)]);
        // Other kinds and older versions are the general reader's.
        Assert.Null(MessageEventReader.TryRead("conv.message-posted.v1",
            """{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":1,"message_id":"m","sealed":{"key_id":"k","data":"ZA=="}}"""u8));
        // An edit in plaintext (a node without a vault) is too.
        Assert.Null(MessageEventReader.TryRead(MessageEventReader.EditedManifest,
            CaasSerializer.StoredBytes(new MessageEdited(new EventMeta("t", "a", DateTimeOffset.UnixEpoch), 1, "m", new MessageContent("text", "plain")))));
        // A reaction with a property reactions do not have.
        Assert.Null(MessageEventReader.TryRead(MessageEventReader.ReactionAddedManifest,
            """{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":1,"message_id":"m","reaction":"x","sealed":{"key_id":"k","data":"ZA=="}}"""u8));
    }

    [Fact]
    public void Sealed_data_that_is_not_base64_reads_as_no_bytes_by_both_readers_and_the_rest_of_the_event_as_it_is()
    {
        var json = """{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":1,"message_id":"m","sealed":{"key_id":"k","data":"not base64!","v":2,"conversation_id":"c"}}"""u8.ToArray();
        Assert.True(MessageEventReader.TryRead(json, out var direct));
        var general = General(json);
        Assert.Empty(direct.Sealed!.Data);
        Assert.Equal(general, direct);
        Assert.Equal(("k", 2, "c", "m"), (direct.Sealed.KeyId, direct.Sealed.V, direct.Sealed.ConversationId, direct.MessageId));
        // and valid data, escaped or not, is its bytes
        Assert.True(MessageEventReader.TryRead("""{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":1,"message_id":"m","sealed":{"key_id":"k","data":"\u002B/8="}}"""u8, out var escaped));
        Assert.Equal(new byte[] { 0xfb, 0xff }, escaped.Sealed!.Data);
    }

    [Theory]
    // Plaintext content (a node without a vault), an enrichment, an unknown or repeated property, a null, a number as a
    // string, a bad time, trailing content, a cut-off row.
    [InlineData("""{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":1,"message_id":"m","content":{"type":"text","text":"hi"}}""")]
    [InlineData("""{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":1,"message_id":"m","sealed":{"key_id":"k","data":"ZA=="},"enrichment":null}""")]
    [InlineData("""{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":1,"message_id":"m","sealed":{"key_id":"k","data":"ZA=="},"later":1}""")]
    [InlineData("""{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00","extra":"x"},"seq":1,"message_id":"m","sealed":{"key_id":"k","data":"ZA=="}}""")]
    [InlineData("""{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":1,"seq":2,"message_id":"m","sealed":{"key_id":"k","data":"ZA=="}}""")]
    [InlineData("""{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":1,"message_id":null,"sealed":{"key_id":"k","data":"ZA=="}}""")]
    [InlineData("""{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":"1","message_id":"m","sealed":{"key_id":"k","data":"ZA=="}}""")]
    [InlineData("""{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"not a time"},"seq":1,"message_id":"m","sealed":{"key_id":"k","data":"ZA=="}}""")]
    [InlineData("""{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":1,"message_id":"m","sealed":{"key_id":"k","data":"ZA=="}} {}""")]
    [InlineData("""{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":1,"message_id":"m","sealed":{"key_id":"k","data":"ZA==""")]
    public void Anything_else_is_left_to_the_general_reader(string json)
    {
        Assert.False(MessageEventReader.TryRead(Encoding.UTF8.GetBytes(json), out _));
    }

    [Fact]
    public void A_history_reads_as_the_general_reader_reads_it_and_repeated_strings_are_the_previous_events()
    {
        // An entity's history as a recovery reads it: the same tenant, actors, key and conversation again and again, each
        // event's prev_hash the hash before it, and now and then a value that differs from the last one by one character,
        // one of the same characters escaped (as older rows wrote '+'), a null, or an escaped value repeated.
        var random = new Random(31);
        string[] tenants = ["acme", "acme", "acme", "acmf", "ac\u006de", "acme"];
        string[] actors = ["u1", "u2", "u1", "u1", "u\u0031", "\u00fc1", "\u00fc1"];
        string[] keys = ["dk_a+b", "dk_a+b", "dk_a\u002Bb", "dk_a+c", "dk_a+b"];
        string?[] conversations = ["c_1", "c_1", null, "c_1", "c_2", "c\u005f1", "c_1"];
        string? hash = null;
        MessagePosted? previous = null;
        string? previousTenant = null;
        string Json(string? value) => value is null ? "null" : "\"" + value + "\"";
        for (var n = 0; n < 400; n++)
        {
            var prev = random.Next(10) switch
            {
                0 => null,
                1 => "k1:" + new string('0', 64),
                2 when hash is not null => hash[..^1] + (hash[^1] == 'a' ? 'b' : 'a'),
                _ => hash,
            };
            var next = "k1:" + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()) + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
            var conversation = conversations[random.Next(conversations.Length)];
            var tenant = tenants[random.Next(tenants.Length)];
            var json = "{\"meta\":{\"tenant_id\":" + Json(tenant) + ",\"actor_id\":" + Json(actors[random.Next(actors.Length)]) +
                       ",\"occurred_at\":\"2026-12-06T10:00:00+00:00\"" + (prev is null ? "" : ",\"prev_hash\":" + Json(prev)) + ",\"hash\":" + Json(next) +
                       "},\"seq\":" + (n + 1) + ",\"message_id\":\"m-" + n + "\",\"sealed\":{\"key_id\":" + Json(keys[random.Next(keys.Length)]) +
                       ",\"data\":\"ZA+=\",\"v\":2" + (conversation is null ? "" : ",\"conversation_id\":" + Json(conversation)) + "}}";
            var bytes = Encoding.UTF8.GetBytes(json);
            Assert.True(MessageEventReader.TryRead(bytes, out var direct), json);
            var general = General(bytes);
            Assert.Equal(general, direct);
            Assert.Equal((general.Meta, general.Sealed), (direct.Meta, direct.Sealed));
            if (previous is not null)
            {
                // The same characters written the same way: the previous event's string itself.
                if (prev == hash && prev is not null) Assert.Same(previous.Meta.Hash, direct.Meta.PrevHash);
                if (tenant == "acme" && previousTenant == "acme") Assert.Same(previous.Meta.TenantId, direct.Meta.TenantId);
            }
            hash = next;
            previousTenant = tenant;
            previous = direct;
        }
    }

    [Fact]
    public void The_stored_form_writes_plus_and_htmls_characters_as_they_are_and_rows_with_them_escaped_read_the_same()
    {
        var at = new DateTimeOffset(2026, 12, 6, 10, 0, 0, TimeSpan.FromHours(2));
        var open = new MessagePosted(new EventMeta("t<1>", "a&'b`", at, "k1:" + new string('0', 64)), 3, "m+1", new MessageContent("text", "never stored"))
        {
            Sealed = new SealedContent("dk_1", Convert.FromBase64String("ab+/cd+efg+h")) { V = SealedContent.Current, ConversationId = "c+1" },
        };
        var chained = HashChain.Seal(open, open.Meta.PrevHash, CaasSerializer.StoredBytes);
        var stored = CaasSerializer.StoredBytes(chained);
        var text = Encoding.UTF8.GetString(stored);
        Assert.Contains("\"ab+/cd+efg+h\"", text);
        Assert.Contains("\"a&'b`\"", text);
        Assert.Contains("\"t<1>\"", text);
        Assert.DoesNotContain("\\u00", text);
        Assert.Contains("+02:00", text);

        // A row as the stored form wrote it before (HTML's characters escaped) reads as the same event, by both readers.
        var older = Encoding.UTF8.GetBytes(text.Replace("+/", "\\u002B/").Replace("+ef", "\\u002Bef").Replace("&", "\\u0026")
            .Replace("'", "\\u0027").Replace("`", "\\u0060").Replace("<", "\\u003C").Replace(">", "\\u003E").Replace("m+1", "m\\u002B1"));
        Assert.NotEqual(stored, older);
        foreach (var bytes in new[] { stored, older })
        {
            Assert.True(MessageEventReader.TryRead(bytes, out var direct));
            Assert.Equal(General(stored), direct);
            Assert.Equal((chained.Meta, chained.Sealed), (direct.Meta, direct.Sealed));
            Assert.Equal((chained.Meta, chained.Sealed), (General(bytes).Meta, General(bytes).Sealed));
        }

        // Each row's link is over its own stored bytes: the new one holds; the older one holds over its bytes too.
        Assert.True(HashChain.TryOpen(stored, out var openBytes, out var found));
        Assert.Equal(chained.Meta.Hash, found);
        Assert.True(HashChain.Holds(open.Meta.PrevHash, openBytes, found!, null));
        Assert.True(HashChain.TryOpen(older, out var olderOpen, out var olderFound));
        Assert.False(HashChain.Holds(open.Meta.PrevHash, olderOpen, olderFound!, null));
        var relinked = HashChain.WithHash(olderOpen, HashChain.Compute(open.Meta.PrevHash, olderOpen));
        Assert.True(HashChain.TryOpen(relinked, out var relinkedOpen, out var relinkedHash));
        Assert.True(HashChain.Holds(open.Meta.PrevHash, relinkedOpen, relinkedHash!, null));
    }

    [Fact]
    public void The_minimal_stored_form_is_read()
    {
        var json = """{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":7,"message_id":"m","sealed":{"key_id":"k","data":"ZA=="}}"""u8.ToArray();
        Assert.True(MessageEventReader.TryRead(json, out var direct));
        Assert.Equal(General(json), direct);
        Assert.Equal((7L, "k", 0, false), (direct.Seq, direct.Sealed!.KeyId, direct.Sealed.V, direct.EnrichmentDeferred));
    }
}
