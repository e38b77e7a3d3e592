using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Akka.Actor;
using Akka.Streams;
using Caas.Actors.Conversations;
using Caas.Streams.DeadLetters;
using Caas.Streams.Kafka;
using Caas.Streams.Pipeline;
using Caas.Web.Auth;
using Confluent.Kafka;

namespace Caas.Node.Bench;

/// <summary>
/// <c>caas bench-pipeline --mode bulk|kafka</c>: a node in this process on PostgreSQL (or SQLite), C conversations,
/// N messages end to end into the journal. <c>bulk</c> submits through the one ingest path as the bulk source does
/// (the HTTP edge is not measured); <c>kafka</c> produces to a topic of its own and the Kafka ingest consumes it.
/// Latency is from submit (bulk) or produce (kafka) to the persisted outcome. The last line reads
/// <c>mode=M msgs_per_s=N p50_ms=N p99_ms=N lag=N rss_mb=N</c>.
/// </summary>
public static class PipelineBench
{
    private const string Tenant = "bench";

    public static Command Command()
    {
        var mode = new Option<string>("--mode") { Description = "bulk or kafka.", DefaultValueFactory = _ => "bulk" };
        var messages = new Option<int>("--messages") { Description = "Messages in all.", DefaultValueFactory = _ => 100_000 };
        var conversations = new Option<int>("--conversations") { Description = "Conversations they spread over.", DefaultValueFactory = _ => 1_000 };
        var inFlight = new Option<int>("--in-flight") { Description = "bulk: messages submitted and not yet answered.", DefaultValueFactory = _ => 5_000 };
        var postgres = new Option<string?>("--postgres") { Description = "Npgsql connection string (default CAAS_POSTGRES, else SQLite in a temp dir)." };
        var kafka = new Option<string?>("--kafka") { Description = "Bootstrap servers (default CAAS_KAFKA_BOOTSTRAP)." };
        var profile = new Option<string?>("--kafka-profile") { Description = "modern or 0.9 (default CAAS_KAFKA_PROFILE)." };
        var command = new Command("bench-pipeline", "Measure the message pipeline end to end: messages/s, ingest-to-persisted p50/p99, consumer lag, peak RSS.")
            { mode, messages, conversations, inFlight, postgres, kafka, profile };
        command.SetAction(async (parse, ct) =>
        {
            var m = parse.GetValue(mode) ?? "bulk";
            if (m is not ("bulk" or "kafka"))
            {
                Console.Error.WriteLine("--mode is bulk or kafka");
                return 2;
            }
            var bootstrap = parse.GetValue(kafka) ?? Environment.GetEnvironmentVariable("CAAS_KAFKA_BOOTSTRAP");
            if (m == "kafka" && string.IsNullOrEmpty(bootstrap))
            {
                Console.Error.WriteLine("--mode kafka needs --kafka or CAAS_KAFKA_BOOTSTRAP");
                return 2;
            }
            return await RunAsync(m, Math.Clamp(parse.GetValue(messages), 1, 10_000_000), Math.Clamp(parse.GetValue(conversations), 1, 100_000),
                Math.Clamp(parse.GetValue(inFlight), 1, 100_000), parse.GetValue(postgres) ?? Environment.GetEnvironmentVariable("CAAS_POSTGRES"),
                bootstrap, KafkaSettings.ParseProfile(parse.GetValue(profile) ?? Environment.GetEnvironmentVariable("CAAS_KAFKA_PROFILE")), ct);
        });
        return command;
    }

