using System.Text;
using System.Text.Json;
using Akka.Actor;
using Akka.Actor.Setup;
using Caas.Actors.Conversations;
using Caas.Actors.Serialization;

namespace Caas.Actors.Privacy;

/// <summary>
/// Message content as the journal stores it: AES-256-GCM ciphertext under the author's data key
/// (<see cref="KeyId"/>). <see cref="Data"/> is nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes), base64 in JSON. Destroying
/// the key (GDPR erasure) leaves these bytes, and with them the hash chain, untouched but unreadable.
/// <see cref="V"/> is the format of the associated data: absent (1) bound tenant, author and message id; 2 binds
/// tenant, <see cref="ConversationId"/>, author, message id, event type and edit number (<see cref="ContentSealing.Aad"/>).
/// </summary>
public sealed record SealedContent(
    string KeyId,
    [property: System.Text.Json.Serialization.JsonConverter(typeof(SealedBytesConverter))] byte[] Data)
{
    public const int Current = 2;

    // By value: the bytes, not the array.
    public bool Equals(SealedContent? other) =>
        other is not null && KeyId == other.KeyId && V == other.V && ConversationId == other.ConversationId && Data.AsSpan().SequenceEqual(other.Data);

    public override int GetHashCode() => HashCode.Combine(KeyId, V, ConversationId, Data.Length);

    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public int V { get; init; }

    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? ConversationId { get; init; }
}

/// <summary>
/// <see cref="SealedContent.Data"/> in JSON: base64, as always stored. A value that is not base64 (altered in storage)
/// reads as no bytes, which no key opens (<c>tampered</c>, the content unreadable), instead of failing the whole event.
/// </summary>
public sealed class SealedBytesConverter : System.Text.Json.Serialization.JsonConverter<byte[]>
{
    public override byte[] Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String
            ? Read(ref reader)
            : throw new JsonException("Sealed content's data is not a string.");

    /// <summary>The current string token's bytes (escapes undone), or none when it is not base64.</summary>
    public static byte[] Read(ref Utf8JsonReader reader) => reader.TryGetBytesFromBase64(out var bytes) ? bytes! : [];

    public override void Write(Utf8JsonWriter writer, byte[] value, JsonSerializerOptions options) => writer.WriteBase64StringValue(value);
}

/// <summary>Sealed content that cannot be opened although its key was not destroyed: the key is missing, or the bytes or their binding were altered.</summary>
public sealed class SealedContentUnreadableException(string reason, string message) : Exception(message)
{
    /// <summary><c>missing_key</c> or <c>tampered</c>.</summary>
    public string Reason { get; } = reason;
}

/// <summary>An event that stores personal content sealed: the plaintext fields are not written once it is sealed.</summary>
public interface ISealable
{
    SealedContent? Sealed { get; }
}

/// <summary>
/// The per-user data keys. <see cref="Open"/> is synchronous because it runs where content is read (opened on use);
/// <see cref="Seal"/> stays synchronous for the entity's fallback (commands that arrive unsealed), while the message
/// pipeline and the command senders seal ahead with <see cref="SealAsync"/>. Keys are cached, so the database is
/// reached once per user (and key) and node.
/// </summary>
public interface IContentVault
{
    /// <summary>Encrypts under the user's current data key, creating one if the user has none.</summary>
    SealedContent Seal(string tenantId, string userId, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData);

    /// <summary>
    /// <see cref="Seal"/> for callers off the entity (the pipeline's seal stage, the API): a key not cached is loaded
    /// (or created) without blocking a thread. A vault without async loads seals synchronously.
    /// </summary>
    ValueTask<SealedContent> SealAsync(string tenantId, string userId, ReadOnlyMemory<byte> plaintext, ReadOnlyMemory<byte> associatedData,
        CancellationToken ct = default) =>
        ValueTask.FromResult(Seal(tenantId, userId, plaintext.Span, associatedData.Span));

    /// <summary>
    /// The plaintext, or null when the key was destroyed (the user was erased). A key that is not there at all, or
    /// bytes that do not open under it, throw <see cref="SealedContentUnreadableException"/>: never read as erased.
    /// </summary>
    byte[]? Open(string tenantId, SealedContent sealedContent, ReadOnlySpan<byte> associatedData);

