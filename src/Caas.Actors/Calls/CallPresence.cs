using System.Collections.Immutable;
using Akka.Actor;
using Caas.Actors.Common;

namespace Caas.Actors.Calls;

/// <summary>
/// Who of a tenant is joined in a call, for <c>busy</c>: one entity per tenant (<c>tenant|~busy</c>, hosted by the
/// call-room region; <c>~</c> is not allowed in a conversation id, so it never meets a conversation's calls). It is
/// derived, not stored: the call entities tell it their joined participants after every change and again every
/// <see cref="CallPresenceActor.Refresh"/> while a call is active, and an entry not refreshed within
/// <see cref="CallPresenceActor.Expiry"/> is forgotten. So a lost message, a moved or restarted entity, or a call entity
/// gone with its node heals on its own within the expiry (meanwhile a user may ring instead of being busy, or be busy
/// up to the expiry after such a failure; never for ever).
/// </summary>
public static class CallPresenceIds
{
    public const string LocalId = "~busy";

    public static string EntityId(string tenantId) => Ids.EntityId(tenantId, LocalId);

    public static bool Is(string entityId) => entityId.EndsWith("|" + LocalId, StringComparison.Ordinal);
}

/// <summary>A call's joined participants now (<paramref name="Joined"/>; empty once the call ended) and who is out of it (<paramref name="Gone"/>).</summary>
public sealed record CallPresenceUpdate(string TenantId, string CallId, IReadOnlyList<string> Joined, IReadOnlyList<string> Gone)
    : IEntityMessage, ICaasMessage
{
    [System.Text.Json.Serialization.JsonIgnore]
    public string EntityId => CallPresenceIds.EntityId(TenantId);
}

/// <summary>Which of <paramref name="UserIds"/> are joined in a call now (answered <see cref="BusyUsers"/>).</summary>
public sealed record GetBusyUsers(string TenantId, IReadOnlyList<string> UserIds) : IEntityMessage, ICaasMessage
{
    [System.Text.Json.Serialization.JsonIgnore]
    public string EntityId => CallPresenceIds.EntityId(TenantId);
}

/// <summary>The busy users and the call each is in.</summary>
public sealed record BusyUsers(IReadOnlyDictionary<string, string> CallByUser) : ICaasMessage;

/// <summary>The in-memory index of a tenant's joined participants (see <see cref="CallPresenceIds"/>).</summary>
public sealed class CallPresenceActor : ReceiveActor
{
    public static readonly TimeSpan Refresh = TimeSpan.FromSeconds(20);
    public static readonly TimeSpan Expiry = TimeSpan.FromSeconds(65);

    // user → (call → refreshed until)
    private ImmutableDictionary<string, ImmutableDictionary<string, DateTimeOffset>> _in =
        ImmutableDictionary<string, ImmutableDictionary<string, DateTimeOffset>>.Empty;

    public CallPresenceActor()
    {
        Receive<CallPresenceUpdate>(u =>
        {
            var until = DateTimeOffset.UtcNow + Expiry;
            foreach (var user in u.Gone) Remove(user, u.CallId);
            foreach (var user in u.Joined)
                _in = _in.SetItem(user, (_in.TryGetValue(user, out var calls) ? calls : ImmutableDictionary<string, DateTimeOffset>.Empty).SetItem(u.CallId, until));
            if (!Sender.IsNobody()) Sender.Tell(new Done("presence"));
        });
        Receive<GetBusyUsers>(q =>
        {
            var now = DateTimeOffset.UtcNow;
            var busy = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var user in q.UserIds.Distinct())
            {
                if (!_in.TryGetValue(user, out var calls)) continue;
                foreach (var (call, until) in calls)
                {
                    if (until < now) Remove(user, call);
                    else busy.TryAdd(user, call);
                }
            }
            Sender.Tell(new BusyUsers(busy));
        });
        // A hand-off or passivation: what is lost comes back with the call entities' next refresh.
        Receive<StopEntity>(_ => Context.Stop(Self));
    }

    private void Remove(string user, string call)
    {
        if (!_in.TryGetValue(user, out var calls)) return;
        calls = calls.Remove(call);
        _in = calls.IsEmpty ? _in.Remove(user) : _in.SetItem(user, calls);
    }

    public static Props PropsFor() => Props.Create(() => new CallPresenceActor());
}
