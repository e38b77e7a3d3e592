using Caas.Actors.Common;
using Caas.Streams.Operational;
using Caas.Web.Api;
using Caas.Web.Auth;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Caas.Web.Turn;

public sealed record TurnServerBody(string? Url, string? Secret);

/// <summary>
/// <c>GET /v1/webrtc/ice-servers</c> for every signed-in user, and the operator's TURN server list at
/// <c>/v1/admin/turn/servers</c> (list, add, drain, activate, delete; secrets are write-only).
/// </summary>
public static class TurnApi
{
    public const int MaxSecretLength = 512;

    /// <summary>The TURN settings from the environment (a host may register its own first), the list and its checks.</summary>
    public static IServiceCollection AddCaasTurn(this IServiceCollection services)
    {
        services.TryAddSingleton(_ => TurnSettings.FromEnvironment());
        services.TryAddSingleton<TurnServerStore>();
        services.AddSingleton<TurnServers>();
        services.AddHostedService(sp => sp.GetRequiredService<TurnServers>());
        return services;
    }

    public static RouteGroupBuilder MapTurn(this RouteGroupBuilder v1)
    {
        v1.MapGet("/webrtc/ice-servers", (Caller caller, TurnServers turn) =>
            Results.Ok(turn.IceServersFor(caller.UserId, DateTimeOffset.UtcNow))).WithTags("WebRTC");

        var g = v1.MapGroup("/admin/turn/servers").WithTags("WebRTC");
        g.MapGet("/", (Caller caller, TurnServers turn) =>
            !IsOperator(caller) ? Forbidden() : Results.Ok(new { items = turn.Current.Select(View).Concat(DeletedConfigured(turn)) }));

        g.MapPost("/", async (HttpRequest req, Caller caller, TurnServers turn, IServiceProvider sp) =>
        {
            if (!IsOperator(caller)) return Forbidden();
            if (sp.GetService<TurnServerStore>() is not { } store) return Problems.Of(ErrorCodes.Unavailable, "This node has no operational store.");
            var (body, error) = await Body.ReadAsync<TurnServerBody>(req);
            if (error is not null) return error;
            var errors = new Dictionary<string, string[]>();
            var uri = TurnUri.TryParse(body!.Url, out var uriError);
            if (uri is null) errors["url"] = [uriError];
            if (body.Secret is { } s && (s.Length is 0 or > MaxSecretLength || s.Any(char.IsControl)))
                errors["secret"] = [$"1 to {MaxSecretLength} printable characters."];
            if (uri is { IsTurn: true } && body.Secret is null && turn.Settings.Secret is null)
                errors["secret"] = ["Required: no shared secret (CAAS_TURN_SECRET) is configured."];
            if (errors.Count > 0) return Problems.Of(ErrorCodes.ValidationFailed, "The server is not valid.", errors);
            if (turn.Settings.Servers.Contains(uri!.Text))
                return Problems.Of(ErrorCodes.Conflict, "This URI is a configured server (CAAS_TURN_SERVERS); drain, activate or delete it by its id.");
            var now = DateTimeOffset.UtcNow;
            var row = new TurnServerRow("ts_" + Guid.CreateVersion7().ToString("N"), uri.Text, body.Secret, TurnServerStore.Active,
                TurnServerStore.FromAdmin, now, now, null);
            if (!await store.AddAsync(row, req.HttpContext.RequestAborted))
                return Problems.Of(ErrorCodes.Conflict, "A server with this URI is already listed.");
            turn.Wake();
            return Results.Created($"/v1/admin/turn/servers/{row.Id}", new
            {
                id = row.Id, url = row.Url, source = row.Source, state = row.State, has_own_secret = row.Secret is not null,
                healthy = (bool?)null, checked_at = (string?)null, latency_ms = (double?)null, error = (string?)null,
            });
        });

        g.MapPost("/{id}/drain", (string id, Caller caller, TurnServers turn, IServiceProvider sp, HttpContext http) =>
            SetStateAsync(id, caller, turn, sp, TurnServerStore.Draining, http.RequestAborted));
        g.MapPost("/{id}/activate", (string id, Caller caller, TurnServers turn, IServiceProvider sp, HttpContext http) =>
            SetStateAsync(id, caller, turn, sp, TurnServerStore.Active, http.RequestAborted));

        g.MapDelete("/{id}", async (string id, Caller caller, TurnServers turn, IServiceProvider sp, HttpContext http) =>
        {
            if (!IsOperator(caller)) return Forbidden();
            if (sp.GetService<TurnServerStore>() is not { } store) return Problems.Of(ErrorCodes.Unavailable, "This node has no operational store.");
            var (url, source) = await FindAsync(id, turn, store, http.RequestAborted);
            if (url is null) return Problems.NotFound("TURN server");
            // A configured server keeps a deleted mark (so it stays out across restarts); an operator's goes, secret and all.
            if (source == TurnServerStore.FromConfig) await store.SetAsync(id, url, source, TurnServerStore.Active, deleted: true, http.RequestAborted);
            else await store.RemoveAsync(id, http.RequestAborted);
            turn.Wake();
            return Results.NoContent();
        });
        return g;
    }

