using System.Threading.RateLimiting;
using Caas.Actors.Common;
using Caas.Streams.ReadModel;
using Caas.Web.Api;
using Caas.Web.Auth;
using Caas.Web.Edge;
using Caas.Web.Errors;
using Caas.Web.Turn;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Prometheus;
using Scalar.AspNetCore;
using Serilog;
using Serilog.Context;

namespace Caas.Web;

/// <summary>Per-client request limits (the per-user message rate lives in the UserSession entity).</summary>
public sealed record RequestLimits(int PermitsPerSecond = 200, int Burst = 400);

/// <summary>The web edge: REST v1, authentication, error model, request ids, limits, health, metrics, OpenAPI.</summary>
public static class CaasWeb
{
    public static IServiceCollection AddCaasWeb(this IServiceCollection services, JwtSettings jwt, EdgeSettings edge, RequestLimits limits)
    {
        MeterFilter.Apply(); // before the first scrape starts the meter adapter
        if (edge.CorsOrigins.Length == 0) edge = edge with { CorsOrigins = EdgeSettings.ParseOrigins(Environment.GetEnvironmentVariable("CAAS_CORS_ORIGINS")) };
        services.AddSingleton(edge);
        // Read from the registered settings when the policy is first needed, so a host may replace them.
        services.AddCors();
        services.AddOptions<CorsOptions>().Configure<EdgeSettings>((o, settings) => o.AddDefaultPolicy(p =>
        {
            if (settings.CorsOrigins.Length == 0) return;
            p.WithOrigins(settings.CorsOrigins)
                .WithMethods("GET", "POST", "PUT", "DELETE")
                .WithHeaders("Authorization", "Content-Type", "X-Request-Id", "X-Requested-With", "X-SignalR-User-Agent")
                .WithExposedHeaders("X-Request-Id", "Retry-After", "Location")
                // The SignalR client sends credentials on negotiate; allowed only because the origins are explicit.
                .AllowCredentials()
                .SetPreflightMaxAge(TimeSpan.FromMinutes(10));
        }));
        services.AddSingleton<ReadYourWrites>();
        services.AddSingleton<ClusterGateway>();
        services.AddCaasTurn();
        Caas.Web.Hubs.CallDisconnects.AddCaasCalls(services);
        services.AddCaasAuthentication(jwt);
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = Json.Options.PropertyNamingPolicy;
            o.SerializerOptions.DictionaryKeyPolicy = null;
        });
        services.AddOpenApi();
        services.AddSingleton(new ClientRequestLimiter(limits));
        services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(http =>
                RateLimitPartition.GetTokenBucketLimiter(
                    Caller.From(http.User) is { } c ? c.TenantId + "|" + c.UserId : http.Connection.RemoteIpAddress?.ToString() ?? "anonymous",
                    _ => new TokenBucketRateLimiterOptions
                    {
                        TokenLimit = limits.Burst,
                        TokensPerPeriod = limits.PermitsPerSecond,
                        ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                        QueueLimit = 0,
                    }));
            o.OnRejected = (ctx, _) => new ValueTask(Problems.WriteAsync(ctx.HttpContext,
                new Rejection(ErrorCodes.RateLimited, "Too many requests from this client.", RetryAfterSeconds: 1)));
        });
        return services;
    }

    /// <summary>
    /// A WebSocket opening (HTTP/1.1 upgrade or HTTP/2 extended CONNECT). Read from the request itself: the WebSocket
    /// feature (<c>HttpContext.WebSockets</c>) is only added inside SignalR's endpoint, after these middlewares.
    /// </summary>
    internal static bool IsWebSocketUpgrade(HttpContext http) =>
        (http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpUpgradeFeature>() is { IsUpgradableRequest: true }
         && http.Request.Headers.Upgrade.ToString().Contains("websocket", StringComparison.OrdinalIgnoreCase))
        || http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpExtendedConnectFeature>() is { IsExtendedConnect: true, Protocol: "websocket" };

    public static WebApplication UseCaasWeb(this WebApplication app, Func<CancellationToken, Task<IReadOnlyDictionary<string, string>>> healthChecks)
    {
        app.Use(async (http, next) =>
        {
            // A caller's request id is kept when it is sane; otherwise one is made. It travels into every log line.
            var incoming = http.Request.Headers["X-Request-Id"].ToString();
            http.TraceIdentifier = Ids.IsValid(incoming) ? incoming : Guid.NewGuid().ToString("N");
            http.Response.Headers["X-Request-Id"] = http.TraceIdentifier;
            using (LogContext.PushProperty("request_id", http.TraceIdentifier))
                await next(http);
        });
        app.Use((http, next) =>
        {
            http.Response.OnStarting(() =>
            {
                var headers = http.Response.Headers;
                headers.XContentTypeOptions = "nosniff";
                headers["Referrer-Policy"] = "no-referrer";
                // The call page is framed by the console (same origin only); nothing else may be framed.
                var framedCallPage = http.Request.Path.Equals("/console/call.html", StringComparison.Ordinal);
                headers.XFrameOptions = framedCallPage ? "SAMEORIGIN" : "DENY";
                if (!headers.ContentSecurityPolicy.Any())
                    headers.ContentSecurityPolicy = http.Request.Path.StartsWithSegments("/console")
                        ? ConsolePolicy(http.Request, framedCallPage)
                        : "frame-ancestors 'none'";
                return Task.CompletedTask;
            });
            return next(http);
        });
        app.UseCors();
        app.UseSerilogRequestLogging(o => o.EnrichDiagnosticContext = (diagnostics, http) =>
        {
            if (Caller.From(http.User) is { } caller)
            {
                diagnostics.Set("tenant_id", caller.TenantId);
                diagnostics.Set("user_id", caller.UserId);
            }
        });
        app.UseExceptionHandler(e => e.Run(http =>
        {
            var error = http.Features.Get<IExceptionHandlerFeature>()?.Error;
            if (error is not null && StoreBreaker.IsOutage(error)) return Problems.WriteAsync(http, Unavailable(http));
            return error switch
            {
                BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } =>
                    Problems.WriteAsync(http, new Rejection(ErrorCodes.PayloadTooLarge, "The request body is over its limit.")),
                // A body cut short of its Content-Length (or arriving too slowly) is the client's fault wherever it is read.
                BadHttpRequestException => Problems.WriteAsync(http, new Rejection(ErrorCodes.MalformedJson, "The request body could not be read in full.")),
                _ => Problems.WriteAsync(http, new Rejection("internal_error", "Something went wrong; the request id identifies it in the logs.")),
            };
        }));
        // While the database is known to be down (the store breaker is open), API calls answer at once instead of
        // each waiting for its own failure; health and metrics still answer.
        app.Use(async (http, next) =>
        {
            if (http.Request.Path.StartsWithSegments("/v1") && http.RequestServices.GetService<ReadModelStore>() is { Breaker.IsOpen: true })
            {
                await Problems.WriteAsync(http, Unavailable(http));
                return;
            }
            await next(http);
        });
        // A WebSocket (the hub) lives for hours inside its upgrade request: as an HTTP request it would sit in the
        // in-progress gauge for its life and put hour-long durations into the request histogram, and the metrics'
        // middleware state would be held by every connection (about 0.5 KB each). Upgrades are left out.
        app.UseWhen(http => !IsWebSocketUpgrade(http), metered => metered.UseHttpMetrics());
        app.UseAuthentication();
        app.UseRateLimiter();
        app.UseAuthorization();

        app.MapGet("/health/live", () => Results.Ok(new { status = "live" })).ExcludeFromDescription();
        app.MapGet("/health/ready", async (HttpContext http) =>
        {
            var checks = await healthChecks(http.RequestAborted);
            var ok = checks.Values.All(v => v is "ok" or "up");
            return Results.Json(new { status = ok ? "ready" : "not_ready", checks }, statusCode: ok ? 200 : 503);
        }).ExcludeFromDescription();
        app.MapGet("/health", async (HttpContext http) =>
        {
            var checks = await healthChecks(http.RequestAborted);
            var ok = checks.Values.All(v => v is "ok" or "up");
            // The shipped intent model's state (loading, training, ready, off…) informs; it never makes a node unhealthy.
            var intent = http.RequestServices.GetService<Caas.Enrichment.Intent.ShippedIntentModel>()?.State;
            return Results.Json(new { status = ok ? "healthy" : "degraded", checks, intent }, statusCode: ok ? 200 : 503);
        }).ExcludeFromDescription();
        app.MapMetrics("/metrics");
        app.MapOpenApi("/openapi/{documentName}.json");
        app.MapScalarApiReference("/docs", o => o.WithOpenApiRoutePattern("/openapi/{documentName}.json"));

        var v1 = app.MapGroup("/v1").RequireAuthorization().AddEndpointFilter(async (ctx, next) =>
            Caller.From(ctx.HttpContext.User) is null
                ? Problems.Of(ErrorCodes.Unauthenticated, "The token lacks a valid sub or tenant_id.")
                : await next(ctx));
        v1.MapConversations();
        v1.MapMessages();
        v1.MapUsers();
        v1.MapAdmin();
        v1.MapIngest();
        v1.MapDeadLetters();
        v1.MapAudit();
        v1.MapIntents();
        v1.MapTurn();
        v1.MapSearch();
        if (app.Services.GetService<Caas.Web.Media.MediaSettings>() is not null)
        {
            v1.MapMedia();
            app.MapMediaLinks();
        }
        v1.MapCalls();
        if (app.Services.GetService<Caas.Streams.Calls.RecordingReadModel>() is not null) v1.MapRecordingsAdmin();
        return app;
    }

    private static Rejection Unavailable(HttpContext http) =>
        new(ErrorCodes.Unavailable, "The database is unavailable; nothing was changed. Retry shortly.",
            RetryAfterSeconds: http.RequestServices.GetService<ReadModelStore>()?.Breaker.RetryAfter.TotalSeconds ?? 2);

    /// <summary>
    /// The console's policy: its script, style and SignalR bundle come from this origin, and it talks only to this
    /// origin's API and hub (WebSockets named explicitly: not every browser counts ws: as 'self'). It frames only this
    /// origin's call page (<c>frame-src 'self'</c>), and only the call page may be framed, by this origin.
    /// </summary>
    private static string ConsolePolicy(HttpRequest request, bool framedCallPage = false)
    {
        var ws = (request.IsHttps ? "wss://" : "ws://") + request.Host.Value;
        return $"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' {ws}; frame-src 'self'; " +
               $"base-uri 'none'; form-action 'none'; frame-ancestors {(framedCallPage ? "'self'" : "'none'")}";
    }

    /// <summary>Checks a read-model round trip; used by the health endpoints.</summary>
    public static async Task<string> CheckAsync(ReadModelStore store, CancellationToken ct)
    {
        try
        {
            await using var c = await store.OpenAsync(ct);
            await using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT 1";
            await cmd.ExecuteScalarAsync(ct);
            return "ok";
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return "down: " + e.GetType().Name;
        }
    }
}
