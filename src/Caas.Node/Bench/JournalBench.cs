using System.CommandLine;
using System.Diagnostics;
using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Node.Bench;

/// <summary>
/// <c>caas bench</c>: C conversations × M messages through sharding into the journal with P asks in flight.
/// Prints acknowledged messages/s, acknowledgement latency percentiles and peak RSS; the last line is
/// <c>acked_per_s=N p50_ms=N p99_ms=N max_ms=N rss_mb=N</c>.
/// </summary>
public static class JournalBench
{
    public static Command Command()
    {
        var conversations = new Option<int>("--conversations") { Description = "Conversations (C).", DefaultValueFactory = _ => 1000 };
        var messages = new Option<int>("--messages") { Description = "Messages per conversation (M).", DefaultValueFactory = _ => 20 };
        var parallel = new Option<int>("--parallel") { Description = "Acknowledgements awaited at once (P).", DefaultValueFactory = _ => 512 };
        var store = new Option<string>("--store") { Description = "sqlite or postgres (CAAS_POSTGRES or --postgres).", DefaultValueFactory = _ => "sqlite" };
        var postgres = new Option<string?>("--postgres") { Description = "Npgsql connection string for --store postgres." };
        var enrich = new Option<bool>("--enrich") { Description = "Measure the text enrichers instead (throughput and p99 on one core)." };
        var replay = new Option<bool>("--replay")
        {
            Description = "Measure audit replay and read-model rebuild instead, over --events journal events (on --postgres, in a scratch database it creates and drops).",
        };
        var events = new Option<int>("--events") { Description = "Journal events for --replay.", DefaultValueFactory = _ => 200_000 };
        var command = new Command("bench", "Measure acknowledged messages/s through sharding into the journal (or, with --enrich, the enrichers; with --replay, replay and rebuild).")
            { conversations, messages, parallel, store, postgres, enrich, replay, events };
        command.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(enrich)) return Caas.Enrichment.Cli.EnrichmentCommands.Bench(Console.Out);
            var kind = parse.GetValue(store)!;
            var pg = parse.GetValue(postgres) ?? Environment.GetEnvironmentVariable("CAAS_POSTGRES");
            if (kind is not ("sqlite" or "postgres"))
            {
                Console.Error.WriteLine("--store is sqlite or postgres.");
                return 2;
            }
            if (kind == "postgres" && pg is null)
            {
                Console.Error.WriteLine("--store postgres needs --postgres or CAAS_POSTGRES.");
                return 2;
            }
            if (parse.GetValue(replay))
            {
                if (parse.GetValue(events) < 1 || parse.GetValue(conversations) < 1)
                {
                    Console.Error.WriteLine("--events and --conversations must be at least 1.");
                    return 2;
                }
                return await ReplayBench.RunAsync(kind, pg, parse.GetValue(events), parse.GetValue(conversations), ct);
            }
            var dataDir = Path.Combine(Path.GetTempPath(), "caas-bench-" + Guid.NewGuid().ToString("N"));
            var options = NodeOptions.FromEnvironment() with
            {
                DataDir = dataDir,
                Postgres = kind == "postgres" ? pg : null,
                Urls = "http://127.0.0.1:0",
                JwtSecret = new string('b', 48),
                LogLevel = "Warning",
            };
            try
            {
                return await RunAsync(options, parse.GetValue(conversations), parse.GetValue(messages), parse.GetValue(parallel), kind, ct);
            }
            finally
            {
                if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true);
            }
        });
        return command;
    }

    private static async Task<int> RunAsync(NodeOptions options, int c, int m, int p, string kind, CancellationToken ct)
    {
        await using var app = await NodeHost.BuildAsync(options);
        await app.StartAsync(ct);
        var region = await app.Services.GetRequiredService<IRequiredActor<ConversationRegion>>().GetAsync(ct);
        var tenant = "bench";
        var timeout = TimeSpan.FromSeconds(30);
        var ids = Enumerable.Range(0, c).Select(i => $"bench-{i}").ToArray();
        Console.WriteLine($"store={kind} conversations={c} messages_per_conversation={m} in_flight={p} cores={Environment.ProcessorCount}");

        using (var gate = new SemaphoreSlim(p))
            await Task.WhenAll(ids.Select(async id =>
            {
                await gate.WaitAsync(ct);
                try { await region.Ask<object>(new CreateConversation(tenant, id, "u0", ConversationTypes.Group, id, []), timeout, ct); }
                finally { gate.Release(); }
            }));

        // Round-robin over conversations so every entity has work in flight, as under real traffic.
        var total = c * m;
        var latencies = new double[total];
        var failures = 0;
        var next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, p).Select(async _ =>
        {
            while (true)
            {
                var n = Interlocked.Increment(ref next);
                if (n >= total) return;
                var id = ids[n % c];
                var started = Stopwatch.GetTimestamp();
                var reply = await region.Ask<object>(new PostMessage(tenant, id, "u0", $"m{n}", new MessageContent("text", "benchmark message " + n),
                    TimeSpan.FromHours(24)), timeout, ct);
                latencies[n] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                if (reply is not MessageAck) Interlocked.Increment(ref failures);
            }
        }));
        clock.Stop();

        Array.Sort(latencies);
        var acked = total - failures;
        var perSecond = acked / clock.Elapsed.TotalSeconds;
        var rss = Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024);
        Console.WriteLine($"acked={acked} failed={failures} seconds={clock.Elapsed.TotalSeconds:F2}");
        Console.WriteLine($"acked_per_s={perSecond:F0} p50_ms={Pct(latencies, 0.50):F1} p99_ms={Pct(latencies, 0.99):F1} max_ms={latencies[^1]:F1} rss_mb={rss}");
        await app.StopAsync(CancellationToken.None);
        return failures == 0 ? 0 : 1;
    }

    private static double Pct(double[] sorted, double q) => sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
}