    private static async Task<IResult> SetStateAsync(string id, Caller caller, TurnServers turn, IServiceProvider sp, string state, CancellationToken ct)
    {
        if (!IsOperator(caller)) return Forbidden();
        if (sp.GetService<TurnServerStore>() is not { } store) return Problems.Of(ErrorCodes.Unavailable, "This node has no operational store.");
        var (url, source) = await FindAsync(id, turn, store, ct);
        if (url is null) return Problems.NotFound("TURN server");
        await store.SetAsync(id, url, source!, state, deleted: false, ct);
        turn.Wake();
        var known = turn.Current.FirstOrDefault(e => e.Id == id);
        return Results.Ok(known is not null
            ? View(known with { State = state })
            : new { id, url, source, state, has_own_secret = false, healthy = (bool?)null, checked_at = (string?)null, latency_ms = (double?)null, error = (string?)null });
    }

    /// <summary>A server by id, from the store itself (not the last round), so a change just made on another node counts.</summary>
    private static async Task<(string? Url, string? Source)> FindAsync(string id, TurnServers turn, TurnServerStore store, CancellationToken ct)
    {
        if (!Ids.IsValid(id)) return (null, null);
        var rows = await store.ListAsync(ct);
        if (turn.Settings.Servers.FirstOrDefault(u => TurnServers.ConfigId(u) == id) is { } configured) return (configured, TurnServerStore.FromConfig);
        return rows.FirstOrDefault(r => r.Id == id && r.Source == TurnServerStore.FromAdmin) is { } row ? (row.Url, row.Source) : (null, null);
    }

    private static IEnumerable<object> DeletedConfigured(TurnServers turn) =>
        turn.Settings.Servers.Distinct()
            .Where(u => turn.Rows.Any(r => r.Id == TurnServers.ConfigId(u) && r.DeletedAt is not null))
            .Select(u => (object)new
            {
                id = TurnServers.ConfigId(u), url = u, source = TurnServerStore.FromConfig, state = "deleted", has_own_secret = false,
                healthy = (bool?)null, checked_at = (string?)null, latency_ms = (double?)null, error = (string?)null,
            });

    private static object View(TurnServerEntry e) => new
    {
        id = e.Id,
        url = e.Uri.Text,
        source = e.Source,
        state = e.State,
        has_own_secret = e.OwnSecret,
        healthy = (bool?)e.Healthy,
        checked_at = e.CheckedAt is { } t ? Views.Utc(t) : null,
        latency_ms = e.Latency is { } l ? Math.Round(l.TotalMilliseconds, 3) : (double?)null,
        error = e.Error,
    };

    private static bool IsOperator(Caller caller) => caller.HasAnyRole("operator");

    private static IResult Forbidden() => Problems.From(Rejection.Forbidden("The operator role is required."));
}
