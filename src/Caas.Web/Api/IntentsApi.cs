using System.Text;
using System.Text.Json;
using Caas.Actors.Common;
using Caas.Enrichment;
using Caas.Enrichment.Intent;
using Caas.Streams.ReadModel;
using Caas.Web.Auth;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Caas.Web.Api;

/// <summary>Limits of the tenant intent-training API (<c>Caas:Intents</c> in appsettings).</summary>
public sealed record IntentApiSettings
{
    public int MaxBodyBytes { get; init; } = 8 << 20;
    /// <summary>Trainings waiting or running per node; beyond that an upload answers 429.</summary>
    public int QueueCapacity { get; init; } = 4;
    /// <summary>How often a node checks the database for a tenant's newer live model.</summary>
    public TimeSpan VersionCheck { get; init; } = TimeSpan.FromSeconds(3);
}

/// <summary>
/// A tenant's own intent model: upload labelled examples (CSV <c>text,intent</c> or JSONL), get a new version trained
/// in the background and made live for the tenant's messages on every node; list versions; roll back. Admin role.
/// </summary>
public static class IntentsApi
{
    public const string UnsupportedMediaType = "unsupported_media_type";

    /// <summary>
    /// Registers the model-backed text enrichers (intent: tenant model, else shipped, else not applicable; sentiment
    /// from the lexicon) and the tenant-model store, live cache and training queue over the operational store.
    /// </summary>
    /// <param name="withEnrichers">False (enrichment off): only the API and its store, no enrichers in the pipeline.</param>
    public static IServiceCollection AddCaasIntents(this IServiceCollection services, IntentApiSettings? settings = null, bool withEnrichers = true,
        EnrichmentOptions? enrichment = null)
    {
        settings ??= new IntentApiSettings();
        services.AddSingleton(settings);
        services.AddSingleton(sp =>
        {
            var store = sp.GetRequiredService<Caas.Streams.Operational.OperationalStore>();
            return new TenantIntentModelStore(store.OpenAsync, store.IsPostgres);
        });
        services.AddSingleton(sp => new TenantIntentModels(sp.GetRequiredService<TenantIntentModelStore>(), settings.VersionCheck,
            log: Log(sp)));
        services.AddSingleton(sp => new IntentTrainingQueue(sp.GetRequiredService<TenantIntentModelStore>(),
            sp.GetRequiredService<TenantIntentModels>(), settings.QueueCapacity, Log(sp)));
        if (!withEnrichers) return services;
        var options = enrichment ?? EnrichmentOptions.FromEnvironment() with { TrainMissingModels = false };
        services.AddSingleton(sp => ShippedIntentModel.Start(options, Log(sp)));
        services.AddSingleton<IEnricher>(sp => NodeEnrichers.CreateIntent(sp.GetRequiredService<ShippedIntentModel>(), sp.GetRequiredService<TenantIntentModels>()));
        if (NodeEnrichers.LexiconDirectory(options) is not null)
            services.AddSingleton<IEnricher>(sp => NodeEnrichers.CreateSentiment(options, Log(sp)));
        services.AddHostedService<EnricherWarmUp>();
        return services;
    }

    private static Action<string, Exception?> Log(IServiceProvider sp)
    {
        var logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("Caas.Intents");
        return (message, error) =>
        {
            if (error is null) logger.LogInformation("{Message}", message);
            else logger.LogWarning(error, "{Message}", message);
        };
    }

    public static RouteGroupBuilder MapIntents(this RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/admin/intents").WithTags("Intents");

        g.MapPost("/train", async (HttpContext http, Caller caller, IntentTrainingQueue queue, IntentApiSettings settings) =>
        {
            if (!caller.IsAdmin) return Problems.From(Rejection.Forbidden("The admin role is required."));
            if (FormatOf(http.Request.ContentType) is not { } format)
                return Problem(http, StatusCodes.Status415UnsupportedMediaType, UnsupportedMediaType,
                    "Send text/csv (text,intent) or application/x-ndjson / application/jsonl ({\"text\",\"intent\"} a line).");
            if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = settings.MaxBodyBytes;
            var body = await ReadBodyAsync(http.Request, settings.MaxBodyBytes, http.RequestAborted);
            if (body is null) return Problems.Of(ErrorCodes.PayloadTooLarge, $"A training upload is at most {settings.MaxBodyBytes >> 20} MiB.");

            var (examples, problem) = IntentTrainingData.Parse(body, format);
            if (problem is not null)
                return problem.Code == IntentDataProblem.TooManyExamples
                    ? Problem(http, StatusCodes.Status413PayloadTooLarge, problem.Code, problem.Message, problem.Line, problem.Errors)
                    : Problem(http, StatusCodes.Status400BadRequest, problem.Code, problem.Message, problem.Line, problem.Errors);

            var ticket = await queue.TrySubmitAsync(caller.TenantId, examples!, http.RequestAborted);
            if (ticket is null)
                return Problems.Of(ErrorCodes.RateLimited, "This node is busy training; retry later.", retryAfter: 30);
            return Results.Json(new
            {
                version = ticket.Version,
                status = ticket.Status,
                examples = examples!.Count,
                labels = examples.Select(e => e.Label).Distinct(StringComparer.Ordinal).Count(),
            }, Json.Options, statusCode: StatusCodes.Status202Accepted);
        });

        g.MapGet("/models", async (Caller caller, TenantIntentModelStore store, HttpContext http) =>
        {
            if (!caller.IsAdmin) return Problems.From(Rejection.Forbidden("The admin role is required."));
            var rows = await store.ListAsync(caller.TenantId, http.RequestAborted);
            return Results.Json(new { items = rows.Select(View) }, Json.Options);
        });

        g.MapGet("/models/{version:int}", async (int version, Caller caller, TenantIntentModelStore store, HttpContext http) =>
        {
            if (!caller.IsAdmin) return Problems.From(Rejection.Forbidden("The admin role is required."));
            var row = (await store.ListAsync(caller.TenantId, http.RequestAborted)).FirstOrDefault(r => r.Version == version);
            return row is null ? Problems.NotFound("intent model version") : Results.Json(View(row), Json.Options);
        });

        g.MapPost("/models/{version:int}/activate", async (int version, Caller caller, TenantIntentModelStore store, TenantIntentModels live, HttpContext http) =>
        {
            if (!caller.IsAdmin) return Problems.From(Rejection.Forbidden("The admin role is required."));
            var (activated, status) = await store.ActivateAsync(caller.TenantId, version, http.RequestAborted);
            if (activated is { } v)
            {
                await live.ActivateAsync(caller.TenantId, v, http.RequestAborted);
                return Results.Json(new { version, status, live = true }, Json.Options);
            }
            return status is null
                ? Problems.NotFound("intent model version")
                : Problems.Of(ErrorCodes.Conflict, $"Version {version} is {status}; only a ready version can be made live.");
        });
        return v1;
    }

