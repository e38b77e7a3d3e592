using System.Collections.Immutable;
using System.Text;
using System.Text.Json;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Serialization;

namespace Caas.Web.Tests.Audit;

/// <summary>The chain's arithmetic on the serializer's bytes, without a node.</summary>
public sealed class HashChainTests
{
    private static byte[] Bytes(object o) => JsonSerializer.SerializeToUtf8Bytes(o, o.GetType(), CaasSerializer.Json);

    private static readonly EventMeta Meta = new("acme", "alice", new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public void Sealed_events_link_and_their_stored_bytes_open_to_what_was_hashed()
    {
        // Message text that looks like the envelope's hash must not fool the reader of stored bytes.
        var tricky = new MessageContent("text", ",\"hash\":\"" + new string('a', 64) + "\"}");
        var events = new IConversationEvent[]
        {
            new ConversationCreated(Meta, "c1", "group", "t", [new InitialMember("alice", Role.Owner)]),
            new MessagePosted(Meta, 1, "m1", tricky),
            new ConversationUpdated(Meta, null, ImmutableDictionary<string, string>.Empty.Add("hash", new string('b', 64))),
        };
        var chained = HashChain.SealAll(events, null, Bytes);

        Assert.Null(chained[0].Meta.PrevHash);
        Assert.Equal(chained[0].Meta.Hash, chained[1].Meta.PrevHash);
        Assert.Equal(chained[1].Meta.Hash, chained[2].Meta.PrevHash);
        Assert.Equal(3, chained.Select(e => e.Meta.Hash).Distinct().Count());
        Assert.Null(events[1].Meta.Hash); // sealing copies; the decided events are untouched
        Assert.Equal(tricky, ((MessagePosted)chained[1]).Content);

        foreach (var e in chained)
        {
            var stored = Bytes(e);
            Assert.True(HashChain.TryOpen(stored, out var open, out var hash));
            Assert.Equal(e.Meta.Hash, hash);
            // what was hashed is the same event with no hash, as the serializer writes it
            var reread = (IConversationEvent)JsonSerializer.Deserialize(open, e.GetType(), CaasSerializer.Json)!;
            Assert.Equal(e.Meta with { Hash = null }, reread.Meta);
            Assert.Equal(Bytes(reread), open);
            Assert.Equal(hash, HashChain.Compute(e.Meta.PrevHash, open));
        }

        // One changed byte anywhere (here the time) gives another hash.
        var stored1 = Encoding.UTF8.GetString(Bytes(chained[1])).Replace("12:00:00", "12:00:01");
        Assert.True(HashChain.TryOpen(Encoding.UTF8.GetBytes(stored1), out var changed, out var claimed));
        Assert.NotEqual(claimed, HashChain.Compute(chained[1].Meta.PrevHash, changed));
    }

    [Fact]
    public void Events_from_before_the_chain_are_stored_as_before_and_carry_no_hash()
    {
        var old = new ConversationUpdated(Meta, null, ImmutableDictionary<string, string>.Empty.Add("hash", new string('b', 64)));
        var json = Encoding.UTF8.GetString(Bytes(old));
        Assert.DoesNotContain("prev_hash", json);
        Assert.StartsWith("{\"meta\":{\"tenant_id\":\"acme\",\"actor_id\":\"alice\",\"occurred_at\":\"2026-03-01T12:00:00+00:00\"}", json);
        Assert.False(HashChain.TryOpen(Bytes(old), out _, out var hash));
        Assert.Null(hash);
    }
}
