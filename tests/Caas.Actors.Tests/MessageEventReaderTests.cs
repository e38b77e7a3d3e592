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
        var data = Convert.ToBase64String(Encoding.UTF8.GetBytes(Pick() + new string('x', random.Next(0, 300))));
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
    public void The_minimal_stored_form_is_read()
    {
        var json = """{"meta":{"tenant_id":"t","actor_id":"a","occurred_at":"2026-12-04T10:00:00+00:00"},"seq":7,"message_id":"m","sealed":{"key_id":"k","data":"ZA=="}}"""u8.ToArray();
        Assert.True(MessageEventReader.TryRead(json, out var direct));
        Assert.Equal(General(json), direct);
        Assert.Equal((7L, "k", 0, false), (direct.Seq, direct.Sealed!.KeyId, direct.Sealed.V, direct.EnrichmentDeferred));
    }
}
