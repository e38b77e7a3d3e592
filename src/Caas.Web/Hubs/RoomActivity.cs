namespace Caas.Web.Hubs;

/// <summary>
/// One room's joins, leaves and presence changes since its last tick, pushed as one <c>roomActivity</c> event:
/// <c>{conversation_id, joined: [user_id], left: [user_id], presence: [{user_id, status, last_seen}]}</c>.
/// Per user the last change in the tick wins (a user who joined and left within it is listed as left only).
/// </summary>
public sealed class RoomActivity
{
    private readonly Dictionary<string, bool> _membership = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];
    private readonly Dictionary<string, object> _presence = new(StringComparer.Ordinal);
    private readonly List<string> _presenceOrder = [];

    public bool IsEmpty => _order.Count == 0 && _presenceOrder.Count == 0;

    public void Joined(string userId) => Member(userId, true);

    public void Left(string userId) => Member(userId, false);

    public void Presence(string userId, object presence)
    {
        if (!_presence.ContainsKey(userId)) _presenceOrder.Add(userId);
        _presence[userId] = presence;
    }

    /// <summary>The tick's event, and a fresh start for the next tick.</summary>
    public object Take(string conversationId)
    {
        var payload = new
        {
            conversation_id = conversationId,
            joined = _order.Where(u => _membership[u]).ToArray(),
            left = _order.Where(u => !_membership[u]).ToArray(),
            presence = _presenceOrder.Select(u => _presence[u]).ToArray(),
        };
        _membership.Clear();
        _order.Clear();
        _presence.Clear();
        _presenceOrder.Clear();
        return payload;
    }

    private void Member(string userId, bool joined)
    {
        if (!_membership.ContainsKey(userId)) _order.Add(userId);
        _membership[userId] = joined;
    }
}
