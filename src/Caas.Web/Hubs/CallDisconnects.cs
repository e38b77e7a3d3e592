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
        // Global hub options: the hub-specific ones are copied from them when first read, which would drop a filter added there earlier.
        services.Configure<HubOptions>(o => o.AddFilter<CallDisconnects>());
        return services;
    }
}