    private static async Task<int> RunAsync(string mode, int total, int conversationCount, int inFlight, string? postgres, string? bootstrap,
        KafkaProfile profile, CancellationToken ct)
    {
        var secret = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(48));
        var app = await NodeHost.BuildAsync(new NodeOptions
        {
            Postgres = postgres,
            DataDir = Path.Combine(Path.GetTempPath(), "caas-bench-pipeline-" + Guid.NewGuid().ToString("N")),
            Urls = "http://127.0.0.1:0",
            JwtSecret = secret,
            LogLevel = "Warning",
            RequestLimits = new Caas.Web.RequestLimits(100_000, 100_000),
        });
        await app.StartAsync(ct);
        try
        {
            var jwt = new JwtSettings(secret, null, null, null);
            using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()), Timeout = TimeSpan.FromSeconds(60) };
            http.DefaultRequestHeaders.Authorization = new("Bearer", jwt.Issue(Tenant, "alice", []));
            var ids = new string[conversationCount];
            await Parallel.ForAsync(0, conversationCount, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = ct }, async (i, t) =>
            {
                using var r = await http.PostAsJsonAsync("/v1/conversations", new { type = "group" }, t);
                r.EnsureSuccessStatusCode();
                ids[i] = JsonDocument.Parse(await r.Content.ReadAsStringAsync(t)).RootElement.GetProperty("id").GetString()!;
            });
            Console.WriteLine($"mode={mode} messages={total} conversations={conversationCount} store={(postgres is null ? "sqlite" : "postgres")} " +
                              $"cores={Environment.ProcessorCount} (producer, node and database share them)");
            var ingest = app.Services.GetRequiredService<IMessageIngest>();
            var result = mode == "bulk"
                ? await BulkAsync(ingest, ids, total, inFlight, ct)
                : await KafkaAsync(app.Services, ingest, ids, total, bootstrap!, profile, ct);
            var rssMb = Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024);
            Console.WriteLine($"persisted={result.Persisted} rejected={result.Rejected} seconds={result.Seconds:F1}");
            Console.WriteLine($"mode={mode} msgs_per_s={result.Persisted / result.Seconds:F0} p50_ms={Percentile(result.LatenciesMs, 0.50):F1} " +
                              $"p99_ms={Percentile(result.LatenciesMs, 0.99):F1} lag={result.Lag} rss_mb={rssMb}");
            return result.Persisted == total ? 0 : 1;
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
        }
    }

    private sealed record Result(int Persisted, int Rejected, double Seconds, double[] LatenciesMs, long Lag);

    private static IngestMessage Message(string[] ids, int n, string run) =>
        new(Tenant, ids[n % ids.Length], "alice", $"{run}-{n}", new MessageContent("text", $"message {n}"), IngestSource.Bulk);

    private static async Task<Result> BulkAsync(IMessageIngest ingest, string[] ids, int total, int inFlight, CancellationToken ct)
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var latencies = new double[total];
        int persisted = 0, rejected = 0;
        using var gate = new SemaphoreSlim(inFlight);
        var clock = Stopwatch.StartNew();
        var tasks = new List<Task>(total);
        for (var n = 0; n < total; n++)
        {
            await gate.WaitAsync(ct);
            var i = n;
            var started = Stopwatch.GetTimestamp();
            tasks.Add(Submit());
            async Task Submit()
            {
                try
                {
                    // Overloaded is retried with the same message_id, as a bulk client does.
                    while (true)
                    {
                        var outcome = await ingest.SubmitAsync(Message(ids, i, run), ct);
                        if (outcome is Rejected { Rejection.Code: Caas.Actors.Common.ErrorCodes.Overloaded })
                        {
                            await Task.Delay(20, ct);
                            continue;
                        }
                        latencies[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                        if (outcome is Persisted) Interlocked.Increment(ref persisted);
                        else Interlocked.Increment(ref rejected);
                        return;
                    }
                }
                finally
                {
                    gate.Release();
                }
            }
        }
        await Task.WhenAll(tasks);
        return new Result(persisted, rejected, clock.Elapsed.TotalSeconds, latencies, 0);
    }

    private static async Task<Result> KafkaAsync(IServiceProvider services, IMessageIngest ingest, string[] ids, int total, string bootstrap,
        KafkaProfile profile, CancellationToken ct)
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var settings = new KafkaSettings
        {
            Bootstrap = bootstrap,
            Profile = profile,
            GroupId = $"bench-{run}",
            MessagesTopic = $"bench-{run}.messages",
        };
        await KafkaTopics.EnsureAsync(settings, [settings.MessagesTopic], NullLoggerFor(services));
        var produced = new ConcurrentDictionary<string, long>();
        var latencies = new ConcurrentBag<double>();
        int persisted = 0, rejected = 0;
        var timing = new TimingIngest(ingest, (message, outcome) =>
        {
            if (outcome is Persisted && produced.TryGetValue(message.MessageId!, out var at))
            {
                latencies.Add(Stopwatch.GetElapsedTime(at).TotalMilliseconds);
                Interlocked.Increment(ref persisted);
            }
            else if (outcome is Rejected) Interlocked.Increment(ref rejected);
        });
        var system = services.GetRequiredService<ActorSystem>();
        var clock = Stopwatch.StartNew();
        var (control, done) = KafkaIngest.Run(settings, timing, services.GetRequiredService<DeadLetterStore>(), system.Materializer(),
            NullLoggerFor(services), "bench");
        using (var producer = new ProducerBuilder<string, string>(settings.ProducerConfig()).Build())
        {
            for (var n = 0; n < total; n++)
            {
                var m = Message(ids, n, run);
                var value = JsonSerializer.Serialize(new
                {
                    tenant_id = m.TenantId, conversation_id = m.ConversationId, sender_id = m.SenderId, message_id = m.MessageId,
                    content = new { type = "text", text = m.Content.Text },
                });
                produced[m.MessageId!] = Stopwatch.GetTimestamp();
                while (true)
                {
                    try
                    {
                        producer.Produce(settings.MessagesTopic, new Message<string, string> { Key = m.ConversationId, Value = value });
                        break;
                    }
                    catch (ProduceException<string, string> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                    {
                        producer.Poll(TimeSpan.FromMilliseconds(10));
                    }
                }
            }
            producer.Flush(TimeSpan.FromSeconds(60));
        }
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(10);
        while (persisted + rejected < total && DateTime.UtcNow < deadline) await Task.Delay(20, ct);
        var seconds = clock.Elapsed.TotalSeconds;
        // Lag once everything is persisted: the commit follows within the commit interval.
        var lag = 0L;
        for (var i = 0; i < 10; i++)
        {
            lag = KafkaConsumerControl.GroupLag(settings, settings.MessagesTopic, TimeSpan.FromSeconds(10));
            if (lag == 0) break;
            await Task.Delay(100, ct);
        }
        await control.StopAsync();
        await done;
        return new Result(persisted, rejected, seconds, [.. latencies], lag);
    }

    private static Microsoft.Extensions.Logging.ILogger NullLoggerFor(IServiceProvider services) =>
        services.GetRequiredService<ILoggerFactory>().CreateLogger("Caas.Bench");

    private static double Percentile(double[] values, double p)
    {
        if (values.Length == 0) return 0;
        var sorted = values.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
    }

    /// <summary>The ingest path with a hook on every outcome (for latency and counts).</summary>
    private sealed class TimingIngest(IMessageIngest inner, Action<IngestMessage, IngestOutcome> onOutcome) : IMessageIngest
    {
        public async Task<IngestOutcome> SubmitAsync(IngestMessage message, CancellationToken ct = default)
        {
            var outcome = await inner.SubmitAsync(message, ct);
            if (outcome is not Rejected { Rejection.Code: Caas.Actors.Common.ErrorCodes.Overloaded }) onOutcome(message, outcome);
            return outcome;
        }
    }
}
