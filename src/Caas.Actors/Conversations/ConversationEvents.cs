using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using System.Text.Json.Serialization;
using Caas.Actors.Common;
using Caas.Actors.Privacy;

namespace Caas.Actors.Conversations;

/// <summary>Every conversation event; versioned manifests live on the serializer's type table.</summary>
public interface IConversationEvent : IDomainEvent, ICaasMessage;

public sealed record ConversationCreated(EventMeta Meta, string ConversationId, string Type, string? Title,
    ImmutableArray<InitialMember> Members) : IConversationEvent;

public sealed record ConversationUpdated(EventMeta Meta, string? Title, ImmutableDictionary<string, string>? Metadata)
    : IConversationEvent;

public sealed record ConversationDeleted(EventMeta Meta) : IConversationEvent;

public sealed record MemberAdded(EventMeta Meta, string UserId, Role Role) : IConversationEvent;

/// <summary><see cref="Reason"/> is <c>left</c>, <c>removed</c> or <c>kicked</c>.</summary>
public sealed record MemberRemoved(EventMeta Meta, string UserId, string Reason) : IConversationEvent;

public sealed record MemberRoleChanged(EventMeta Meta, string UserId, Role Role) : IConversationEvent;

/// <summary>
/// A change of the conversation's call, recorded in the conversation's own journal (sent by the call entity,
/// <c>Calls.CallRoomActor</c>, after it persisted its own event) so that it carries the conversation's event_seq, is
/// replayed by a hub <c>Resume</c> like every other durable event, and is on <c>chat.events</c>. It carries the call's
/// whole state after the change, so a client that sees only the last one still knows the call.
/// <see cref="Change"/>: <c>started</c>, <c>joined</c>, <c>declined</c>, <c>busy</c>, <c>left</c>, <c>missed</c>,
/// <c>ended</c>; <see cref="Status"/>: <c>ringing</c>, <c>active</c>, <c>ended</c>. <see cref="UserIds"/>: whom the
/// change is about (the joiner, the decliner, who left, those who missed it; for the end, who took part; empty for the
/// start). <see cref="CallSeq"/>:
/// the call entity's sequence number of the change, which makes recording it idempotent. Meta's actor is the user
/// whose command caused it, or <c>system</c>.
/// </summary>
public sealed record CallUpdated(EventMeta Meta, string CallId, string Change, string Status, string Media, string StartedBy,
    DateTimeOffset StartedAt, IReadOnlyList<string> Joined, IReadOnlyList<string> Ringing, IReadOnlyList<string> UserIds,
    string? Reason, double? DurationSeconds, long CallSeq) : IConversationEvent;

