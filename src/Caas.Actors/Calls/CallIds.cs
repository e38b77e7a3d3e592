using Caas.Actors.Common;

namespace Caas.Actors.Calls;

/// <summary>
/// Call ids route themselves: <c>call_&lt;32 hex&gt;_&lt;conversation id&gt;</c>, so <c>AcceptCall {call_id}</c> finds
/// its conversation's call entity without a lookup. The tenant is always the caller's, so another tenant's call id
/// finds nothing.
/// </summary>
public static class CallIds
{
    private const string Prefix = "call_";
    private const int UniqueLength = 32;

    public static string New(string conversationId) => Prefix + Guid.CreateVersion7().ToString("N") + "_" + conversationId;

    public static bool TryParse(string? callId, out string conversationId)
    {
        conversationId = string.Empty;
        if (callId is null || callId.Length > 200 || !callId.StartsWith(Prefix, StringComparison.Ordinal)) return false;
        var rest = callId.AsSpan(Prefix.Length);
        if (rest.Length < UniqueLength + 2 || rest[UniqueLength] != '_' || !rest[..UniqueLength].ContainsOnlyHex()) return false;
        var conversation = rest[(UniqueLength + 1)..].ToString();
        if (!Ids.IsValid(conversation)) return false;
        conversationId = conversation;
        return true;
    }

    private static bool ContainsOnlyHex(this ReadOnlySpan<char> s)
    {
        foreach (var c in s) if (!char.IsAsciiHexDigitLower(c)) return false;
        return true;
    }
}
