using System.Collections.Concurrent;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace Caas.Actors.Common;

/// <summary>
/// Tamper evidence: every persisted event carries in its envelope <see cref="EventMeta.Hash"/> = a link over the
/// previous hash of the same entity, "\n", and the event's stored bytes without its own hash, and
/// <see cref="EventMeta.PrevHash"/>. The stored bytes include <c>occurred_at</c> and <c>prev_hash</c>, so changing,
/// removing or reordering any event breaks a link that a verifier can name. Two link formats: format 1 (64 hex digits)
/// is plain SHA-256, which anyone with write access to the database can recompute; format 2 (<c>k1:</c> + 64 hex
/// digits) is HMAC-SHA256 under the <see cref="AuditKey"/>, which is not in the database. Old links are never rewritten.
/// </summary>
public static class HashChain
{
    private static readonly ConcurrentDictionary<Type, (MethodInfo Clone, PropertyInfo Meta)> Accessors = new();

    // The serializer writes the envelope first and compactly, and leaves a null hash out; so the first `,"hash":` in a
    // stored event is the envelope's own (a quote inside a string value is always escaped, and "prev_hash" is
    // preceded by '_', not '"').
    private static readonly byte[] HashProperty = ",\"hash\":"u8.ToArray();

    /// <summary>The prefix of a keyed link (format 2).</summary>
    public const string KeyedPrefix = "k1:";

    public static bool IsKeyed(string? hash) => hash is not null && hash.StartsWith(KeyedPrefix, StringComparison.Ordinal);

    /// <summary>
    /// The event sealed onto the chain after <paramref name="prevHash"/>; <paramref name="toBytes"/> is the journal's
    /// serializer. With a <paramref name="key"/> the link is keyed (format 2), without one plain SHA-256 (tools, tests).
    /// </summary>
    public static TEvent Seal<TEvent>(TEvent e, string? prevHash, Func<object, byte[]> toBytes, AuditKey? key = null) where TEvent : IDomainEvent
    {
        var open = WithMeta(e, e.Meta with { PrevHash = prevHash, Hash = null });
        return WithMeta(open, open.Meta with { Hash = Link(prevHash, toBytes(open), key) });
    }

    /// <summary>Seals a batch in order, each after the one before.</summary>
    public static IReadOnlyList<TEvent> SealAll<TEvent>(IEnumerable<TEvent> events, string? prevHash, Func<object, byte[]> toBytes, AuditKey? key = null)
        where TEvent : IDomainEvent
    {
        var sealedEvents = new List<TEvent>();
        foreach (var e in events)
        {
            var s = Seal(e, prevHash, toBytes, key);
            sealedEvents.Add(s);
            prevHash = s.Meta.Hash;
        }
        return sealedEvents;
    }

    /// <summary>A keyed link under <paramref name="key"/>, or a format-1 link without one.</summary>
    public static string Link(string? prevHash, ReadOnlySpan<byte> openBytes, AuditKey? key)
    {
        if (key is null) return Compute(prevHash, openBytes);
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key.Key);
        hmac.AppendData(Encoding.UTF8.GetBytes(prevHash ?? string.Empty));
        hmac.AppendData("\n"u8);
        hmac.AppendData(openBytes);
        return KeyedPrefix + Convert.ToHexStringLower(hmac.GetHashAndReset());
    }

    /// <summary>
    /// The stored bytes of an event whose open bytes (its serialization without its own hash) are
    /// <paramref name="openBytes"/>: the same with <c>,"hash":"…"</c> added at the end of the envelope, exactly what
    /// serializing the linked event again would write (<see cref="TryOpen"/> is the inverse). So an entity serializes
    /// each event once: the link is taken over these bytes and the journal is handed them.
    /// </summary>
    public static byte[] WithHash(ReadOnlySpan<byte> openBytes, string hash)
    {
        var envelopeEnd = openBytes.IndexOf((byte)'}');
        if (envelopeEnd < 0) throw new ArgumentException("Not an event in the serializer's shape (no envelope).", nameof(openBytes));
        var property = Encoding.ASCII.GetBytes("\"" + hash + "\"");
        var stored = new byte[openBytes.Length + HashProperty.Length + property.Length];
        openBytes[..envelopeEnd].CopyTo(stored);
        HashProperty.CopyTo(stored, envelopeEnd);
        property.CopyTo(stored, envelopeEnd + HashProperty.Length);
        openBytes[envelopeEnd..].CopyTo(stored.AsSpan(envelopeEnd + HashProperty.Length + property.Length));
        return stored;
    }

    /// <summary>Whether <paramref name="hash"/> is the link over these bytes, in the format it is written in; a keyed link needs the key.</summary>
    public static bool Holds(string? prevHash, ReadOnlySpan<byte> openBytes, string hash, AuditKey? key) =>
        IsKeyed(hash) ? key is not null && Link(prevHash, openBytes, key) == hash : Compute(prevHash, openBytes) == hash;

    /// <summary>The format-1 link: plain SHA-256.</summary>
    public static string Compute(string? prevHash, ReadOnlySpan<byte> openBytes)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(Encoding.UTF8.GetBytes(prevHash ?? string.Empty));
        sha.AppendData("\n"u8);
        sha.AppendData(openBytes);
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>
    /// From an event's stored bytes: the bytes that were hashed (the same without its hash) and the hash it carries;
    /// false when the bytes carry no hash (written before the chain) or not in the serializer's shape.
    /// </summary>
    public static bool TryOpen(byte[] stored, out byte[] openBytes, out string? hash)
    {
        openBytes = stored;
        hash = null;
        // Only inside the envelope, which is written first and whose values hold no '}'.
        var envelopeEnd = stored.AsSpan().IndexOf((byte)'}');
        var at = envelopeEnd < 0 ? -1 : stored.AsSpan(0, envelopeEnd).IndexOf(HashProperty);
        if (at < 0) return false;
        var value = at + HashProperty.Length;
        var keyed = stored.AsSpan(value).StartsWith("\"k1:"u8);
        var quoted = (keyed ? KeyedPrefix.Length : 0) + 64 + 2;
        if (stored.Length < value + quoted || stored[value] != (byte)'"' || stored[value + quoted - 1] != (byte)'"') return false;
        hash = Encoding.ASCII.GetString(stored, value + 1, quoted - 2);
        openBytes = [.. stored.AsSpan(0, at), .. stored.AsSpan(value + quoted)];
        return true;
    }

    private static TEvent WithMeta<TEvent>(TEvent e, EventMeta meta) where TEvent : IDomainEvent
    {
        // Events are records: clone, then set the init-only Meta on the copy (the original is never touched).
        var (clone, property) = Accessors.GetOrAdd(e.GetType(), t => (
            t.GetMethod("<Clone>$") ?? throw new InvalidOperationException($"{t.Name} is not a record."),
            t.GetProperty(nameof(IDomainEvent.Meta)) ?? throw new InvalidOperationException($"{t.Name} has no Meta.")));
        var copy = (TEvent)clone.Invoke(e, null)!;
        property.SetValue(copy, meta);
        return copy;
    }
}
