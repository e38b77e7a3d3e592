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
/// <param name="MessageIds">Read from JSON and ignored: the ids are those of <see cref="Messages"/> (written for older nodes).</param>
#pragma warning disable CS8907 // MessageIds is a view of Messages; its parameter exists for the JSON shape only
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
    RecentMessages Messages,
    RecentMessages.MessageIdIndex MessageIds,
    int MessageWindow) : ICaasMessage
#pragma warning restore CS8907
{
    public const int DefaultMessageWindow = 10_000;

    /// <summary>The kept facts' message ids, to their seq.</summary>
    public RecentMessages.MessageIdIndex MessageIds => Messages.Ids;

    public static ConversationState Empty(int messageWindow = DefaultMessageWindow) => new(
        false, string.Empty, string.Empty, string.Empty, null, ImmutableDictionary<string, string>.Empty,
        DateTimeOffset.MinValue, string.Empty, false, ImmutableDictionary<string, Member>.Empty,
        ImmutableDictionary<string, Restriction>.Empty, ImmutableDictionary<string, Restriction>.Empty, 0,
        RecentMessages.Empty, RecentMessages.Empty.Ids, messageWindow);

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

    /// <summary>The call entity's sequence number of the last call change recorded (<see cref="CallUpdated"/>; 0: none).</summary>
    public long LastCallSeq { get; init; }

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
        MessageEdited or MessageDeleted or MessageEnriched or ReactionAdded or ReactionRemoved => UpdateMessage(e),
        UserBanned b => this with
        {
            Bans = Bans.SetItem(b.UserId, new Restriction(b.Until, b.Reason)),
            Members = Members.Remove(b.UserId),
        },
        UserUnbanned ub => this with { Bans = Bans.Remove(ub.UserId) },
        UserMuted mu => this with { Mutes = Mutes.SetItem(mu.UserId, new Restriction(mu.Until, mu.Reason)) },
        UserUnmuted um => this with { Mutes = Mutes.Remove(um.UserId) },
        CallUpdated cu => this with { LastCallSeq = Math.Max(LastCallSeq, cu.CallSeq) },
        UserKicked k => this with
        {
            Members = Members.Remove(k.UserId),
            Bans = k.Until is null ? Bans : Bans.SetItem(k.UserId, new Restriction(k.Until, k.Reason)),
        },
        _ => throw new ArgumentOutOfRangeException(nameof(e), e.GetType().Name, "Unknown conversation event."),
    };

    private ConversationState ApplyPosted(MessagePosted p) =>
        this with { LastSeq = p.Seq, Messages = Messages.Add(p.Seq, FactsOf(p, Members), MessageWindow) };

    /// <summary>A post's facts; the author's id is the member's own string when it is one (not a copy per message).</summary>
    private static MessageFacts FactsOf(MessagePosted p, ImmutableDictionary<string, Member> members) =>
        new(p.MessageId, members.TryGetKey(p.Meta.ActorId, out var author) ? author : p.Meta.ActorId, p.Meta.OccurredAt, false,
            ImmutableDictionary<string, ImmutableHashSet<string>>.Empty, AwaitingEnrichment: p.EnrichmentDeferred);

    /// <summary>Records a posted message's facts and forgets those that fell out of the window (recovery's hash map).</summary>
    private static void Post(Dictionary<long, MessageFacts> messages, MessagePosted p, ConversationState state)
    {
        messages[p.Seq] = FactsOf(p, state.Members);
        // Keep the window bounded: forget the facts that fell out of it (all of them at once when the window was
        // configured smaller since the snapshot; kept facts are contiguous, so the walk stops at the first gap).
        var evicted = p.Seq - state.MessageWindow;
        while (evicted >= 1 && messages.Remove(evicted)) evicted--;
    }

    /// <summary>The message an edit, delete, enrichment or reaction changes; false for every other event.</summary>
    private static bool ChangesMessage(IConversationEvent e, out long seq)
    {
        seq = e switch
        {
            MessageEdited x => x.Seq,
            MessageDeleted x => x.Seq,
            MessageEnriched x => x.Seq,
            ReactionAdded x => x.Seq,
            ReactionRemoved x => x.Seq,
            _ => long.MinValue,
        };
        return seq != long.MinValue;
    }

    /// <summary>A kept message's facts after <paramref name="e"/> (one of the events <see cref="ChangesMessage"/> names).</summary>
    private static MessageFacts Changed(IConversationEvent e, MessageFacts f) => e switch
    {
        MessageEdited ed => f with { Edits = ed.Edit > 0 ? ed.Edit : f.Edits + 1 },
        MessageDeleted => f with { Deleted = true },
        MessageEnriched => f with { AwaitingEnrichment = false },
        ReactionAdded ra => f with
        {
            Reactions = f.Reactions.SetItem(ra.Reaction,
                (f.Reactions.TryGetValue(ra.Reaction, out var users) ? users : ImmutableHashSet<string>.Empty).Add(ra.Meta.ActorId)),
        },
        ReactionRemoved rr => f with { Reactions = RemoveReactionOf(f.Reactions, rr.Reaction, rr.Meta.ActorId) },
        _ => f,
    };

    private ConversationState UpdateMessage(IConversationEvent e) =>
        ChangesMessage(e, out var seq) && Messages.TryGetValue(seq, out var f) ? this with { Messages = Messages.With(seq, Changed(e, f)) } : this;

    /// <summary>
    /// Recovery's way to apply events: the same changes as <see cref="Apply"/>, but the message facts (nearly every event
    /// of a long conversation) go into a plain hash map instead of a new window per event; the state's window is built
    /// once, when <see cref="State"/> is read (at the end of the replay), from the window's facts only.
    /// </summary>
    public sealed class Replay(ConversationState start)
    {
        private ConversationState _state = start;
        private Dictionary<long, MessageFacts>? _messages;
        private long _lastSeq = start.LastSeq;
        private string? _lastHash = start.LastHash;

        public void Apply(IConversationEvent e)
        {
            if (e is MessagePosted p)
            {
                Open();
                Post(_messages!, p, _state);
                _lastSeq = p.Seq;
            }
            else if (ChangesMessage(e, out var seq))
            {
                Open();
                if (_messages!.TryGetValue(seq, out var f)) _messages[seq] = Changed(e, f);
            }
            else
            {
                // Every other event leaves the message facts and the last seq alone: it applies to the rest of the
                // state, and the map stays open.
                _state = _state.Apply(e);
            }
            _lastHash = e.Meta.Hash ?? _lastHash;
        }

        /// <summary>The state after every event applied so far.</summary>
        public ConversationState State => _messages is null
            ? _state // nothing but other events yet: they kept its last seq and hash themselves
            : _state with
            {
                Messages = RecentMessages.From(_messages, _state.MessageWindow), LastSeq = _lastSeq, LastHash = _lastHash,
            };

        private void Open()
        {
            if (_messages is not null) return;
            _messages = new Dictionary<long, MessageFacts>(_state.Messages);
        }
    }

    private static ImmutableDictionary<string, ImmutableHashSet<string>> RemoveReactionOf(
        ImmutableDictionary<string, ImmutableHashSet<string>> reactions, string reaction, string userId)
    {
        if (!reactions.TryGetValue(reaction, out var users)) return reactions;
        var left = users.Remove(userId);
        return left.IsEmpty ? reactions.Remove(reaction) : reactions.SetItem(reaction, left);
    }
}