/// <summary>
/// v2 added <see cref="Enrichment"/>; v1 events read with none. Once <see cref="Sealed"/> is set (the node has a
/// content vault), the journal stores only the ciphertext: <see cref="Content"/> and <see cref="Enrichment"/> are
/// restored from it when the event is read, or read as erased when the author's key was destroyed.
/// </summary>
public sealed record MessagePosted(EventMeta Meta, long Seq, string MessageId, MessageContent Content,
    MessageEnrichment? Enrichment = null) : IConversationEvent, ISealable
{
    private MessageContent _content = Content;
    private MessageEnrichment? _enrichment = Enrichment;
    // A sealed event as read from the journal opens on first use of its content, not when it is read: the entity's
    // recovery never reads content, so it decrypts nothing (ContentSealing.OpenOnUse). No closure or Lazy per event:
    // the event as it was read (a copy made with `with` still opens what was read), the vault to open it with, and the
    // opened body once some reader has opened it.
    private MessagePosted? _readAs;
    private IContentVault? _vault;
    private Opened? _opened;

    private sealed record Opened(MessageContent Content, MessageEnrichment? Enrichment, long Erasures);

    public MessageContent Content
    {
        get => _readAs is { } read ? Open(read).Content : _content;
        init
        {
            _enrichment = Enrichment;
            _content = value;
            _readAs = null;
        }
    }

    public MessageEnrichment? Enrichment
    {
        get => _readAs is { } read ? Open(read).Enrichment : _enrichment;
        init
        {
            _content = Content;
            _enrichment = value;
            _readAs = null;
        }
    }

    /// <summary>
    /// The opened body: the first reader opens it, and the first answer stored is everyone's; a failure (a key that
    /// could not be loaded) is not kept, so the next read tries again. A body opened before the vault forgot a destroyed
    /// key is opened again (<see cref="IContentVault.Erasures"/>), so an erased author's content does not outlive the
    /// erasure in an event held in memory.
    /// </summary>
    private Opened Open(MessagePosted read)
    {
        var erasures = _vault?.Erasures ?? 0;
        var done = Volatile.Read(ref _opened);
        if (done is not null && done.Erasures == erasures) return done;
        var (content, enrichment) = ContentSealing.OpenPosted(read, _vault);
        return ContentSealing.Publish(ref _opened, done, new Opened(content, enrichment, erasures), o => o.Erasures);
    }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public SealedContent? Sealed { get; init; }

    /// <summary>
    /// The message was stored without enrichment (the pipeline was above its high-water mark): the enrichment projection
    /// runs the enrichers later and the entity records their results as <see cref="MessageEnriched"/>. Kept outside the
    /// sealed body (it holds no personal data), so the entity and the projection know it without decrypting anything;
    /// the event is also tagged <see cref="EnrichmentTags.Deferred"/>.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool EnrichmentDeferred { get; init; }

    /// <summary>
    /// Sets this event, just read and not yet seen by anything else, to take its content and enrichment from
    /// <see cref="Sealed"/> on first use, opened with <paramref name="vault"/>.
    /// </summary>
    internal void OpenOnUse(IContentVault? vault)
    {
        _vault = vault;
        _opened = null;
        _readAs = this;
    }

    public bool Equals(MessagePosted? other) =>
        other is not null && Meta == other.Meta && Seq == other.Seq && MessageId == other.MessageId && Content == other.Content &&
        Enrichment == other.Enrichment && Sealed == other.Sealed && EnrichmentDeferred == other.EnrichmentDeferred;

    public override int GetHashCode() => HashCode.Combine(Meta, Seq, MessageId, Sealed);
}

/// <summary>
/// The enrichment of a message stored with <see cref="MessagePosted.EnrichmentDeferred"/>, recorded by the entity when
/// the enrichment projection has run the enrichers. <see cref="EventMeta.ActorId"/> is the message's author: the
/// enrichment is sealed under the author's data key like the content (it can hold the same phone numbers and
/// addresses), so erasing the author makes it unreadable too. Opened on first use; reads as null once erased.
/// </summary>
public sealed record MessageEnriched(EventMeta Meta, long Seq, string MessageId, MessageEnrichment? Enrichment) : IConversationEvent, ISealable
{
    private MessageEnrichment? _enrichment = Enrichment;
    // Opened on first use, like MessagePosted's.
    private MessageEnriched? _readAs;
    private IContentVault? _vault;
    private OpenedEnrichment? _opened;

    private sealed record OpenedEnrichment(MessageEnrichment? Value, long Erasures);

    public MessageEnrichment? Enrichment
    {
        get
        {
            if (_readAs is not { } read) return _enrichment;
            var erasures = _vault?.Erasures ?? 0;
            var done = Volatile.Read(ref _opened);
            if (done is not null && done.Erasures == erasures) return done.Value;
            return ContentSealing.Publish(ref _opened, done, new OpenedEnrichment(ContentSealing.OpenEnriched(read, _vault), erasures),
                o => o.Erasures).Value;
        }
        init
        {
            _enrichment = value;
            _readAs = null;
        }
    }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public SealedContent? Sealed { get; init; }

    /// <summary>Sets this event, just read, to take its enrichment from <see cref="Sealed"/> on first use (see <see cref="MessagePosted"/>).</summary>
    internal void OpenOnUse(IContentVault? vault)
    {
        _vault = vault;
        _opened = null;
        _readAs = this;
    }

    public bool Equals(MessageEnriched? other) =>
        other is not null && Meta == other.Meta && Seq == other.Seq && MessageId == other.MessageId && Enrichment == other.Enrichment &&
        Sealed == other.Sealed;

    public override int GetHashCode() => HashCode.Combine(Meta, Seq, MessageId, Sealed);
}

/// <summary>Journal tags of deferred enrichment.</summary>
public static class EnrichmentTags
{
    /// <summary>A <see cref="MessagePosted"/> stored with its enrichment deferred: what the enrichment projection reads.</summary>
    public const string Deferred = "enrichment-deferred";
}

