using System.Threading.RateLimiting;
using Caas.Actors.Common;
using Caas.Streams.ReadModel;
using Caas.Web.Api;
using Caas.Web.Auth;
using Caas.Web.Edge;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Builder;
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
        services.AddSingleton(edge);
        services.AddSingleton<ClusterGateway>();
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
            return error is BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge }
                ? Problems.WriteAsync(http, new Rejection(ErrorCodes.PayloadTooLarge, "The request body is over its limit."))
                : Problems.WriteAsync(http, new Rejection("internal_error", "Something went wrong; the request id identifies it in the logs."));
        }));
        app.UseHttpMetrics();
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
            return Results.Json(new { status = ok ? "healthy" : "degraded", checks }, statusCode: ok ? 200 : 503);
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
        return app;
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
