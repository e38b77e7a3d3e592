using System.Collections.Concurrent;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace Caas.Actors.Common;

/// <summary>
/// Tamper evidence: every persisted event carries in its envelope <see cref="EventMeta.Hash"/> =
/// SHA-256(previous hash of the same entity, "\n", the event's stored bytes without its own hash), and
/// <see cref="EventMeta.PrevHash"/>. The stored bytes include <c>occurred_at</c> and <c>prev_hash</c>, so changing,
/// removing or reordering any event breaks a link that a verifier can name.
/// </summary>
public static class HashChain
{
    private static readonly ConcurrentDictionary<Type, (MethodInfo Clone, PropertyInfo Meta)> Accessors = new();

    // The serializer writes the envelope first and compactly, and leaves a null hash out; so the first `,"hash":` in a
    // stored event is the envelope's own (a quote inside a string value is always escaped, and "prev_hash" is
    // preceded by '_', not '"').
    private static readonly byte[] HashProperty = ",\"hash\":"u8.ToArray();

    /// <summary>The event sealed onto the chain after <paramref name="prevHash"/>; <paramref name="toBytes"/> is the journal's serializer.</summary>
    public static TEvent Seal<TEvent>(TEvent e, string? prevHash, Func<object, byte[]> toBytes) where TEvent : IDomainEvent
    {
        var open = WithMeta(e, e.Meta with { PrevHash = prevHash, Hash = null });
        return WithMeta(open, open.Meta with { Hash = Compute(prevHash, toBytes(open)) });
    }

    /// <summary>Seals a batch in order, each after the one before.</summary>
    public static IReadOnlyList<TEvent> SealAll<TEvent>(IEnumerable<TEvent> events, string? prevHash, Func<object, byte[]> toBytes)
        where TEvent : IDomainEvent
    {
        var sealedEvents = new List<TEvent>();
        foreach (var e in events)
        {
            var s = Seal(e, prevHash, toBytes);
            sealedEvents.Add(s);
            prevHash = s.Meta.Hash;
        }
        return sealedEvents;
    }

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
        const int quoted = 64 + 2;
        if (stored.Length < value + quoted || stored[value] != (byte)'"' || stored[value + quoted - 1] != (byte)'"') return false;
        hash = Encoding.ASCII.GetString(stored, value + 1, 64);
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
