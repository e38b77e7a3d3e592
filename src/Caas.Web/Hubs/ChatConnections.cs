using System.Collections.Concurrent;
using System.Threading.Channels;
using Caas.Web.Auth;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.Logging;

namespace Caas.Web.Hubs;

/// <summary>
/// One live socket: who it is, the rooms it has joined, and its bounded outbound queue. Everything the server pushes
/// goes through the queue, written by one pump; a client that lets it fill up is closed, so a slow consumer never
/// grows the node's memory.
/// </summary>
public sealed class ChatConnection
{
    private readonly HubConnectionContext _context;
    private readonly Channel<(SerializedHubMessage Message, bool CloseAfter)> _outbox;
    private readonly ILogger _log;
    private int _closing;

    public ChatConnection(HubConnectionContext context, Caller caller, int capacity, ILogger log)
    {
        _context = context;
        _log = log;
        Caller = caller;
        _outbox = Channel.CreateBounded<(SerializedHubMessage, bool)>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _ = PumpAsync();
    }

    public string Id => _context.ConnectionId;
    public Caller Caller { get; }

    /// <summary>Conversation ids of the rooms this connection is in.</summary>
    public ConcurrentDictionary<string, byte> Rooms { get; } = new(StringComparer.Ordinal);

    public static SerializedHubMessage Message(string method, object payload) => new(new InvocationMessage(method, [payload]));

    public bool Push(string method, object payload) => Push(Message(method, payload));

    public bool Push(SerializedHubMessage message)
    {
        if (_outbox.Writer.TryWrite((message, false))) return true;
        if (Volatile.Read(ref _closing) == 0) Close("slow_consumer: the client did not keep up with its messages");
        return false;
    }

    /// <summary>Sends one last event after everything queued, then closes the connection.</summary>
    public void PushThenClose(string method, object payload)
    {
        if (!_outbox.Writer.TryWrite((Message(method, payload), true))) Close("slow_consumer");
    }

    /// <summary>Closes the connection with a reason the client sees in its close event.</summary>
    public void Close(string reason)
    {
        if (Interlocked.Exchange(ref _closing, 1) == 1) return;
        _log.LogWarning("Closing hub connection {ConnectionId} of {UserId}: {Reason}", Id, Caller.UserId, reason);
        _outbox.Writer.TryComplete();
        // The reason goes out if the socket takes it within a second; the connection is aborted either way.
        _ = _context.WriteAsync(new CloseMessage(reason, allowReconnect: false)).AsTask()
            .WaitAsync(TimeSpan.FromSeconds(1))
            .ContinueWith(_ => _context.Abort(), TaskScheduler.Default);
    }

    public void Complete() => _outbox.Writer.TryComplete();

    private async Task PumpAsync()
    {
        try
        {
            var token = _context.ConnectionAborted;
            await foreach (var (message, closeAfter) in _outbox.Reader.ReadAllAsync(token))
            {
                await _context.WriteAsync(message, token);
                if (!closeAfter) continue;
                _outbox.Writer.TryComplete();
                _context.Abort();
                return;
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            _log.LogDebug(e, "Outbound pump of {ConnectionId} ended", Id);
        }
    }
}

/// <summary>The node's live connections by id, and the SignalR connection contexts they write to.</summary>
public sealed class ChatConnections
{
    internal ConcurrentDictionary<string, HubConnectionContext> Contexts { get; } = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ChatConnection> _connections = new(StringComparer.Ordinal);

    public int Count => _connections.Count;

    public ChatConnection? Find(string connectionId) => _connections.GetValueOrDefault(connectionId);

    internal void Add(ChatConnection c) => _connections[c.Id] = c;

    internal ChatConnection? Remove(string connectionId) => _connections.TryRemove(connectionId, out var c) ? c : null;
}

/// <summary>The default (in-process) lifetime manager, which also hands each connection's context to <see cref="ChatConnections"/>.</summary>
public sealed class ChatLifetimeManager(ILogger<DefaultHubLifetimeManager<ChatHub>> logger, ChatConnections connections)
    : DefaultHubLifetimeManager<ChatHub>(logger)
{
    public override Task OnConnectedAsync(HubConnectionContext connection)
    {
        connections.Contexts[connection.ConnectionId] = connection;
        return base.OnConnectedAsync(connection);
    }

    public override Task OnDisconnectedAsync(HubConnectionContext connection)
    {
        connections.Contexts.TryRemove(connection.ConnectionId, out _);
        return base.OnDisconnectedAsync(connection);
    }
}