    /// <summary>
    /// How many times this vault has forgotten destroyed keys (an erasure here or on another node). A body opened while
    /// the count was lower may be one that can no longer be opened: events that keep what they opened open again when
    /// the count has moved, so an event held in memory (a projection's feed keeps the events it read) never answers with
    /// the content of a user erased since. A vault that destroys nothing answers 0.
    /// </summary>
    long Erasures => 0;
}

/// <summary>Hands the node's vault to its entities and its serializer (an actor-system setup, so tests may run many).</summary>
public sealed class ContentVaultSetup(IContentVault vault) : Setup
{
    public IContentVault Vault { get; } = vault;

    public static IContentVault? Of(ActorSystem system) =>
        system.Settings.Setup.Get<ContentVaultSetup>() is { HasValue: true } s ? s.Value.Vault : null;
}

/// <summary>Seals message events before they are hashed and persisted, and opens them when they are read back.</summary>
public static class ContentSealing
{
    /// <summary>The content a reader sees once the author's key is destroyed.</summary>
    public static readonly MessageContent Erased = new("erased", null);

    /// <summary>What the serializer gives back when it has no vault to open a sealed event with (a tool without one).</summary>
    public static readonly MessageContent Unavailable = new("sealed", null);

    /// <summary>
    /// Content that should open but does not (its key is missing, e.g. a key table restored from an older copy, or the
    /// ciphertext was moved or altered). Distinct from <see cref="Erased"/>: the vault logs it and counts it, and the
    /// API answers <c>content_unavailable</c>, so an operator sees it and can restore the key.
    /// </summary>
    public static readonly MessageContent Unreadable = new("content_unavailable", null);

    private sealed record SealedBody(MessageContent Content, MessageEnrichment? Enrichment);

    /// <summary>The event with its content (and enrichment, which can hold the same personal data) sealed; others as they are.</summary>
    public static IConversationEvent Seal(IConversationEvent e, IContentVault vault, string conversationId) => e switch
    {
        MessagePosted { Sealed: null } p => p with
        {
            Sealed = Stamp(vault.Seal(p.Meta.TenantId, p.Meta.ActorId, Body(p.Content, p.Enrichment), Aad(p, conversationId)), conversationId),
        },
        MessageEdited { Sealed: null } m => m with
        {
            Sealed = Stamp(vault.Seal(m.Meta.TenantId, m.Meta.ActorId, Body(m.Content, null), Aad(m, conversationId)), conversationId),
        },
        MessageEnriched { Sealed: null, Enrichment: { } en } x => x with
        {
            Sealed = Stamp(vault.Seal(x.Meta.TenantId, x.Meta.ActorId, Body(new MessageContent("enrichment", null), en), Aad(x, conversationId)), conversationId),
        },
        _ => e,
    };

    /// <summary>
    /// A post's content (and inline enrichment) sealed ahead of the entity, exactly as <see cref="Seal"/> would seal the
    /// <see cref="MessagePosted"/> the entity decides for it (same body, same associated data, same format), so the
    /// entity stores it as it is (<see cref="PostMessage.Sealed"/>) and does no key I/O and no AES for it.
    /// </summary>
    public static async ValueTask<SealedContent> SealPostAsync(IContentVault vault, string tenantId, string conversationId, string authorId,
        string messageId, MessageContent content, MessageEnrichment? enrichment, CancellationToken ct = default) =>
        Stamp(await vault.SealAsync(tenantId, authorId, Body(content, enrichment), Aad(tenantId, conversationId, authorId, messageId, "posted", 0), ct),
            conversationId);

