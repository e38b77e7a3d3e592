using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace Caas.Web.Hubs;

/// <summary>
/// Per-connection token buckets, one per hub method (<see cref="HubSettings.Limits"/>). Buckets live in one partitioned
/// limiter, which refills them on one timer and drops those of closed connections once they sit idle and full.
/// </summary>
public sealed class HubCallLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<(string ConnectionId, string Method)> _limiter;

    public HubCallLimiter(IOptions<HubSettings> options)
    {
        var settings = options.Value;
        _limiter = PartitionedRateLimiter.Create<(string ConnectionId, string Method), (string, string)>(key =>
        {
            var limit = settings.Limits.GetValueOrDefault(key.Method) ?? settings.DefaultLimit;
            return RateLimitPartition.GetTokenBucketLimiter(key, _ => Bucket(limit));
        });
    }

    /// <summary>Takes one call's permit; null when allowed, else how long until the next call can succeed.</summary>
    public TimeSpan? TryAcquire(string connectionId, string method)
    {
        using var lease = _limiter.AttemptAcquire((connectionId, method));
        return lease.IsAcquired ? null : RetryAfter(lease);
    }

    public void Dispose() => _limiter.Dispose();

    internal static TokenBucketRateLimiterOptions Bucket(HubMethodLimit limit) => new()
    {
        TokenLimit = Math.Max(1, limit.Burst),
        TokensPerPeriod = Math.Max(1, limit.PermitsPerSecond),
        ReplenishmentPeriod = TimeSpan.FromSeconds(1),
        QueueLimit = 0,
    };

    /// <summary>The limiter's own estimate, or one replenishment period when it gives none.</summary>
    internal static TimeSpan RetryAfter(RateLimitLease lease) =>
        lease.TryGetMetadata(MetadataName.RetryAfter, out var after) && after > TimeSpan.Zero ? after : TimeSpan.FromSeconds(1);
}
