using System.Text.Json;
using Caas.Actors.Common;
using Microsoft.AspNetCore.Http;

namespace Caas.Web.Errors;

/// <summary>
/// The error model: RFC 9457 problem details with a stable <c>code</c> (DESIGN.md's table), one HTTP status per code.
/// </summary>
public static class Problems
{
    public static int StatusOf(string code) => code switch
    {
        ErrorCodes.ValidationFailed or ErrorCodes.MalformedJson or ErrorCodes.ChecksumMismatch => StatusCodes.Status400BadRequest,
        ErrorCodes.Unauthenticated => StatusCodes.Status401Unauthorized,
        ErrorCodes.Forbidden or ErrorCodes.Banned or ErrorCodes.Muted => StatusCodes.Status403Forbidden,
        ErrorCodes.NotFound => StatusCodes.Status404NotFound,
        ErrorCodes.Conflict or ErrorCodes.MessageIdConflict or ErrorCodes.MessageTooOld or ErrorCodes.LastOwner => StatusCodes.Status409Conflict,
        ErrorCodes.PayloadTooLarge or ErrorCodes.QuotaExceeded => StatusCodes.Status413PayloadTooLarge,
        ErrorCodes.UnsupportedMediaType => StatusCodes.Status415UnsupportedMediaType,
        ErrorCodes.RateLimited => StatusCodes.Status429TooManyRequests,
        ErrorCodes.Overloaded or ErrorCodes.Unavailable => StatusCodes.Status503ServiceUnavailable,
        _ => StatusCodes.Status500InternalServerError,
    };

    public static IResult From(Rejection r) => new ProblemResult(r);

    public static IResult Of(string code, string detail, IReadOnlyDictionary<string, string[]>? errors = null, double? retryAfter = null) =>
        new ProblemResult(new Rejection(code, detail, errors, retryAfter));

    public static IResult Invalid(string field, string problem) => From(Rejection.Invalid(field, problem));

    public static IResult NotFound(string what = "resource") => From(Rejection.NotFound(what));

    /// <summary>Writes a problem body directly (middleware and authentication events have no IResult pipeline).</summary>
    public static Task WriteAsync(HttpContext http, Rejection r) => new ProblemResult(r).ExecuteAsync(http);

    private sealed class ProblemResult(Rejection rejection) : IResult
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            var status = StatusOf(rejection.Code);
            http.Response.StatusCode = status;
            http.Response.ContentType = "application/problem+json";
            if (rejection.RetryAfterSeconds is { } seconds)
                http.Response.Headers.RetryAfter = ((int)Math.Ceiling(seconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var body = new Dictionary<string, object?>
            {
                ["type"] = $"https://caas.dev/problems/{rejection.Code}",
                ["title"] = Title(rejection.Code),
                ["status"] = status,
                ["detail"] = rejection.Message,
                ["code"] = rejection.Code,
                ["instance"] = http.Request.Path.Value,
                ["request_id"] = http.TraceIdentifier,
            };
            if (rejection.Errors is { Count: > 0 } errors) body["errors"] = errors;
            await JsonSerializer.SerializeAsync(http.Response.Body, body, Json.Options);
        }
    }

    private static string Title(string code) => code switch
    {
        ErrorCodes.ValidationFailed => "The request is not valid.",
        ErrorCodes.MalformedJson => "The body is not valid JSON.",
        ErrorCodes.Unauthenticated => "Authentication is required.",
        ErrorCodes.Forbidden => "Not allowed.",
        ErrorCodes.Banned => "Banned.",
        ErrorCodes.Muted => "Muted.",
        ErrorCodes.NotFound => "Not found.",
        ErrorCodes.PayloadTooLarge => "Too large.",
        ErrorCodes.QuotaExceeded => "Storage quota exceeded.",
        ErrorCodes.UnsupportedMediaType => "Unsupported media type.",
        ErrorCodes.ChecksumMismatch => "The bytes do not match their checksum.",
        ErrorCodes.RateLimited => "Too many requests.",
        ErrorCodes.Overloaded => "Overloaded; retry later.",
        ErrorCodes.Unavailable => "Unavailable; retry later.",
        _ => "Conflict.",
    };
}

public static class Json
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.Never,
    };
}
