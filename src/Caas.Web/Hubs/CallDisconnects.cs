using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Calls;
using Caas.Web.Auth;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Caas.Web.Hubs;

/// <summary>Which of this node's connections each user is in a call with (the last one that joined).</summary>
public sealed class CallConnections
{
    private readonly ConcurrentDictionary<(string Tenant, string Conversation, string CallId, string User), string> _joinedBy = new();

    public void Joined(Caller caller, string conversationId, string callId, string connectionId) =>
        _joinedBy[(caller.TenantId, conversationId, callId, caller.UserId)] = connectionId;

    public void Gone(Caller caller, string conversationId, string callId) =>
        _joinedBy.TryRemove((caller.TenantId, conversationId, callId, caller.UserId), out _);

    /// <summary>Every call this node holds a joined connection in, with the users of those connections.</summary>
    public IEnumerable<(string Tenant, string Conversation, string CallId, IReadOnlyList<string> Users)> Calls() =>
        _joinedBy.Keys.GroupBy(k => (k.Tenant, k.Conversation, k.CallId))
            .Select(g => (g.Key.Tenant, g.Key.Conversation, g.Key.CallId, (IReadOnlyList<string>)[.. g.Select(k => k.User).Distinct()]));

    /// <summary>The calls <paramref name="connectionId"/> was the user's connection in, forgotten as they are returned.</summary>
    public IReadOnlyList<(string Conversation, string CallId)> TakeCallsOf(Caller caller, string connectionId)
    {
        var calls = new List<(string, string)>();
        foreach (var (key, connection) in _joinedBy)
            if (connection == connectionId && key.Tenant == caller.TenantId && key.User == caller.UserId
                && ((ICollection<KeyValuePair<(string, string, string, string), string>>)_joinedBy).Remove(new(key, connection)))
                calls.Add((key.Conversation, key.CallId));
        return calls;
    }
}

/// <summary>
/// A participant whose connection closes leaves their calls (reason <c>disconnected</c>), so a call whose last
/// participant disconnects ends; they may join again after a reload. A hub filter, so the hub itself is untouched.
/// </summary>
public sealed class CallDisconnects(CallConnections calls, IRequiredActor<CallRoomRegion> region, ILogger<CallDisconnects> log) : IHubFilter
{
    public async Task OnDisconnectedAsync(HubLifetimeContext context, Exception? exception, Func<HubLifetimeContext, Exception?, Task> next)
    {
        await next(context, exception);
        if (context.Context.User is not { } user || Caller.From(user) is not { } caller) return;
        foreach (var (conversation, callId) in calls.TakeCallsOf(caller, context.Context.ConnectionId))
        {
            log.LogDebug("{UserId} disconnected from call {CallId}", caller.UserId, callId);
            region.ActorRef.Tell(new LeaveCall(caller.TenantId, conversation, caller.UserId, callId, CallReasons.Disconnected), ActorRefs.NoSender);
        }
    }

    public static IServiceCollection AddCaasCalls(IServiceCollection services)
    {
        services.AddSingleton<CallConnections>();
        services.AddSingleton<CallDisconnects>();
        services.AddHostedService<CallHeartbeats>();
        // Global hub options: the hub-specific ones are copied from them when first read, which would drop a filter added there earlier.
        services.Configure<HubOptions>(o => o.AddFilter<CallDisconnects>());
        return services;
    }
}

/// <summary>
/// Vouches for this node's connections in calls: every <c>caas.calls.heartbeat-every</c> (20 s) each call it holds a
/// joined connection in gets a <see cref="CallHeartbeat"/> with their users. A call entity lets a joined participant no
/// node vouched for within its liveness timeout (65 s) leave, so the participants of a node that died leave their calls
/// (its connections never said goodbye), and the heartbeat itself brings back a call entity whose node died.
/// </summary>
public sealed class CallHeartbeats(CallConnections calls, IRequiredActor<CallRoomRegion> region, ActorSystem system, ILogger<CallHeartbeats> log)
    : Microsoft.Extensions.Hosting.BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(CallSettings.HeartbeatEvery(system.Settings.Config));
        try
        {
            var shards = await region.GetAsync(stoppingToken);
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    foreach (var (tenant, conversation, callId, users) in calls.Calls())
                        shards.Tell(new CallHeartbeat(tenant, conversation, "system", callId, users), ActorRefs.NoSender);
                }
                catch (Exception e)
                {
                    log.LogWarning(e, "Call heartbeats failed this round; the next one is in an interval");
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
