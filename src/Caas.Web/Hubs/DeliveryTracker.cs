using System.Collections.Concurrent;
using Caas.Actors.Common;
using Caas.Actors.Rooms;
using Caas.Actors.Sessions;
using Caas.Web.Edge;
using Microsoft.Extensions.Logging;

namespace Caas.Web.Hubs;

/// <summary>
/// Tracked delivery's acknowledgements (<c>MarkDelivered {conversation_id, event_seq}</c>), coalesced on this node: per
/// user and conversation only the highest is kept, and every <see cref="HubSettings.DeliveredFlushInterval"/> each one
/// that moved is saved to the user's session (one journal write) and announced to the room as one <c>delivered</c>
/// receipt. However often clients acknowledge, a user costs at most one write and one receipt per conversation per
/// interval, so delivery tracking never loads the journal like the messages themselves.
/// </summary>
public sealed class DeliveryTracker : IDisposable
{
    private const int ParallelSaves = 16;
    private readonly ConcurrentDictionary<(string Tenant, string User, string Conversation), long> _pending = new();
    private readonly ClusterGateway _gateway;
    private readonly Action<RoomSignal> _publish;
    private readonly string _node;
    private readonly ILogger _log;
    private readonly PeriodicTimer _timer;
    private readonly HubSettings _settings;
    private readonly ChatConnections _connections;

    public DeliveryTracker(ClusterGateway gateway, Action<RoomSignal> publish, string node, HubSettings settings, ChatConnections connections, ILogger log)
    {
        _gateway = gateway;
        _publish = publish;
        _node = node;
        _settings = settings;
        _connections = connections;
        _log = log;
        _timer = new PeriodicTimer(settings.DeliveredFlushInterval);
        _ = RunAsync();
    }

    /// <summary>Acknowledgements waiting for the next save.</summary>
    public int Pending => _pending.Count;

    public void Acknowledge(string tenantId, string userId, string conversationId, long eventSeq) =>
        _pending.AddOrUpdate((tenantId, userId, conversationId), eventSeq, (_, old) => Math.Max(old, eventSeq));

    public void Dispose() => _timer.Dispose();

    private async Task RunAsync()
    {
        while (await _timer.WaitForNextTickAsync())
        {
            try
            {
                // Tracked connections get what they have not acknowledged again, or are closed as stale.
                var now = DateTimeOffset.UtcNow;
                foreach (var connection in _connections.All) connection.CheckDelivery(now, _settings.DeliveryTimeout, _settings.DeliveryRetries);
                await FlushAsync();
            }
            catch (Exception e)
            {
                _log.LogWarning(e, "Saving delivered markers failed; they are tried again");
            }
        }
    }

    private async Task FlushAsync()
    {
        using var gate = new SemaphoreSlim(ParallelSaves);
        var saves = new List<Task>();
        foreach (var key in _pending.Keys)
        {
            if (!_pending.TryRemove(key, out var eventSeq)) continue;
            await gate.WaitAsync();
            saves.Add(SaveAsync(key, eventSeq).ContinueWith(_ => gate.Release(), TaskScheduler.Default));
        }
        await Task.WhenAll(saves);
    }

    private async Task SaveAsync((string Tenant, string User, string Conversation) key, long eventSeq)
    {
        var reply = await _gateway.AskAsync(new MarkDelivered(key.Tenant, key.User, key.Conversation, eventSeq));
        switch (reply)
        {
            case DeliveredMarker marker:
                _publish(new RoomSignal(key.Tenant, key.Conversation, RoomSignalKinds.Delivered, key.User, string.Empty, _node, null,
                    DateTimeOffset.UtcNow, marker.EventSeq));
                return;
            case Rejection { Code: ErrorCodes.Unavailable or ErrorCodes.Overloaded }:
                // Kept for the next interval (a newer acknowledgement, if any, wins).
                Acknowledge(key.Tenant, key.User, key.Conversation, eventSeq);
                return;
            default:
                _log.LogDebug("Delivered marker of {UserId} in {ConversationId} not saved: {Reply}", key.User, key.Conversation, reply);
                return;
        }
    }
}
