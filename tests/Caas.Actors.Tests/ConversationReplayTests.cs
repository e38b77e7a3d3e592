using System.Collections.Immutable;
using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Actors.Tests;

/// <summary>
/// Recovery applies events through <see cref="ConversationState.Replay"/> (mutable builders, the state built once at the
/// end); it must reach exactly the state that <see cref="ConversationState.Apply"/> reaches, event by event.
/// </summary>
public sealed class ConversationReplayTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 4, 9, 0, 0, TimeSpan.Zero);
    private static readonly string[] Users = ["u0", "u1", "u2", "u3", "u4"];
    private static readonly string[] Reactions = ["+1", "heart", "laugh"];

    [Theory]
    [InlineData(1, 50)]
    [InlineData(2, 50)]
    [InlineData(3, 10_000)]
    [InlineData(4, 7)]
    public void Replay_reaches_the_state_that_applying_each_event_reaches(int seed, int window)
    {
        var events = History(new Random(seed), 3_000);
        var applied = ConversationState.Empty(window);
        var replay = new ConversationState.Replay(ConversationState.Empty(window));
        for (var i = 0; i < events.Count; i++)
        {
            applied = applied.Apply(events[i]);
            replay.Apply(events[i]);
            // Read mid-way too: reading the state must not disturb the replay that goes on after it.
            if (i % 997 == 0) Assert.Equal(Describe(applied), Describe(replay.State));
        }
        Assert.Equal(Describe(applied), Describe(replay.State));
        Assert.True(applied.Messages.Count <= window);
        Assert.NotNull(applied.LastHash);
    }

    [Fact]
    public void A_replay_from_a_snapshot_goes_on_from_it()
    {
        var events = History(new Random(9), 1_200);
        var snapshot = events.Take(600).Aggregate(ConversationState.Empty(100), (s, e) => s.Apply(e));
        var applied = events.Skip(600).Aggregate(snapshot, (s, e) => s.Apply(e));
        var replay = new ConversationState.Replay(snapshot);
        foreach (var e in events.Skip(600)) replay.Apply(e);
        Assert.Equal(Describe(applied), Describe(replay.State));
        // Nothing replayed: the snapshot itself.
        Assert.Same(snapshot, new ConversationState.Replay(snapshot).State);
    }

    /// <summary>A plausible history: created, then mostly posts, with edits, deletes, reactions, enrichments, membership and moderation.</summary>
    private static List<IConversationEvent> History(Random random, int count)
    {
        var events = new List<IConversationEvent>();
        var seq = 0L;
        var hash = 0;
        EventMeta Meta(string actor) => new("t1", actor, T0.AddSeconds(events.Count), $"h{hash}", $"h{++hash}");
        events.Add(new ConversationCreated(Meta("u0"), "c1", ConversationTypes.Group, "room",
            [new InitialMember("u0", Role.Owner), new InitialMember("u1", Role.Member)]));
        while (events.Count < count)
        {
            var user = Users[random.Next(Users.Length)];
            var target = seq == 0 ? 0 : Math.Max(1, seq - random.Next(80));
            IConversationEvent e = random.Next(100) switch
            {
                < 55 => new MessagePosted(Meta(user), ++seq, $"m-{seq}", new MessageContent("text", $"text {seq}"))
                    { EnrichmentDeferred = random.Next(3) == 0 },
                < 62 when target > 0 => new MessageEdited(Meta(user), target, $"m-{target}", new MessageContent("text", "edited"))
                    { Edit = random.Next(3) },
                < 66 when target > 0 => new MessageDeleted(Meta(user), target, $"m-{target}"),
                < 72 when target > 0 => new MessageEnriched(Meta("system"), target, $"m-{target}", null),
                < 82 when target > 0 => new ReactionAdded(Meta(user), target, $"m-{target}", Reactions[random.Next(Reactions.Length)]),
                < 88 when target > 0 => new ReactionRemoved(Meta(user), target, $"m-{target}", Reactions[random.Next(Reactions.Length)]),
                < 90 => new MemberAdded(Meta("u0"), user, Role.Member),
                < 91 => new MemberRemoved(Meta("u0"), user, "removed"),
                < 92 => new MemberRoleChanged(Meta("u0"), user, Role.Moderator),
                < 93 => new UserBanned(Meta("u0"), user, random.Next(2) == 0 ? null : T0.AddDays(1), "spam"),
                < 94 => new UserUnbanned(Meta("u0"), user, null),
                < 95 => new UserMuted(Meta("u0"), user, T0.AddHours(1), null),
                < 96 => new UserUnmuted(Meta("u0"), user, null),
                < 97 => new UserKicked(Meta("u0"), user, random.Next(2) == 0 ? null : T0.AddHours(2), "noise"),
                < 99 => new ConversationUpdated(Meta("u0"), $"title {events.Count}",
                    ImmutableDictionary<string, string>.Empty.Add("k", $"{events.Count}")),
                _ => new MessagePosted(Meta(user) with { Hash = null }, ++seq, $"m-{seq}", new MessageContent("text", "no hash")),
            };
            events.Add(e);
        }
        return events;
    }

    /// <summary>Every field of the state, dictionaries in key order, so two states compare by content.</summary>
    private static string Describe(ConversationState s)
    {
        static string Sorted<TK, TV>(IEnumerable<KeyValuePair<TK, TV>> d, Func<TV, string> value) =>
            string.Join(";", d.Select(kv => $"{kv.Key}={value(kv.Value)}").Order(StringComparer.Ordinal));
        static string Facts(MessageFacts f) =>
            $"{f.MessageId},{f.AuthorId},{f.CreatedAt:O},{f.Deleted},{f.Edits},{f.AwaitingEnrichment}," +
            Sorted(f.Reactions, users => string.Join("+", users.Order(StringComparer.Ordinal)));
        return string.Join("\n",
            $"{s.Exists} {s.TenantId} {s.ConversationId} {s.Type} {s.Title} {s.CreatedAt:O} {s.CreatedBy} {s.Deleted}",
            $"last_seq={s.LastSeq} hash={s.LastHash} window={s.MessageWindow}",
            "metadata " + Sorted(s.Metadata, v => v),
            "members " + Sorted(s.Members, m => $"{m.Role},{m.JoinedAt:O}"),
            "bans " + Sorted(s.Bans, r => $"{r.Until:O},{r.Reason}"),
            "mutes " + Sorted(s.Mutes, r => $"{r.Until:O},{r.Reason}"),
            "messages " + Sorted(s.Messages, Facts),
            "ids " + Sorted(s.MessageIds, v => v.ToString()));
    }
}
