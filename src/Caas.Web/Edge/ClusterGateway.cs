using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Sessions;
using Caas.Actors.Tenants;
using Caas.Streams.ReadModel;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Http;

namespace Caas.Web.Edge;

/// <summary>Edge settings (appsettings <c>Caas:Edge</c>).</summary>
public sealed record EdgeSettings
{
    public TimeSpan AskTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>How long a read waits for the read model to hold the caller's writes before it reads the journal instead.</summary>
    public TimeSpan ReadYourWritesCap { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>Bounds of the per-caller memory of recent writes (for reads across conversations).</summary>
    public int ReadYourWritesCallers { get; init; } = 100_000;
    public int ReadYourWritesEntitiesPerCaller { get; init; } = 64;
    public TimeSpan TenantSettingsTtl { get; init; } = TimeSpan.FromSeconds(5);
    public int MaxRequestBodyBytes { get; init; } = 1 << 20;

    /// <summary>Browser origins allowed to call the API and the hub (CORS); none by default (<c>CAAS_CORS_ORIGINS</c>).</summary>
    public string[] CorsOrigins { get; init; } = [];

    /// <summary>Origins from a comma-separated list such as <c>CAAS_CORS_ORIGINS</c>: scheme://host[:port], no path.</summary>
    public static string[] ParseOrigins(string? value) =>
        (value ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(o => Uri.TryCreate(o, UriKind.Absolute, out var u) && u.Scheme is "http" or "https" && u.AbsolutePath == "/"
                         && string.IsNullOrEmpty(u.Query)
                ? u.GetLeftPart(UriPartial.Authority)
                : throw new ArgumentException($"CAAS_CORS_ORIGINS: '{o}' is not an origin (scheme://host[:port])."))
            .Distinct(StringComparer.OrdinalIgnoreCase)
            .ToArray();
}

/// <summary>
/// The web node's way into the cluster: asks the sharded entities (whichever node hosts them) and turns their
/// rejections into problem responses; waits for the read model where a client must read its own writes.
/// </summary>
public sealed class ClusterGateway(
    IRequiredActor<ConversationRegion> conversations,
    IRequiredActor<UserSessionRegion> sessions,
    IRequiredActor<TenantSettingsRegion> tenants,
    ReadModelQueries queries,
    EdgeSettings settings,
    ReadYourWrites readYourWrites)
{
    private readonly ConcurrentDictionary<string, (TenantSettingsState Settings, DateTimeOffset Until)> _tenantCache = new();

    public ReadModelQueries Queries => queries;

    public ReadYourWrites ReadYourWrites => readYourWrites;

    /// <summary>Asks the conversation; a write's acknowledgement is remembered for the caller's next read (read-your-writes).</summary>
    public async Task<object> AskAsync(IConversationCommand command, CancellationToken ct = default)
    {
        var reply = await AskAsync(conversations.ActorRef, command, ct);
        if (reply is IJournalStamped { JournalSeq: > 0 } written and not ReadAccess)
            readYourWrites.Remember(command.TenantId, command.ActorId,
                ConversationActor.PersistenceIdOf(Ids.EntityId(command.TenantId, command.ConversationId)), written.JournalSeq);
        return reply;
    }

    public Task<object> AskAsync(IUserSessionCommand command, CancellationToken ct = default) => AskAsync(sessions.ActorRef, command, ct);

    public Task<object> AskAsync(ITenantCommand command, CancellationToken ct = default) => AskAsync(tenants.ActorRef, command, ct);

    private async Task<object> AskAsync(IActorRef region, object command, CancellationToken ct)
    {
        try
        {
            return await region.Ask<object>(command, settings.AskTimeout, ct);
        }
        catch (AskTimeoutException) when (queries.Breaker.IsDown)
        {
            // The entity could not reach its journal: the database is down, not the cluster busy.
            return new Rejection(ErrorCodes.Unavailable, "The database is unavailable; retry shortly (a repeated message_id is safe).",
                RetryAfterSeconds: queries.Breaker.RetryAfter.TotalSeconds);
        }
        catch (AskTimeoutException)
        {
            return new Rejection(ErrorCodes.Overloaded, "The cluster did not answer in time; retry (a repeated message_id is safe).",
                RetryAfterSeconds: 1);
        }
    }

    /// <summary>Runs a command and maps the reply: <typeparamref name="T"/> to <paramref name="ok"/>, a rejection to a problem.</summary>
    public async Task<IResult> SendAsync<T>(IConversationCommand command, Func<T, IResult> ok, CancellationToken ct = default) =>
        Map(await AskAsync(command, ct), ok);

    public async Task<IResult> SendAsync<T>(IUserSessionCommand command, Func<T, IResult> ok, CancellationToken ct = default) =>
        Map(await AskAsync(command, ct), ok);

    public static IResult Map<T>(object reply, Func<T, IResult> ok) => reply switch
    {
        Rejection r => Problems.From(r),
        T value => ok(value),
        _ => throw new InvalidOperationException($"Unexpected reply {reply.GetType().Name}."),
    };

    public async Task<TenantSettingsState> TenantSettingsAsync(string tenantId, CancellationToken ct = default)
    {
        if (_tenantCache.TryGetValue(tenantId, out var cached) && cached.Until > DateTimeOffset.UtcNow) return cached.Settings;
        var reply = await AskAsync(new GetTenantSettings(tenantId), ct);
        if (reply is not TenantSettingsState s) return cached.Settings ?? TenantSettingsState.Default;
        _tenantCache[tenantId] = (s, DateTimeOffset.UtcNow + settings.TenantSettingsTtl);
        return s;
    }

    public void ForgetTenantSettings(string tenantId) => _tenantCache.TryRemove(tenantId, out _);

    /// <summary>
    /// Read-your-writes: waits (capped) until the read model holds every message the entity has acknowledged.
    /// The projection polls the journal, so this is usually a few tens of milliseconds.
    /// </summary>
    /// <returns>The sequence number the read model reached (below <paramref name="seq"/> only when the cap ran out).</returns>
    public async Task<long> WaitForProjectionAsync(string tenant, string conversation, long seq, CancellationToken ct)
    {
        var deadline = DateTimeOffset.UtcNow + settings.ReadYourWritesCap;
        while (true)
        {
            var projected = await queries.ProjectedSeqAsync(tenant, conversation, ct);
            if (projected >= seq || DateTimeOffset.UtcNow >= deadline) return projected;
            await Task.Delay(20, ct);
        }
    }

    /// <summary>Finds a message by its tenant-unique id, waiting briefly for a just-written one to be projected.</summary>
    public async Task<MessageRow?> FindMessageAsync(string tenant, string messageId, TimeSpan wait, CancellationToken ct)
    {
        var deadline = DateTimeOffset.UtcNow + wait;
        while (true)
        {
            var row = await queries.MessageByIdAsync(tenant, messageId, ct);
            if (row is not null || DateTimeOffset.UtcNow >= deadline) return row;
            await Task.Delay(25, ct);
        }
    }
}
