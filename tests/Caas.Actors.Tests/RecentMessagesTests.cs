using System.Collections.Immutable;
using System.Text.Json;
using Caas.Actors.Conversations;
using Caas.Actors.Serialization;

namespace Caas.Actors.Tests;

/// <summary>
/// The entity's window of recent message facts: lookups by seq and by id, eviction, and every version staying valid
/// while others grow from it (the entity keeps the journal's state beside its write in flight, and may branch again
/// from the older one after a refused write).
/// </summary>
public sealed class RecentMessagesTests
{
    private static readonly DateTimeOffset At = new(2026, 12, 6, 2, 0, 0, TimeSpan.Zero);

    private static MessageFacts Facts(string id, string author = "alice") =>
        new(id, author, At, false, ImmutableDictionary<string, ImmutableHashSet<string>>.Empty);

    private static RecentMessages Posted(int from, int to, int window, string prefix = "m", RecentMessages? start = null)
    {
        var w = start ?? RecentMessages.Empty;
        for (var seq = from; seq <= to; seq++) w = w.Add(seq, Facts($"{prefix}{seq}"), window);
        return w;
    }

    [Fact]
    public void Facts_are_found_by_seq_and_by_id_across_chunks()
    {
        var w = Posted(1, 200, 1_000);

        Assert.Equal(200, w.Count);
        for (var seq = 1; seq <= 200; seq++)
        {
            Assert.Equal($"m{seq}", w[seq].MessageId);
            Assert.Equal(seq, w.Ids[$"m{seq}"]);
        }
        Assert.False(w.ContainsKey(0));
        Assert.False(w.ContainsKey(201));
        Assert.False(w.Ids.ContainsKey("m201"));
        Assert.Throws<KeyNotFoundException>(() => w[201]);
        Assert.Equal(Enumerable.Range(1, 200).Select(i => (long)i), w.Select(p => p.Key));
    }

    [Fact]
    public void The_window_forgets_the_oldest_facts_and_their_ids()
    {
        var w = Posted(1, 1_000, 100);

        Assert.Equal(100, w.Count);
        Assert.False(w.ContainsKey(900));
        Assert.False(w.Ids.ContainsKey("m900"));
        Assert.Equal("m901", w[901].MessageId);
        Assert.Equal(1_000, w.Ids["m1000"]);
        Assert.Equal(Enumerable.Range(901, 100).Select(i => (long)i), w.Select(p => p.Key));
        Assert.Equal(100, w.Ids.Count());

        // A smaller window (configured since a snapshot) forgets all that falls out of it at the next post.
        var smaller = w.Add(1_001, Facts("m1001"), 10);
        Assert.Equal(Enumerable.Range(992, 10).Select(i => (long)i), smaller.Select(p => p.Key));
        Assert.False(smaller.Ids.ContainsKey("m991"));
    }

    [Fact]
    public void Older_versions_keep_what_they_had_when_others_grow_from_them()
    {
        var journal = Posted(1, 70, 1_000);          // the state the journal holds
        var inFlight = journal.Add(71, Facts("a71"), 1_000); // the write in flight
        var retried = journal.Add(71, Facts("b71"), 1_000);  // the write was refused: the next batch branches from the journal's state

        Assert.False(journal.ContainsKey(71));
        Assert.False(journal.Ids.ContainsKey("a71"));
        Assert.Equal("a71", inFlight[71].MessageId);
        Assert.Equal("b71", retried[71].MessageId);
        Assert.False(inFlight.Ids.ContainsKey("b71"));
        Assert.False(retried.Ids.ContainsKey("a71"));
        Assert.Equal(71, retried.Ids["b71"]);

        // Both lines go on independently.
        var a = Posted(72, 140, 1_000, "a", inFlight);
        var b = Posted(72, 140, 1_000, "b", retried);
        for (var seq = 72; seq <= 140; seq++)
        {
            Assert.Equal($"a{seq}", a[seq].MessageId);
            Assert.Equal($"b{seq}", b[seq].MessageId);
            Assert.Equal(seq, a.Ids[$"a{seq}"]);
            Assert.False(a.Ids.ContainsKey($"b{seq}"));
        }
        Assert.Equal("a71", inFlight[71].MessageId);
        Assert.Equal(71, inFlight.Count);
    }

