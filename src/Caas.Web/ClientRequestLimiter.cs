using System.Threading.RateLimiting;
using Caas.Web.Auth;

namespace Caas.Web;

/// <summary>
/// A per-client request budget of the REST size (<see cref="RequestLimits"/>), one token bucket per signed-in user,
/// for hub calls that read like REST requests (GetHistory). It is a bucket of its own beside the middleware's, not
/// the same bucket.
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

    /// <summary>Takes one request's permit for a caller; null when allowed, else how long until the next one can succeed.</summary>
    public TimeSpan? TryAcquire(Caller caller)
    {
        using var lease = _limiter.AttemptAcquire(KeyOf(caller));
        if (lease.IsAcquired) return null;
        return lease.TryGetMetadata(MetadataName.RetryAfter, out var after) && after > TimeSpan.Zero ? after : TimeSpan.FromSeconds(1);
    }

    public void Dispose() => _limiter.Dispose();
}