    /// <summary>
    /// A deferred message's enrichment sealed ahead of the entity as the <see cref="MessageEnriched"/> it decides would be
    /// (<see cref="RecordEnrichment.Sealed"/>): the enrichment as recorded, i.e. no longer deferred.
    /// </summary>
    public static async ValueTask<SealedContent> SealEnrichmentAsync(IContentVault vault, string tenantId, string conversationId, string authorId,
        string messageId, MessageEnrichment enrichment, CancellationToken ct = default) =>
        Stamp(await vault.SealAsync(tenantId, authorId, Body(new MessageContent("enrichment", null), Recorded(enrichment)),
            Aad(tenantId, conversationId, authorId, messageId, "enriched", 0), ct), conversationId);

    /// <summary>Marks what the vault sealed with the current format and the conversation it is bound to (every seal does).</summary>
    private static SealedContent Stamp(SealedContent sealedContent, string conversationId) =>
        sealedContent with { V = SealedContent.Current, ConversationId = conversationId };

    /// <summary>The enrichment a <see cref="MessageEnriched"/> records: no longer deferred.</summary>
    public static MessageEnrichment Recorded(MessageEnrichment enrichment) => enrichment with { Deferred = false };

    /// <summary>The event with its plaintext restored from <see cref="ISealable.Sealed"/>: erased when the key is gone.</summary>
    public static object Open(object e, IContentVault? vault) => e switch
    {
        MessagePosted { Sealed: { } s } p => OpenBody(p.Meta.TenantId, s, AadOf(p, s), vault) is var (c, en)
            ? p with { Content = c, Enrichment = en }
            : p,
        MessageEdited { Sealed: { } s } m => OpenBody(m.Meta.TenantId, s, AadOf(m, s), vault) is var (c, _)
            ? m with { Content = c }
            : m,
        MessageEnriched { Sealed: { } s } x => x with { Enrichment = OpenBody(x.Meta.TenantId, s, Aad(x, s.ConversationId ?? string.Empty), vault).Item2 },
        _ => e,
    };

    /// <summary>
    /// Sets an event just read (nothing else has it yet) to open as <see cref="Open"/> would, but only when its content
    /// (or enrichment) is first read, and returns it: what reads only the rest (the entity's recovery, the stored form
    /// sent on <c>chat.events</c>) decrypts nothing, and what reads the content opens it once per event. A key that
    /// cannot be loaded (the database is down) throws to the reader and is tried again on the next read. Internal: it
    /// changes the event it is given, so only the serializer, which holds the event it has just made, calls it.
    /// </summary>
    internal static object OpenOnUse(object e, IContentVault? vault)
    {
        switch (e)
        {
            case MessagePosted { Sealed: not null } p:
                p.OpenOnUse(vault);
                break;
            case MessageEdited { Sealed: not null } m:
                m.OpenOnUse(vault);
                break;
            case MessageEnriched { Sealed: not null } x:
                x.OpenOnUse(vault);
                break;
        }
        return e;
    }

    /// <summary>
    /// Stores <paramref name="mine"/> as an event's opened body in place of <paramref name="seen"/> (none, or one opened
    /// before the vault's erasure count moved) and answers the body every reader shares: the first stored for the count,
    /// or <paramref name="mine"/> when the stored one is older than it.
    /// </summary>
    internal static T Publish<T>(ref T? slot, T? seen, T mine, Func<T, long> erasures) where T : class
    {
        var prior = Interlocked.CompareExchange(ref slot, mine, seen);
        if (ReferenceEquals(prior, seen)) return mine;
        return erasures(prior!) >= erasures(mine) ? prior! : mine;
    }

    internal static (MessageContent, MessageEnrichment?) OpenPosted(MessagePosted p, IContentVault? vault) =>
        OpenBody(p.Meta.TenantId, p.Sealed!, AadOf(p, p.Sealed!), vault);

    internal static MessageContent OpenEdited(MessageEdited m, IContentVault? vault) =>
        OpenBody(m.Meta.TenantId, m.Sealed!, AadOf(m, m.Sealed!), vault).Item1;

    internal static MessageEnrichment? OpenEnriched(MessageEnriched x, IContentVault? vault) =>
        OpenBody(x.Meta.TenantId, x.Sealed!, Aad(x, x.Sealed!.ConversationId ?? string.Empty), vault).Item2;

