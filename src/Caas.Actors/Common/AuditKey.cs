using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Akka.Actor.Setup;

namespace Caas.Actors.Common;

/// <summary>
/// The key of the tamper evidence: hash-chain links (<see cref="HashChain"/>) and audit checkpoints are HMAC-SHA256
/// under it. It is never stored in the database, so a database writer who edits an event cannot recompute the links
/// or sign a checkpoint. <c>CAAS_AUDIT_KEY</c> (32 bytes, base64) when set, otherwise derived (HKDF-SHA256) from the
/// content master key.
/// </summary>
public sealed class AuditKey
{
    public AuditKey(byte[] key)
    {
        if (key.Length != 32) throw new ArgumentException("The audit key must be 32 bytes, given in base64 (CAAS_AUDIT_KEY).", nameof(key));
        Key = key;
        Id = Convert.ToHexStringLower(SHA256.HashData(key))[..16];
    }

    public byte[] Key { get; }

    /// <summary>A digest prefix that names the key in reports without revealing it.</summary>
    public string Id { get; }

    public static AuditKey FromMasterKey(byte[] masterKey) =>
        new(HKDF.DeriveKey(HashAlgorithmName.SHA256, masterKey, 32, salt: [], info: "caas.audit-key.v1"u8.ToArray()));

    public static AuditKey FromBase64(string value)
    {
        try
        {
            return new AuditKey(Convert.FromBase64String(value.Trim()));
        }
        catch (FormatException)
        {
            throw new ArgumentException("CAAS_AUDIT_KEY is not base64 (expected 32 random bytes, e.g. `openssl rand -base64 32`).");
        }
    }

    public string Mac(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(HMACSHA256.HashData(Key, data));

    public string Mac(string data) => Mac(Encoding.UTF8.GetBytes(data));
}

/// <summary>Hands the node's audit key to its entities (an actor-system setup, like the content vault's).</summary>
public sealed class AuditKeySetup(AuditKey key) : Setup
{
    public AuditKey Key { get; } = key;

    public static AuditKey? Of(ActorSystem system) =>
        system.Settings.Setup.Get<AuditKeySetup>() is { HasValue: true } s ? s.Value.Key : null;
}
