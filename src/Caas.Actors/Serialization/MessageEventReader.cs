using System.Text.Json;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Privacy;

namespace Caas.Actors.Serialization;

/// <summary>
/// A direct reader for the journal's most common rows in their stored form: a sealed <see cref="MessagePosted"/>
/// (<c>meta</c>, <c>seq</c>, <c>message_id</c>, <c>sealed</c>, and <c>enrichment_deferred</c> when set; content and
/// enrichment live inside the ciphertext), a sealed <see cref="MessageEdited"/>, a <see cref="MessageDeleted"/> and the
/// reactions. It builds exactly what <see cref="CaasSerializer"/>'s System.Text.Json contract builds, without the
/// general reader's constructor-argument frames (copied for every nested object: most of a recovery's deserialization
/// time). Anything else (plaintext content, an enrichment, an unknown or repeated property, a null or a value of another
/// kind) is declined, and the serializer reads the row the general way.
/// <para>
/// A recovery reads an entity's events one after another, and most of their strings repeat: the tenant, the actor, the
/// data key and the conversation are the previous event's, and an event's <c>prev_hash</c> is the previous event's
/// <c>hash</c>. Those are taken from the last event read on the same thread whenever their bytes are the same (the same
/// characters, so nothing a reader can tell apart), instead of a new string decoded from UTF-8 each time.
/// </para>
/// </summary>
internal static class MessageEventReader
{
    public const string Manifest = "conv.message-posted.v2";
    public const string EditedManifest = "conv.message-edited.v1";
    public const string DeletedManifest = "conv.message-deleted.v1";
    public const string ReactionAddedManifest = "conv.reaction-added.v1";
    public const string ReactionRemovedManifest = "conv.reaction-removed.v1";

    /// <summary>The top-level properties each kind may have (beyond meta, seq and message_id, which all need).</summary>
    [Flags]
    private enum Fields { None = 0, Sealed = 1, Deferred = 2, Edit = 4, Reaction = 8 }

    /// <summary>A sealed post, a sealed edit, a delete or a reaction in its stored form; null when declined.</summary>
    public static IConversationEvent? TryRead(string manifest, ReadOnlySpan<byte> json) => manifest switch
    {
        Manifest => TryRead(json, out var posted) ? posted : null,
        EditedManifest => Read(json, Fields.Sealed | Fields.Edit) is { Sealed: { } s } p
            ? new MessageEdited(p.Meta, p.Seq, p.MessageId, null!) { Sealed = s, Edit = p.Edit } : null,
        DeletedManifest => Read(json, Fields.None) is { } p ? new MessageDeleted(p.Meta, p.Seq, p.MessageId) : null,
        ReactionAddedManifest => Read(json, Fields.Reaction) is { Reaction: { } r } p ? new ReactionAdded(p.Meta, p.Seq, p.MessageId, r) : null,
        ReactionRemovedManifest => Read(json, Fields.Reaction) is { Reaction: { } r } p ? new ReactionRemoved(p.Meta, p.Seq, p.MessageId, r) : null,
        _ => null,
    };

    public static bool TryRead(ReadOnlySpan<byte> json, out MessagePosted posted)
    {
        posted = null!;
        if (Read(json, Fields.Sealed | Fields.Deferred) is not { Sealed: { } s } p) return false;
        // As the general reader builds it: Content and Enrichment are constructor arguments it did not find.
        posted = new MessagePosted(p.Meta, p.Seq, p.MessageId, null!, null) { Sealed = s, EnrichmentDeferred = p.Deferred };
        return true;
    }

    private sealed record Parts(EventMeta Meta, long Seq, string MessageId, SealedContent? Sealed, bool Deferred, int Edit, string? Reaction);

