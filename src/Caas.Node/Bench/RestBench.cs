using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Caas.Web.Auth;

namespace Caas.Node.Bench;

/// <summary>
/// <c>caas bench-rest</c>: starts a node as a child process (<c>caas run</c>, so its memory and GC are its own; SQLite, or a
/// scratch PostgreSQL database), gives S senders a conversation each (the tenant's per-user message rate raised, so no
/// sender's limit is the bound), and posts <c>POST /v1/messages</c> from K keep-alive HTTP clients (one connection each):
/// closed loop (K requests in flight) or open loop (<c>--rate</c>), after a warm-up. A message counts when answered 201.
/// The last line is <c>acked_per_s=N p50_ms=N p99_ms=N max_ms=N rss_mb=N</c> (rss of the node).
/// </summary>
public static class RestBench
{
    private const string Tenant = "bench";

    public static Command Command()
    {
        var senders = new Option<int>("--senders") { Description = "Senders (users), each posting to a conversation of its own.", DefaultValueFactory = _ => 1_000 };
        var clients = new Option<int>("--clients") { Description = "Keep-alive HTTP clients (one connection each).", DefaultValueFactory = _ => 64 };
        var load = new LoadOptions("--in-flight", 64);
        var store = new Option<string>("--store") { Description = "sqlite or postgres (CAAS_POSTGRES or --postgres).", DefaultValueFactory = _ => "sqlite" };
        var postgres = new Option<string?>("--postgres")
        {
            Description = "Npgsql connection string of a superuser for --store postgres: the bench creates a scratch database there and drops it after.",
        };
        var command = new Command("bench-rest", "Measure REST POST /v1/messages: acknowledged messages/s and latency from many keep-alive clients, node as a child process.")
            { senders, clients, store, postgres };
        load.AddTo(command);
        senders.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 100_000) r.AddError("--senders is 1 to 100000."); });
        clients.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 4_096) r.AddError("--clients is 1 to 4096."); });
        store.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not ("sqlite" or "postgres")) r.AddError("--store is sqlite or postgres."); });
        command.SetAction(async (parse, ct) =>
        {
            var kind = parse.GetValue(store)!;
            var pg = parse.GetValue(postgres) ?? (Environment.GetEnvironmentVariable("CAAS_POSTGRES") is { Length: > 0 } e ? e : null);
            if (kind == "postgres" && pg is null)
            {
                Console.Error.WriteLine("--store postgres needs --postgres or CAAS_POSTGRES.");
                return 2;
            }
            var database = kind == "postgres" ? await ReplayBench.CreateDatabaseAsync(pg!, ct) : null;
            try
            {
                return await RunAsync(kind, database, parse.GetValue(senders), parse.GetValue(clients), load.Read(parse), ct);
            }
            finally
            {
                if (database is not null) await ReplayBench.DropDatabaseAsync(pg!, database);
            }
        });
        return command;
    }

    /// <summary>The node's JIT compilation time so far, from the runtime's meter on its <c>/metrics</c> (null when absent).</summary>
    internal static Task<double?> NodeJitSecondsAsync(HttpClient http, CancellationToken ct) =>
        NodeRuntimeValueAsync(http, "system_runtime_dotnet_jit_compilation_time ", ct);

    /// <summary>Bytes the node has allocated on its managed heap so far, from the runtime's meter (null when absent).</summary>
    internal static Task<double?> NodeAllocatedBytesAsync(HttpClient http, CancellationToken ct) =>
        NodeRuntimeValueAsync(http, "system_runtime_dotnet_gc_heap_total_allocated ", ct);

    private static async Task<double?> NodeRuntimeValueAsync(HttpClient http, string name, CancellationToken ct)
    {
        var text = await http.GetStringAsync("/metrics", ct);
        foreach (var line in text.AsSpan().EnumerateLines())
            if (line.StartsWith(name, StringComparison.Ordinal)
                && double.TryParse(line[name.Length..], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var seconds))
                return seconds;
        return null;
    }

    /// <summary>
    /// The node's enrichment outcomes since it started (warm-up included), from its <c>/metrics</c>: messages stored
    /// deferred, and each enricher's skips by reason. A run whose enrichers were skipped measured less work per
    /// message, so the line says so.
    /// </summary>
    internal static async Task<string> NodeEnrichmentAsync(HttpClient http, long sent, CancellationToken ct)
    {
        var text = await http.GetStringAsync("/metrics", ct);
        double deferred = 0;
        var skipped = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith("caas_enrichment_deferred_total ", StringComparison.Ordinal))
                deferred = double.Parse(line["caas_enrichment_deferred_total ".Length..], System.Globalization.CultureInfo.InvariantCulture);
            else if (line.StartsWith("caas_enrichment_degraded_total{", StringComparison.Ordinal)
                     && Label(line, "enricher") is { } enricher && Label(line, "why") is { } why
                     && line.LastIndexOf("} ", StringComparison.Ordinal) is > 0 and var end)
                skipped[$"{enricher}:{why}"] = double.Parse(line[(end + 2)..], System.Globalization.CultureInfo.InvariantCulture);
        }
        var skips = skipped.Count == 0 ? "none" : string.Join(" ", skipped.Select(kv => $"{kv.Key}={kv.Value:0}"));
        return $"enrichment: sent={sent} (warm-up included) deferred={deferred:0} skipped {skips}";
    }

    /// <summary>
    /// The node's own histogram of <c>POST /v1/messages</c> (prometheus-net's <c>http_request_duration_seconds</c>, every
    /// status): requests so far at or under each upper bound in seconds; null when the node exports none yet.
    /// </summary>
    internal static async Task<SortedDictionary<double, double>?> NodeMessageDurationsAsync(HttpClient http, CancellationToken ct)
    {
        var text = await http.GetStringAsync("/metrics", ct);
        var buckets = new SortedDictionary<double, double>();
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith("http_request_duration_seconds_bucket{", StringComparison.Ordinal) || Label(line, "method") != "POST"
                || Label(line, "endpoint")?.TrimEnd('/') != "/v1/messages" || Label(line, "le") is not { } le
                || line.LastIndexOf("} ", StringComparison.Ordinal) is not (> 0 and var end))
                continue;
            var bound = le == "+Inf" ? double.PositiveInfinity : double.Parse(le, System.Globalization.CultureInfo.InvariantCulture);
            buckets[bound] = buckets.GetValueOrDefault(bound) + double.Parse(line[(end + 2)..], System.Globalization.CultureInfo.InvariantCulture);
        }
        return buckets.Count == 0 ? null : buckets;
    }

    /// <summary>
    /// The <c>node_latency:</c> line: the requests the node timed itself between two snapshots of its histogram and the
    /// bounds under which half and 99% of them finished. It leaves out what the client's figure adds: the client's own
    /// scheduling and the loopback (both sharing the cores with the node here).
    /// </summary>
    internal static string? NodeLatencyLine(SortedDictionary<double, double>? start, SortedDictionary<double, double>? end)
    {
        if (end is null) return null;
        var window = end.Select(b => (Bound: b.Key, Count: b.Value - (start?.GetValueOrDefault(b.Key) ?? 0))).ToList();
        var total = window.Count == 0 ? 0 : window[^1].Count;
        if (total <= 0) return null;
        string At(double q)
        {
            var bound = window.First(b => b.Count >= q * total).Bound;
            return double.IsPositiveInfinity(bound)
                ? ">" + (window.Count > 1 ? (window[^2].Bound * 1000).ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) : "0")
                : "<=" + (bound * 1000).ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);
        }
        return FormattableString.Invariant(
            $"node_latency: requests={total:0} p50_ms{At(0.5)} p99_ms{At(0.99)} (the node's own POST /v1/messages histogram, bucket bounds; without the client and the loopback)");
    }

    // A label's value in one exposition line, wherever the exporter puts it among the labels.
    private static string? Label(string line, string name)
    {
        var m = System.Text.RegularExpressions.Regex.Match(line, $"[{{,]{name}=\"([^\"]*)\"");
        return m.Success ? m.Groups[1].Value : null;
    }

    private static async Task<int> RunAsync(string kind, string? postgres, int senderCount, int clientCount, LoadSettings load, CancellationToken ct)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "caas-bench-rest-" + Guid.NewGuid().ToString("N"));
        var jwt = new JwtSettings(Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(48)), null, null, null);
        var baseAddress = new Uri($"http://127.0.0.1:{SocketBench.FreePort()}");
        using var node = SocketBench.StartNode(dataDir, baseAddress, jwt.Secret!, postgres);
        var http = new HttpClient[clientCount];
        try
        {
            using var setup = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };
            await SocketBench.WaitUntilLiveAsync(setup, node, ct);
            Console.WriteLine($"caas bench-rest node pid={node.Id} at {baseAddress} store={kind} senders={senderCount} clients={clientCount} {load.Describe()} " +
                              $"warmup={load.Warmup.TotalSeconds:0}s settle<={load.Settle.TotalSeconds:0}s duration<={load.Duration.TotalSeconds:0}s messages<={load.Messages} " +
                              "(clients, node and database share the cores)");
            await BenchEnvironment.PrintAsync(Console.Out, postgres, ct);
            Console.WriteLine("the node runs `caas run` with the same caas.runtimeconfig.json, so the same GC mode");
            await BenchEnvironment.WaitForStartUpAsync(async t =>
            {
                using var health = await setup.GetAsync("/health", t);
                var body = await health.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(t);
                return body.TryGetProperty("intent", out var intent) && intent.ValueKind == System.Text.Json.JsonValueKind.String ? intent.GetString() : null;
            }, Console.Out, ct);

            setup.DefaultRequestHeaders.Authorization = new("Bearer", jwt.Issue(Tenant, "root", ["admin"]));
            (await setup.PutAsJsonAsync("/v1/admin/tenant/settings", new { message_rate_per_minute = 100_000, message_cap_per_hour = 1_000_000 }, ct))
                .EnsureSuccessStatusCode();

            var tokens = new AuthenticationHeaderValue[senderCount];
            var conversations = new string[senderCount];
            var clock = Stopwatch.StartNew();
            await Parallel.ForAsync(0, senderCount, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = ct }, async (i, t) =>
            {
                tokens[i] = new AuthenticationHeaderValue("Bearer", jwt.Issue(Tenant, $"sender-{i}", lifetime: TimeSpan.FromHours(4)));
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/conversations") { Content = JsonContent.Create(new { type = "group", title = $"bench {i}" }) };
                request.Headers.Authorization = tokens[i];
                using var response = await setup.SendAsync(request, t);
                response.EnsureSuccessStatusCode();
                conversations[i] = (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(t)).GetProperty("id").GetString()!;
            });
            Console.WriteLine($"created {senderCount} senders' conversations in {clock.Elapsed.TotalSeconds:F1} s");

            for (var i = 0; i < clientCount; i++)
            {
                // One connection per client, kept alive: the requests of a client go one after another on it.
                http[i] = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10) })
                {
                    BaseAddress = baseAddress,
                    Timeout = TimeSpan.FromSeconds(120),
                };
            }
            var run = Guid.NewGuid().ToString("N")[..8];
            var refused = new System.Collections.Concurrent.ConcurrentDictionary<HttpStatusCode, long>();
            long sent = 0;
            var result = await LoadRun.RunAsync(load, async (n, token) =>
            {
                Interlocked.Increment(ref sent);
                var sender = (int)(n % senderCount);
                var body = $"{{\"conversation_id\":\"{conversations[sender]}\",\"message_id\":\"{run}-{n}\",\"content\":{{\"type\":\"text\",\"text\":\"benchmark message {n}\"}}}}";
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
                request.Headers.Authorization = tokens[sender];
                using var response = await http[n % clientCount].SendAsync(request, token);
                if (response.StatusCode == HttpStatusCode.Created) return true;
                refused.AddOrUpdate(response.StatusCode, 1, (_, c) => c + 1);
                return false;
            }, () => BenchEnvironment.RssMb(node.Id), Console.Out, ct, nodeCpu: () =>
            {
                node.Refresh();
                return node.TotalProcessorTime;
            }, jit: t => NodeJitSecondsAsync(setup, t), nodeAllocated: t => NodeAllocatedBytesAsync(setup, t),
                nodeWindow: async t =>
                {
                    var start = await NodeMessageDurationsAsync(setup, t);
                    return async t2 => NodeLatencyLine(start, await NodeMessageDurationsAsync(setup, t2));
                });
            result.Print(Console.Out, "rest");
            Console.WriteLine(await NodeEnrichmentAsync(setup, Interlocked.Read(ref sent), ct));
            if (!refused.IsEmpty) Console.WriteLine("refused by status: " + string.Join(", ", refused.Select(kv => $"{(int)kv.Key}={kv.Value}")));
            Console.WriteLine(result.Summary());
            return result.Failed == 0 ? 0 : 1;
        }
        finally
        {
            foreach (var client in http) client?.Dispose();
            if (!node.HasExited)
            {
                node.Kill(entireProcessTree: true);
                await node.WaitForExitAsync(CancellationToken.None);
            }
            if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true);
        }
    }
}