    /// <summary>
    /// The opened event as read from <paramref name="conversationId"/>'s journal: content sealed (format 2) for another
    /// conversation reads as <see cref="Unreadable"/>, never as that conversation's text. The serializer that opens an
    /// event does not know which entity it belongs to; the readers that do (projection, audit replay) check here.
    /// </summary>
    public static IConversationEvent InConversation(IConversationEvent e, string conversationId) => e switch
    {
        MessagePosted { Sealed.ConversationId: { } c } p when c != conversationId => p with { Content = Unreadable, Enrichment = null },
        MessageEdited { Sealed.ConversationId: { } c } m when c != conversationId => m with { Content = Unreadable },
        MessageEnriched { Sealed.ConversationId: { } c } x when c != conversationId => x with { Enrichment = null },
        _ => e,
    };

    private static (MessageContent, MessageEnrichment?) OpenBody(string tenantId, SealedContent s, byte[] aad, IContentVault? vault)
    {
        if (vault is null) return (Unavailable, null);
        byte[]? plain;
        try
        {
            plain = vault.Open(tenantId, s, aad);
        }
        catch (SealedContentUnreadableException)
        {
            return (Unreadable, null);
        }
        if (plain is null) return (Erased, null);
        var body = JsonSerializer.Deserialize<SealedBody>(plain, CaasSerializer.Json)
                   ?? throw new JsonException("Sealed content opened to nothing.");
        return (body.Content, body.Enrichment);
    }

    private static byte[] Body(MessageContent content, MessageEnrichment? enrichment) =>
        JsonSerializer.SerializeToUtf8Bytes(new SealedBody(content, enrichment), CaasSerializer.Json);

    /// <summary>The associated data of format 1 (tenant, author, message id): still used to open content sealed before format 2.</summary>
    public static byte[] Aad(string tenantId, string userId, string messageId) =>
        Encoding.UTF8.GetBytes(tenantId + "\n" + userId + "\n" + messageId);

    /// <summary>
    /// Format 2: binds a ciphertext to its tenant, conversation, author, message id, event type and edit number, so it
    /// cannot be moved onto another message, another conversation, or from an edit onto the post (or another edit).
    /// The journal seq is not bound: it does not exist yet when the content is sealed.
    /// </summary>
    public static byte[] Aad(string tenantId, string conversationId, string userId, string messageId, string eventType, int edit) =>
        Encoding.UTF8.GetBytes($"caas.seal.v2\n{tenantId}\n{conversationId}\n{userId}\n{messageId}\n{eventType}\n{edit}");

    private static byte[] Aad(MessagePosted p, string conversationId) =>
        Aad(p.Meta.TenantId, conversationId, p.Meta.ActorId, p.MessageId, "posted", 0);

    private static byte[] Aad(MessageEdited m, string conversationId) =>
        Aad(m.Meta.TenantId, conversationId, m.Meta.ActorId, m.MessageId, "edited", m.Edit);

    /// <summary>An enrichment is bound like an edit: to its message, its conversation, its author and its kind.</summary>
    private static byte[] Aad(MessageEnriched x, string conversationId) =>
        Aad(x.Meta.TenantId, conversationId, x.Meta.ActorId, x.MessageId, "enriched", 0);

    // The event type and edit number come from the event being read, never from the sealed record, so a ciphertext
    // swapped onto another kind of event does not open.
    private static byte[] AadOf(MessagePosted p, SealedContent s) =>
        s.V >= 2 ? Aad(p, s.ConversationId ?? string.Empty) : Aad(p.Meta.TenantId, p.Meta.ActorId, p.MessageId);

    private static byte[] AadOf(MessageEdited m, SealedContent s) =>
        s.V >= 2 ? Aad(m, s.ConversationId ?? string.Empty) : Aad(m.Meta.TenantId, m.Meta.ActorId, m.MessageId);
}

/// <summary>Told to every node (DistributedPubSub topic <see cref="Topic"/>) when a user's data keys are destroyed.</summary>
public sealed record DataKeysDestroyed(string TenantId, string UserId, System.Collections.Immutable.ImmutableArray<string> KeyIds)
    : Common.ICaasMessage
{
    public const string Topic = "caas.data-keys";
}
