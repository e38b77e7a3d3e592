using System.Text;
using System.Text.Json;
using Akka.Actor;
using Akka.Actor.Setup;
using Caas.Actors.Conversations;
using Caas.Actors.Serialization;

namespace Caas.Actors.Privacy;

/// <summary>
/// Message content as the journal stores it: AES-256-GCM ciphertext under the author's data key
/// (<see cref="KeyId"/>). <see cref="Data"/> is base64 of nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes). Destroying
/// the key (GDPR erasure) leaves these bytes, and with them the hash chain, untouched but unreadable.
/// </summary>
public sealed record SealedContent(string KeyId, string Data);

/// <summary>An event that stores personal content sealed: the plaintext fields are not written once it is sealed.</summary>
public interface ISealable
{
    SealedContent? Sealed { get; }
}

/// <summary>
/// The per-user data keys. <see cref="Seal"/> and <see cref="Open"/> are synchronous because they run inside the
/// entity (before the hash is computed) and inside the serializer; keys are cached, so the database is reached once
/// per user (and key) and node.
/// </summary>
public interface IContentVault
{
    /// <summary>Encrypts under the user's current data key, creating one if the user has none.</summary>
    SealedContent Seal(string tenantId, string userId, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData);

    /// <summary>The plaintext, or null when the key was destroyed (the user was erased).</summary>
    byte[]? Open(string tenantId, SealedContent sealedContent, ReadOnlySpan<byte> associatedData);
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

    private sealed record SealedBody(MessageContent Content, MessageEnrichment? Enrichment);

    /// <summary>The event with its content (and enrichment, which can hold the same personal data) sealed; others as they are.</summary>
    public static IConversationEvent Seal(IConversationEvent e, IContentVault vault) => e switch
    {
        MessagePosted { Sealed: null } p => p with
        {
            Sealed = vault.Seal(p.Meta.TenantId, p.Meta.ActorId, Body(p.Content, p.Enrichment), Aad(p.Meta.TenantId, p.Meta.ActorId, p.MessageId)),
        },
        MessageEdited { Sealed: null } m => m with
        {
            Sealed = vault.Seal(m.Meta.TenantId, m.Meta.ActorId, Body(m.Content, null), Aad(m.Meta.TenantId, m.Meta.ActorId, m.MessageId)),
        },
        _ => e,
    };

    /// <summary>The event with its plaintext restored from <see cref="ISealable.Sealed"/>: erased when the key is gone.</summary>
    public static object Open(object e, IContentVault? vault) => e switch
    {
        MessagePosted { Sealed: { } s } p => OpenBody(p.Meta.TenantId, s, Aad(p.Meta.TenantId, p.Meta.ActorId, p.MessageId), vault) is var (c, en)
            ? p with { Content = c, Enrichment = en }
            : p,
        MessageEdited { Sealed: { } s } m => OpenBody(m.Meta.TenantId, s, Aad(m.Meta.TenantId, m.Meta.ActorId, m.MessageId), vault) is var (c, _)
            ? m with { Content = c }
            : m,
        _ => e,
    };

    private static (MessageContent, MessageEnrichment?) OpenBody(string tenantId, SealedContent s, byte[] aad, IContentVault? vault)
    {
        if (vault is null) return (Unavailable, null);
        var plain = vault.Open(tenantId, s, aad);
        if (plain is null) return (Erased, null);
        var body = JsonSerializer.Deserialize<SealedBody>(plain, CaasSerializer.Json)
                   ?? throw new JsonException("Sealed content opened to nothing.");
        return (body.Content, body.Enrichment);
    }

    private static byte[] Body(MessageContent content, MessageEnrichment? enrichment) =>
        JsonSerializer.SerializeToUtf8Bytes(new SealedBody(content, enrichment), CaasSerializer.Json);

    /// <summary>Binds a ciphertext to its tenant, author and message: it cannot be moved onto another event.</summary>
    public static byte[] Aad(string tenantId, string userId, string messageId) =>
        Encoding.UTF8.GetBytes(tenantId + "\n" + userId + "\n" + messageId);
}

/// <summary>Told to every node (DistributedPubSub topic <see cref="Topic"/>) when a user's data keys are destroyed.</summary>
public sealed record DataKeysDestroyed(string TenantId, string UserId, System.Collections.Immutable.ImmutableArray<string> KeyIds)
    : Common.ICaasMessage
{
    public const string Topic = "caas.data-keys";
}