    /// <summary>The object's properties when they are meta, seq, message_id and only those of <paramref name="allowed"/>, each once.</summary>
    private static Parts? Read(ReadOnlySpan<byte> json, Fields allowed)
    {
        var reader = new Utf8JsonReader(json);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return null;
            EventMeta? meta = null;
            SealedContent? sealedContent = null;
            string? messageId = null, reaction = null;
            long seq = 0;
            var edit = 0;
            bool deferred = false, seenSeq = false, seenDeferred = false, seenEdit = false;
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.EndObject) break;
                if (reader.TokenType != JsonTokenType.PropertyName) return null;
                if (reader.ValueTextEquals("meta"u8))
                {
                    if (meta is not null || !reader.Read() || !TryReadMeta(ref reader, out meta)) return null;
                }
                else if (reader.ValueTextEquals("seq"u8))
                {
                    if (seenSeq || !reader.Read() || reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out seq)) return null;
                    seenSeq = true;
                }
                else if (reader.ValueTextEquals("message_id"u8))
                {
                    if (messageId is not null || !TryReadString(ref reader, out messageId)) return null;
                }
                else if (allowed.HasFlag(Fields.Sealed) && reader.ValueTextEquals("sealed"u8))
                {
                    if (sealedContent is not null || !reader.Read() || !TryReadSealed(ref reader, out sealedContent)) return null;
                }
                else if (allowed.HasFlag(Fields.Deferred) && reader.ValueTextEquals("enrichment_deferred"u8))
                {
                    if (seenDeferred || !reader.Read()) return null;
                    if (reader.TokenType == JsonTokenType.True) deferred = true;
                    else if (reader.TokenType != JsonTokenType.False) return null;
                    seenDeferred = true;
                }
                else if (allowed.HasFlag(Fields.Edit) && reader.ValueTextEquals("edit"u8))
                {
                    if (seenEdit || !reader.Read() || reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out edit)) return null;
                    seenEdit = true;
                }
                else if (allowed.HasFlag(Fields.Reaction) && reader.ValueTextEquals("reaction"u8))
                {
                    if (reaction is not null || !TryReadString(ref reader, out reaction)) return null;
                }
                else return null;
            }
            if (reader.TokenType != JsonTokenType.EndObject || reader.Read()) return null; // trailing content: the general reader decides
            if (meta is null || !seenSeq || messageId is null) return null;
            return new Parts(meta, seq, messageId, sealedContent, deferred, edit, reaction);
        }
        catch (JsonException)
        {
            return null; // malformed: the general reader reports it
        }
    }

    /// <summary>The strings of the last event read on this thread (see the class's remarks).</summary>
    [ThreadStatic] private static Recent? _recent;

    private sealed class Recent
    {
        public readonly LastString Tenant = new(), Actor = new(), Hash = new(), KeyId = new(), ConversationId = new();
    }

    /// <summary>One property's last value: its UTF-8 bytes and its string.</summary>
    private sealed class LastString
    {
        private byte[] _bytes = new byte[80];
        private int _length = -1;
        private string? _text;

        /// <summary>The string of the current token, the last one's when its bytes are the same; null when not a string.</summary>
        public string? Read(ref Utf8JsonReader reader)
        {
            if (reader.TokenType != JsonTokenType.String) return null;
            if (Matches(ref reader)) return _text;
            var text = reader.GetString()!;
            // An escaped value (older rows, or a rare character) is decoded as it is and not kept.
            if (!reader.ValueIsEscaped)
            {
                var span = reader.ValueSpan;
                if (span.Length > _bytes.Length) _bytes = new byte[span.Length];
                span.CopyTo(_bytes);
                _length = span.Length;
                _text = text;
            }
            return text;
        }

        /// <summary>Whether the current string token's bytes are the last value's (and not escaped).</summary>
        public bool Matches(ref Utf8JsonReader reader) =>
            _text is not null && !reader.ValueIsEscaped && reader.ValueSpan.SequenceEqual(_bytes.AsSpan(0, _length));

        /// <summary>The last value, when any.</summary>
        public string? Text => _text;
    }

    private static bool TryReadMeta(ref Utf8JsonReader reader, out EventMeta? meta)
    {
        meta = null;
        var recent = _recent ??= new Recent();
        if (reader.TokenType != JsonTokenType.StartObject) return false;
        string? tenant = null, actor = null, prevHash = null, hash = null;
        DateTimeOffset occurredAt = default;
        var seenAt = false;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            if (reader.TokenType != JsonTokenType.PropertyName) return false;
            if (reader.ValueTextEquals("tenant_id"u8)) { if (tenant is not null || !TryReadString(ref reader, recent.Tenant, out tenant)) return false; }
            else if (reader.ValueTextEquals("actor_id"u8)) { if (actor is not null || !TryReadString(ref reader, recent.Actor, out actor)) return false; }
            else if (reader.ValueTextEquals("prev_hash"u8))
            {
                // The previous event's hash, nearly always: that string, else one of its own (not kept).
                if (prevHash is not null || !reader.Read() || reader.TokenType != JsonTokenType.String) return false;
                prevHash = recent.Hash.Matches(ref reader) ? recent.Hash.Text : reader.GetString();
            }
            else if (reader.ValueTextEquals("hash"u8)) { if (hash is not null || !TryReadString(ref reader, recent.Hash, out hash)) return false; }
            else if (reader.ValueTextEquals("occurred_at"u8))
            {
                if (seenAt || !reader.Read() || reader.TokenType != JsonTokenType.String || !reader.TryGetDateTimeOffset(out occurredAt)) return false;
                seenAt = true;
            }
            else return false;
        }
        if (reader.TokenType != JsonTokenType.EndObject || tenant is null || actor is null || !seenAt) return false;
        meta = new EventMeta(tenant, actor, occurredAt, prevHash, hash);
        return true;
    }

    private static bool TryReadSealed(ref Utf8JsonReader reader, out SealedContent? sealedContent)
    {
        sealedContent = null;
        if (reader.TokenType != JsonTokenType.StartObject) return false;
        string? keyId = null, conversationId = null;
        byte[]? data = null;
        var recent = _recent ??= new Recent();
        var v = 0;
        var seenV = false;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            if (reader.TokenType != JsonTokenType.PropertyName) return false;
            if (reader.ValueTextEquals("key_id"u8)) { if (keyId is not null || !TryReadString(ref reader, recent.KeyId, out keyId)) return false; }
            else if (reader.ValueTextEquals("data"u8))
            {
                if (data is not null || !reader.Read() || reader.TokenType != JsonTokenType.String) return false;
                data = SealedBytesConverter.Read(ref reader);
            }
            else if (reader.ValueTextEquals("conversation_id"u8))
            {
                if (conversationId is not null || !TryReadString(ref reader, recent.ConversationId, out conversationId)) return false;
            }
            else if (reader.ValueTextEquals("v"u8))
            {
                if (seenV || !reader.Read() || reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out v)) return false;
                seenV = true;
            }
            else return false;
        }
        if (reader.TokenType != JsonTokenType.EndObject || keyId is null || data is null) return false;
        sealedContent = new SealedContent(keyId, data) { V = v, ConversationId = conversationId };
        return true;
    }

    /// <summary>The next value as a string, the last one's when the bytes repeat; false for anything else (a null included).</summary>
    private static bool TryReadString(ref Utf8JsonReader reader, LastString last, out string? value)
    {
        value = reader.Read() ? last.Read(ref reader) : null;
        return value is not null;
    }

    /// <summary>The next value as a string; false for anything else (a null included).</summary>
    private static bool TryReadString(ref Utf8JsonReader reader, out string? value)
    {
        value = null;
        if (!reader.Read() || reader.TokenType != JsonTokenType.String) return false;
        value = reader.GetString();
        return value is not null;
    }
}
