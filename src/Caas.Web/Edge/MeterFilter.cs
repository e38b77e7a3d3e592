using System.Diagnostics.Metrics;

namespace Caas.Web.Edge;

/// <summary>
/// Which of .NET's own instruments prometheus-net's meter adapter republishes on <c>/metrics</c>. Observable ones
/// (the runtime's GC, thread pool, JIT…) are read at scrape time and cost nothing in between; Kestrel's and
/// SignalR's connection instruments change once per connection, the diagnostics meter's once per unhandled exception.
/// The ASP.NET Core instruments measured on every
/// request (hosting's request duration and active requests, routing's match attempts, authentication's and
/// authorization's, the rate limiter's leases, the memory pool's rents) are left out: <c>http_request_duration_seconds</c>
/// and <c>http_requests_received_total</c> (by route and status) and the <c>caas_</c> counters already say what they
/// say, and republishing them was about 2.5% of the node's CPU under REST load (README:
/// "Metrics measured once a request").
/// </summary>
public static class MeterFilter
{
    private static readonly string[] PerRequestMeters =
    [
        "Microsoft.AspNetCore.Hosting",
        "Microsoft.AspNetCore.Routing",
        "Microsoft.AspNetCore.Authentication",
        "Microsoft.AspNetCore.Authorization",
        "Microsoft.AspNetCore.RateLimiting",
        "Microsoft.AspNetCore.MemoryPool",
    ];

    /// <summary>Whether the adapter republishes <paramref name="instrument"/>.</summary>
    public static bool Publishes(Instrument instrument) =>
        instrument.IsObservable || !PerRequestMeters.Contains(instrument.Meter.Name, StringComparer.Ordinal);

    /// <summary>Applies the filter to the default registry's meter adapter; has effect before the first scrape only.</summary>
    public static void Apply() => Prometheus.Metrics.ConfigureMeterAdapter(o => o.InstrumentFilterPredicate = Publishes);
}