/// <summary>
/// An edit's new content; sealed like <see cref="MessagePosted"/>. <see cref="Edit"/> numbers the message's edits from 1
/// (0 on edits stored before it was recorded); the sealed content is bound to it.
/// </summary>
public sealed record MessageEdited(EventMeta Meta, long Seq, string MessageId, MessageContent Content) : IConversationEvent, ISealable
{
    private MessageContent _content = Content;
    // Opened on first use, like MessagePosted's.
    private MessageEdited? _readAs;
    private IContentVault? _vault;
    private OpenedContent? _opened;

    private sealed record OpenedContent(MessageContent Value, long Erasures);

    public MessageContent Content
    {
        get
        {
            if (_readAs is not { } read) return _content;
            var erasures = _vault?.Erasures ?? 0;
            var done = Volatile.Read(ref _opened);
            if (done is not null && done.Erasures == erasures) return done.Value;
            return ContentSealing.Publish(ref _opened, done, new OpenedContent(ContentSealing.OpenEdited(read, _vault), erasures),
                o => o.Erasures).Value;
        }
        init
        {
            _content = value;
            _readAs = null;
        }
    }

    /// <summary>Sets this event, just read, to take its content from <see cref="Sealed"/> on first use (see <see cref="MessagePosted"/>).</summary>
    internal void OpenOnUse(IContentVault? vault)
    {
        _vault = vault;
        _opened = null;
        _readAs = this;
    }

    public bool Equals(MessageEdited? other) =>
        other is not null && Meta == other.Meta && Seq == other.Seq && MessageId == other.MessageId && Content == other.Content &&
        Edit == other.Edit && Sealed == other.Sealed;

    public override int GetHashCode() => HashCode.Combine(Meta, Seq, MessageId, Edit, Sealed);

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int Edit { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public SealedContent? Sealed { get; init; }
}

public sealed record MessageDeleted(EventMeta Meta, long Seq, string MessageId) : IConversationEvent;

public sealed record ReactionAdded(EventMeta Meta, long Seq, string MessageId, string Reaction) : IConversationEvent;

public sealed record ReactionRemoved(EventMeta Meta, long Seq, string MessageId, string Reaction) : IConversationEvent;

public sealed record UserBanned(EventMeta Meta, string UserId, DateTimeOffset? Until, string? Reason) : IConversationEvent;

public sealed record UserUnbanned(EventMeta Meta, string UserId, string? Reason) : IConversationEvent;

public sealed record UserMuted(EventMeta Meta, string UserId, DateTimeOffset? Until, string? Reason) : IConversationEvent;

public sealed record UserUnmuted(EventMeta Meta, string UserId, string? Reason) : IConversationEvent;

/// <summary>A kick removes the member; with an expiry it also bars rejoining until then.</summary>
public sealed record UserKicked(EventMeta Meta, string UserId, DateTimeOffset? Until, string? Reason) : IConversationEvent;

public static class ConversationEvents
{
    /// <summary>The event with another envelope: a typed record copy (the hash chain sets prev_hash and hash this way).</summary>
    public static IConversationEvent WithMeta(this IConversationEvent e, EventMeta meta) => e switch
    {
        ConversationCreated x => x with { Meta = meta },
        ConversationUpdated x => x with { Meta = meta },
        ConversationDeleted x => x with { Meta = meta },
        MemberAdded x => x with { Meta = meta },
        MemberRemoved x => x with { Meta = meta },
        MemberRoleChanged x => x with { Meta = meta },
        MessagePosted x => x with { Meta = meta },
        MessageEdited x => x with { Meta = meta },
        MessageEnriched x => x with { Meta = meta },
        MessageDeleted x => x with { Meta = meta },
        ReactionAdded x => x with { Meta = meta },
        ReactionRemoved x => x with { Meta = meta },
        UserBanned x => x with { Meta = meta },
        UserUnbanned x => x with { Meta = meta },
        UserMuted x => x with { Meta = meta },
        UserUnmuted x => x with { Meta = meta },
        UserKicked x => x with { Meta = meta },
        CallUpdated x => x with { Meta = meta },
        _ => throw new ArgumentOutOfRangeException(nameof(e), e.GetType().Name, "Unknown conversation event."),
    };
}
