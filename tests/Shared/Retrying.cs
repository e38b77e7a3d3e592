using System.Net;
using System.Net.Http.Json;

namespace Caas.Tests.Shared;

/// <summary>
/// Set-up requests as a well-behaved client sends them: a 503 (the cluster did not answer in time — shards still being
/// allocated on a node that has just started on a loaded machine — or the store breaker open) is retried after its
/// Retry-After, for at most two minutes. Only for set-up steps; a test of the 503 itself sends its request directly.
/// </summary>
public static class Retrying
{
    public static readonly TimeSpan Bound = TimeSpan.FromMinutes(2);

    public static async Task<HttpResponseMessage> PostAsJsonAsync<T>(HttpClient client, string path, T body, CancellationToken ct = default)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var response = await client.PostAsJsonAsync(path, body, ct);
            if (response.StatusCode != HttpStatusCode.ServiceUnavailable || clock.Elapsed > Bound) return response;
            var wait = response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1);
            response.Dispose();
            await Task.Delay(wait < TimeSpan.FromMilliseconds(100) ? TimeSpan.FromMilliseconds(100) : wait > TimeSpan.FromSeconds(5) ? TimeSpan.FromSeconds(5) : wait, ct);
        }
    }
}
