using System.Threading.RateLimiting;
using Caas.Web.Auth;
using Microsoft.AspNetCore.Http;

namespace Caas.Web;

/// <summary>
/// The per-client request budget (<see cref="RequestLimits"/>), one token bucket per signed-in user (or per address
/// when anonymous). REST requests take from it through the rate-limiting middleware and the hub's GetHistory takes
/// from the same bucket, so reading history over the hub costs what it costs over REST.
/// </summary>
public sealed class ClientRequestLimiter(RequestLimits limits) : IDisposable
{
    private readonly PartitionedRateLimiter<string> _limiter = PartitionedRateLimiter.Create<string, string>(key =>
        RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = limits.Burst,
            TokensPerPeriod = limits.PermitsPerSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
        }));

    public static string KeyOf(Caller caller) => caller.TenantId + "|" + caller.UserId;

    public static string KeyOf(HttpContext http) =>
        Caller.From(http.User) is { } c ? KeyOf(c) : http.Connection.RemoteIpAddress?.ToString() ?? "anonymous";

    /// <summary>The limiter the middleware uses (it does not own the buckets).</summary>
    public PartitionedRateLimiter<HttpContext> ForRequests() => _limiter.WithTranslatedKey<HttpContext>(KeyOf, leaveOpen: true);

    /// <summary>Takes one request's permit for a caller; null when allowed, else how long until the next one can succeed.</summary>
    public TimeSpan? TryAcquire(Caller caller)
    {
        using var lease = _limiter.AttemptAcquire(KeyOf(caller));
        if (lease.IsAcquired) return null;
        return lease.TryGetMetadata(MetadataName.RetryAfter, out var after) && after > TimeSpan.Zero ? after : TimeSpan.FromSeconds(1);
    }

    public void Dispose() => _limiter.Dispose();
}