    [Fact]
    public void A_change_copies_the_facts_and_leaves_the_older_version_alone()
    {
        var before = Posted(1, 100, 1_000);
        var deleted = before.With(70, before[70] with { Deleted = true });

        Assert.True(deleted[70].Deleted);
        Assert.False(before[70].Deleted);

        // Each goes on posting; neither sees the other's posts or change.
        var afterBefore = before.Add(101, Facts("x101"), 1_000);
        var afterDeleted = deleted.Add(101, Facts("y101"), 1_000);
        Assert.Equal("x101", afterBefore[101].MessageId);
        Assert.Equal("y101", afterDeleted[101].MessageId);
        Assert.False(afterBefore[70].Deleted);
        Assert.True(afterDeleted[70].Deleted);
        Assert.Throws<KeyNotFoundException>(() => before.With(101, Facts("z")));
    }

    [Fact]
    public void A_seq_that_does_not_follow_starts_the_window_afresh()
    {
        var w = Posted(1, 10, 100).Add(50, Facts("m50"), 100);

        Assert.Equal(1, w.Count);
        Assert.Equal(50, w.Ids["m50"]);
        Assert.False(w.Ids.ContainsKey("m10"));
        Assert.Throws<ArgumentOutOfRangeException>(() => RecentMessages.Empty.Add(0, Facts("m0"), 100));
    }

    [Fact]
    public void Random_branches_agree_with_a_copied_dictionary_model()
    {
        // Each version is checked against its own full copy of what it should hold.
        var random = new Random(1306);
        var versions = new List<(RecentMessages Window, Dictionary<long, MessageFacts> Model, long Last)>
        {
            (RecentMessages.Empty, new Dictionary<long, MessageFacts>(), 0),
        };
        const int window = 150;
        for (var step = 0; step < 3_000; step++)
        {
            var (w, model, last) = versions[random.Next(versions.Count)];
            var copy = new Dictionary<long, MessageFacts>(model);
            if (model.Count > 0 && random.Next(5) == 0)
            {
                var seq = model.Keys.ElementAt(random.Next(model.Count));
                var changed = model[seq] with { Edits = model[seq].Edits + 1 };
                copy[seq] = changed;
                versions.Add((w.With(seq, changed), copy, last));
            }
            else
            {
                var seq = last + 1;
                var facts = Facts($"s{step}");
                copy[seq] = facts;
                foreach (var old in copy.Keys.Where(k => k <= seq - window).ToList()) copy.Remove(old);
                versions.Add((w.Add(seq, facts, window), copy, seq));
            }
            if (versions.Count > 24) versions.RemoveAt(random.Next(versions.Count - 1));

            foreach (var (vw, vm, vl) in versions)
            {
                Assert.Equal(vm.Count, vw.Count);
                foreach (var (seq, facts) in vm)
                {
                    Assert.Same(facts, vw[seq]);
                    Assert.Equal(seq, vw.Ids[facts.MessageId]);
                }
                Assert.False(vw.ContainsKey(vl + 1));
            }
        }
    }

    [Fact]
    public void Json_keeps_the_dictionaries_shape_and_reads_snapshots_written_before()
    {
        var state = ConversationState.Empty(10);
        for (var seq = 1; seq <= 3; seq++)
            state = state.Apply(new MessagePosted(new Caas.Actors.Common.EventMeta("acme", "bob", At), seq, $"m-{seq}", new MessageContent("text", "hi")));

        var json = JsonSerializer.SerializeToElement(state, CaasSerializer.Json);
        Assert.Equal(["1", "2", "3"], json.GetProperty("messages").EnumerateObject().Select(p => p.Name));
        Assert.Equal("bob", json.GetProperty("messages").GetProperty("2").GetProperty("author_id").GetString());
        Assert.Equal(3, json.GetProperty("message_ids").GetProperty("m-3").GetInt64());

        // A snapshot written with the immutable dictionaries (any key order); its ids are taken from the facts.
        var old = json.GetRawText()
            .Replace(json.GetProperty("message_ids").GetRawText(), """{"m-2":2,"m-1":1,"m-3":3}""");
        var back = JsonSerializer.Deserialize<ConversationState>(old, CaasSerializer.Json)!;
        Assert.Equal(3, back.Messages.Count);
        Assert.Equal(2, back.MessageIds["m-2"]);
        Assert.Equal("m-1", back.Messages[1].MessageId);
        Assert.Equal(JsonSerializer.Serialize(state, CaasSerializer.Json), JsonSerializer.Serialize(back, CaasSerializer.Json));
    }
}