    private static object View(TenantIntentModelRecord r)
    {
        JsonElement? metrics = r.MetricsJson is null ? null : JsonDocument.Parse(r.MetricsJson).RootElement.Clone();
        return new
        {
            version = r.Version,
            status = r.Status,
            live = r.Live,
            created_at = r.CreatedAt,
            examples = r.Examples,
            labels = r.Labels,
            held_out_accuracy = metrics is { } m && m.TryGetProperty("heldOutAccuracy", out var a) && a.ValueKind == JsonValueKind.Number ? a.GetDouble() : (double?)null,
            held_out_examples = metrics is { } m2 && m2.TryGetProperty("heldOutExamples", out var n) ? n.GetInt32() : 0,
            training_seconds = metrics is { } m3 && m3.TryGetProperty("trainingSeconds", out var s) ? s.GetDouble() : (double?)null,
            error = r.Error,
        };
    }

    private static IntentDataFormat? FormatOf(string? contentType)
    {
        var media = contentType?.Split(';')[0].Trim().ToLowerInvariant();
        return media switch
        {
            "text/csv" => IntentDataFormat.Csv,
            "application/x-ndjson" or "application/ndjson" or "application/jsonl" or "application/x-jsonlines" => IntentDataFormat.JsonLines,
            _ => null,
        };
    }

    /// <summary>The body as UTF-8 text, or null when it is over the limit (whatever Content-Length claimed).</summary>
    private static async Task<string?> ReadBodyAsync(HttpRequest request, int maxBytes, CancellationToken ct)
    {
        if (request.ContentLength > maxBytes) return null;
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        try
        {
            int read;
            while ((read = await request.Body.ReadAsync(chunk, ct)) > 0)
            {
                if (buffer.Length + read > maxBytes) return null;
                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return null;
        }
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>A problem+json body in the shape of <see cref="Problems"/>, for this API's own codes (and the line at fault).</summary>
    private static IResult Problem(HttpContext http, int status, string code, string detail, int? line = null, IReadOnlyDictionary<string, string[]>? errors = null) =>
        Results.Json(new Dictionary<string, object?>
        {
            ["instance"] = http.Request.Path.Value,
            ["request_id"] = http.TraceIdentifier,
            ["type"] = $"https://caas.dev/problems/{code}",
            ["title"] = status == StatusCodes.Status415UnsupportedMediaType ? "Unsupported media type." : "The training data is not usable.",
            ["status"] = status,
            ["detail"] = detail,
            ["code"] = code,
            ["line"] = line,
            ["errors"] = errors,
        }.Where(p => p.Value is not null).ToDictionary(), Json.Options, "application/problem+json", status);

    /// <summary>
    /// Builds the enrichers when the node starts rather than at its first message, so the shipped models begin loading
    /// (in the background) at once; the pipeline later gets these same singletons. Each text enricher then runs a few
    /// times on a sample in the background, so the first real messages do not pay for JIT, regex construction and
    /// phone metadata (which overran the enrich budget and cost them their entities).
    /// </summary>
    private sealed class EnricherWarmUp(IServiceProvider services) : Microsoft.Extensions.Hosting.IHostedService
    {
        private const string Sample = "Call me at +1 415 555 0132 or mail ops@example.com about the $1,250.00 invoice "
            + "https://example.com/i/42 before tomorrow 5pm, thanks!";

        public Task StartAsync(CancellationToken ct)
        {
            // Only CAAS's own text enrichers: a plugged-in one may call out or count its calls.
            var enrichers = services.GetServices<IEnricher>()
                .Where(e => !e.NeedsAttachment && e.GetType().Assembly == typeof(IEnricher).Assembly).ToList();
            _ = Task.Run(async () =>
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                var input = new EnrichmentInput("caas-warm-up", "warm-up", "warm-up", Sample, DateTimeOffset.UtcNow);
                for (var round = 0; round < 3; round++)
                    foreach (var enricher in enrichers)
                        try
                        {
                            await enricher.EnrichAsync(input, timeout.Token);
                        }
                        catch (Exception)
                        {
                            // A warm-up failure only means the first message pays the start-up cost, as before.
                        }
            }, CancellationToken.None);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken ct) => Task.CompletedTask;
    }
}
