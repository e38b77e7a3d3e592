using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Caas.Actors.Common;

/// <summary>
/// Identifiers. Tenant, user and conversation ids are restricted to a safe alphabet so that entity ids,
/// persistence ids and tags can be composed with '|' and ':' without escaping.
/// </summary>
public static partial class Ids
{
    [GeneratedRegex(@"\A[A-Za-z0-9_.@-]{1,128}\z")]
    private static partial Regex SafeId();

    public static bool IsValid(string? id) => id is not null && SafeId().IsMatch(id);

    /// <summary>A new conversation id: time-ordered (UUIDv7) so ids sort by creation.</summary>
    public static string NewConversationId() => "c_" + Guid.CreateVersion7().ToString("N");

    public static string NewMessageId() => "m_" + Guid.CreateVersion7().ToString("N");

    /// <summary>
    /// A direct conversation's id is derived from its pair, so creating it twice finds the first. Deleting it moves
    /// the pair to the next <paramref name="generation"/>: a new id with a fresh history (generation 0 keeps the
    /// original derivation, so existing pairs keep their ids).
    /// </summary>
    public static string DirectConversationId(string userA, string userB, int generation = 0)
    {
        var (a, b) = string.CompareOrdinal(userA, userB) <= 0 ? (userA, userB) : (userB, userA);
        var pair = a + "\n" + b + (generation == 0 ? string.Empty : "\n" + generation.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(pair));
        return "d_" + Convert.ToHexStringLower(hash.AsSpan(0, 16));
    }

    public static string EntityId(string tenantId, string localId) => tenantId + "|" + localId;

    public static (string TenantId, string LocalId) SplitEntityId(string entityId)
    {
        var bar = entityId.IndexOf('|');
        return bar < 0 ? (string.Empty, entityId) : (entityId[..bar], entityId[(bar + 1)..]);
    }

    public static string TenantTag(string tenantId) => "tenant:" + tenantId;
}
