using System.Collections.Immutable;
using System.Text.Json.Serialization;
using Caas.Actors.Common;

namespace Caas.Actors.Conversations;

public sealed record Member(string UserId, Role Role, DateTimeOffset JoinedAt);

/// <summary>A ban or mute; no <see cref="Until"/> means until lifted.</summary>
public sealed record Restriction(DateTimeOffset? Until, string? Reason)
{
    public bool ActiveAt(DateTimeOffset now) => Until is null || Until > now;
}

/// <summary>What the entity remembers of one recent message: enough to authorise edits, deletes and reactions.</summary>
/// <param name="Edits">How many times it was edited (numbers the next edit; 0 in snapshots taken before it was kept).</param>
/// <param name="AwaitingEnrichment">Stored with its enrichment deferred and not yet enriched (false in older snapshots).</param>
public sealed record MessageFacts(string MessageId, string AuthorId, DateTimeOffset CreatedAt, bool Deleted,
    ImmutableDictionary<string, ImmutableHashSet<string>> Reactions, int Edits = 0, bool AwaitingEnrichment = false);

/// <summary>
/// The conversation as its events made it. Per-message facts are kept for the last <see cref="MessageWindow"/>
/// messages only, so the state stays bounded however long the history grows.
/// </summary>
public sealed record ConversationState(
    bool Exists,
    string TenantId,
    string ConversationId,
    string Type,
    string? Title,
    ImmutableDictionary<string, string> Metadata,
    DateTimeOffset CreatedAt,
    string CreatedBy,
    bool Deleted,
    ImmutableDictionary<string, Member> Members,
    ImmutableDictionary<string, Restriction> Bans,
    ImmutableDictionary<string, Restriction> Mutes,
    long LastSeq,
    ImmutableDictionary<long, MessageFacts> Messages,
    ImmutableDictionary<string, long> MessageIds,
    int MessageWindow) : ICaasMessage
{
    public const int DefaultMessageWindow = 10_000;

    public static ConversationState Empty(int messageWindow = DefaultMessageWindow) => new(
        false, string.Empty, string.Empty, string.Empty, null, ImmutableDictionary<string, string>.Empty,
        DateTimeOffset.MinValue, string.Empty, false, ImmutableDictionary<string, Member>.Empty,
        ImmutableDictionary<string, Restriction>.Empty, ImmutableDictionary<string, Restriction>.Empty, 0,
        ImmutableDictionary<long, MessageFacts>.Empty, ImmutableDictionary<string, long>.Empty, messageWindow);

    /// <summary>Live: created and not deleted.</summary>
    [JsonIgnore]
    public bool IsLive => Exists && !Deleted;

    /// <summary>The oldest sequence number whose facts are still kept.</summary>
    [JsonIgnore]
    public long OldestKeptSeq => Math.Max(1, LastSeq - MessageWindow + 1);

    public Role? RoleOf(string userId) => Members.TryGetValue(userId, out var m) ? m.Role : null;

    public bool IsBanned(string userId, DateTimeOffset now) => Bans.TryGetValue(userId, out var r) && r.ActiveAt(now);

    public bool IsMuted(string userId, DateTimeOffset now) => Mutes.TryGetValue(userId, out var r) && r.ActiveAt(now);

    [JsonIgnore]
    public int OwnerCount => Members.Values.Count(m => m.Role == Role.Owner);

    /// <summary>The hash of the last event applied: where the entity's next event chains on (HashChain).</summary>
    public string? LastHash { get; init; }

    public ConversationState Apply(IConversationEvent e) => ApplyEvent(e) with { LastHash = e.Meta.Hash ?? LastHash };

    private ConversationState ApplyEvent(IConversationEvent e) => e switch
    {
        ConversationCreated c => this with
        {
            Exists = true,
            TenantId = c.Meta.TenantId,
            ConversationId = c.ConversationId,
            Type = c.Type,
            Title = c.Title,
            CreatedAt = c.Meta.OccurredAt,
            CreatedBy = c.Meta.ActorId,
            Members = c.Members.ToImmutableDictionary(m => m.UserId, m => new Member(m.UserId, m.Role, c.Meta.OccurredAt)),
        },
        ConversationUpdated u => this with
        {
            Title = u.Title ?? Title,
            Metadata = u.Metadata ?? Metadata,
        },
        ConversationDeleted => this with { Deleted = true },
        MemberAdded a => this with { Members = Members.SetItem(a.UserId, new Member(a.UserId, a.Role, a.Meta.OccurredAt)) },
        MemberRemoved r => this with { Members = Members.Remove(r.UserId) },
        MemberRoleChanged rc => Members.TryGetValue(rc.UserId, out var m)
            ? this with { Members = Members.SetItem(rc.UserId, m with { Role = rc.Role }) }
            : this,
        MessagePosted p => ApplyPosted(p),
        MessageEdited ed => UpdateMessage(ed.Seq, f => f with { Edits = ed.Edit > 0 ? ed.Edit : f.Edits + 1 }),
        MessageDeleted d => UpdateMessage(d.Seq, f => f with { Deleted = true }),
        MessageEnriched en => UpdateMessage(en.Seq, f => f with { AwaitingEnrichment = false }),
        ReactionAdded ra => UpdateMessage(ra.Seq, f => f with
        {
            Reactions = f.Reactions.SetItem(ra.Reaction,
                (f.Reactions.TryGetValue(ra.Reaction, out var users) ? users : ImmutableHashSet<string>.Empty).Add(ra.Meta.ActorId)),
        }),
        ReactionRemoved rr => UpdateMessage(rr.Seq, f => f with { Reactions = RemoveReactionOf(f.Reactions, rr.Reaction, rr.Meta.ActorId) }),
        UserBanned b => this with
        {
            Bans = Bans.SetItem(b.UserId, new Restriction(b.Until, b.Reason)),
            Members = Members.Remove(b.UserId),
        },
        UserUnbanned ub => this with { Bans = Bans.Remove(ub.UserId) },
        UserMuted mu => this with { Mutes = Mutes.SetItem(mu.UserId, new Restriction(mu.Until, mu.Reason)) },
        UserUnmuted um => this with { Mutes = Mutes.Remove(um.UserId) },
        UserKicked k => this with
        {
            Members = Members.Remove(k.UserId),
            Bans = k.Until is null ? Bans : Bans.SetItem(k.UserId, new Restriction(k.Until, k.Reason)),
        },
        _ => throw new ArgumentOutOfRangeException(nameof(e), e.GetType().Name, "Unknown conversation event."),
    };

    private ConversationState ApplyPosted(MessagePosted p)
    {
        var facts = new MessageFacts(p.MessageId, p.Meta.ActorId, p.Meta.OccurredAt, false,
            ImmutableDictionary<string, ImmutableHashSet<string>>.Empty, AwaitingEnrichment: p.EnrichmentDeferred);
        var messages = Messages.SetItem(p.Seq, facts);
        var ids = MessageIds.SetItem(p.MessageId, p.Seq);
        // Keep the window bounded: forget the facts that fell out of it (all of them at once when the window was
        // configured smaller since the snapshot; kept facts are contiguous, so the walk stops at the first gap).
        for (var evicted = p.Seq - MessageWindow; evicted >= 1 && messages.TryGetValue(evicted, out var old); evicted--)
        {
            messages = messages.Remove(evicted);
            ids = ids.Remove(old.MessageId);
        }
        return this with { LastSeq = p.Seq, Messages = messages, MessageIds = ids };
    }

    private ConversationState UpdateMessage(long seq, Func<MessageFacts, MessageFacts> change) =>
        Messages.TryGetValue(seq, out var f) ? this with { Messages = Messages.SetItem(seq, change(f)) } : this;

    private static ImmutableDictionary<string, ImmutableHashSet<string>> RemoveReactionOf(
        ImmutableDictionary<string, ImmutableHashSet<string>> reactions, string reaction, string userId)
    {
        if (!reactions.TryGetValue(reaction, out var users)) return reactions;
        var left = users.Remove(userId);
        return left.IsEmpty ? reactions.Remove(reaction) : reactions.SetItem(reaction, left);
    }
}
