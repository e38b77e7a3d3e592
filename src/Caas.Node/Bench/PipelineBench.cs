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
/// <c>caas bench-pipeline --mode bulk|kafka</c>: a node in this process as in production (projections and enrichment
/// on), on PostgreSQL (a scratch database) or SQLite, C conversations, messages end to end into the journal after a
/// warm-up. <c>bulk</c> submits through the one ingest path as the bulk source does (the HTTP edge is not measured),
/// closed loop or open loop (<c>--rate</c>); <c>kafka</c> produces a burst (or R/s) to a topic of its own and the Kafka
/// ingest consumes it. Latency is from submit, produce or the scheduled time to the persisted outcome. The last line
/// reads <c>mode=bulk msgs_per_s=N p50_ms=N p99_ms=N max_ms=N rss_mb=N enrichment_lag_zero_s=N enrichment_deferred=N
/// enrichment_caught_up=N enrichment_catchup_per_s=N</c> or
/// <c>mode=kafka msgs_per_s=N p50_ms=N p99_ms=N max_ms=N rss_mb=N lag_zero_s=N</c>.
/// </summary>
public static class PipelineBench
{
    private const string Tenant = "bench";

    public static Command Command()
    {
        var mode = new Option<string>("--mode") { Description = "bulk or kafka.", DefaultValueFactory = _ => "bulk" };
        var conversations = new Option<int>("--conversations") { Description = "Conversations they spread over.", DefaultValueFactory = _ => 1_000 };
        var load = new LoadOptions("--in-flight", 5_000);
        var postgres = new Option<string?>("--postgres")
        {
            Description = "Npgsql connection string of a superuser (default CAAS_POSTGRES, else SQLite in a temp dir): the bench creates a scratch database and drops it after.",
        };
        var kafka = new Option<string?>("--kafka") { Description = "Bootstrap servers (default CAAS_KAFKA_BOOTSTRAP)." };
        var profile = new Option<string?>("--kafka-profile") { Description = "modern or 0.9 (default CAAS_KAFKA_PROFILE)." };
        var command = new Command("bench-pipeline", "Measure the message pipeline end to end: messages/s, ingest-to-persisted p50/p99/max, time to lag 0, RSS.")
            { mode, conversations, postgres, kafka, profile };
        load.AddTo(command);
        mode.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not ("bulk" or "kafka")) r.AddError("--mode is bulk or kafka."); });
        conversations.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 100_000) r.AddError("--conversations is 1 to 100000."); });
        command.SetAction(async (parse, ct) =>
        {
            var m = parse.GetValue(mode) ?? "bulk";
            var bootstrap = parse.GetValue(kafka) ?? Environment.GetEnvironmentVariable("CAAS_KAFKA_BOOTSTRAP");
            if (m == "kafka" && string.IsNullOrEmpty(bootstrap))
            {
                Console.Error.WriteLine("--mode kafka needs --kafka or CAAS_KAFKA_BOOTSTRAP");
                return 2;
            }
            var pg = parse.GetValue(postgres) ?? (Environment.GetEnvironmentVariable("CAAS_POSTGRES") is { Length: > 0 } e ? e : null);
            var database = pg is null ? null : await ReplayBench.CreateDatabaseAsync(pg, ct);
            try
            {
                return await RunAsync(m, load.Read(parse), parse.GetValue(conversations), database, bootstrap,
                    KafkaSettings.ParseProfile(parse.GetValue(profile) ?? Environment.GetEnvironmentVariable("CAAS_KAFKA_PROFILE")), ct);
            }
            finally
            {
                if (database is not null) await ReplayBench.DropDatabaseAsync(pg!, database);
            }
        });
        return command;
    }

    private static async Task<int> RunAsync(string mode, LoadSettings load, int conversationCount, string? postgres, string? bootstrap,
        KafkaProfile profile, CancellationToken ct)
    {
        var secret = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(48));
        var dataDir = Path.Combine(Path.GetTempPath(), "caas-bench-pipeline-" + Guid.NewGuid().ToString("N"));
        var app = await NodeHost.BuildAsync(NodeOptions.FromEnvironment() with
        {
            Postgres = postgres,
            DataDir = dataDir,
            Urls = "http://127.0.0.1:0",
            JwtSecret = secret,
            JwtPublicKey = null,
            MasterKey = null,
            LogLevel = "Warning",
            RequestLimits = new Caas.Web.RequestLimits(100_000, 100_000),
        });
        await app.StartAsync(ct);
        // The last line, printed once the node is down so that no shutdown log line comes after it.
        string? last = null;
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
            Console.WriteLine($"caas bench-pipeline mode={mode} conversations={conversationCount} store={(postgres is null ? "sqlite" : "postgres")} " +
                              $"{(mode == "bulk" ? load.Describe() : load.Rate is { } r ? $"produced at {r:0}/s" : "produced as a burst")} " +
                              $"warmup={load.Warmup.TotalSeconds:0}s settle<={load.Settle.TotalSeconds:0}s duration<={load.Duration.TotalSeconds:0}s messages<={load.Messages} " +
                              "(producer, node and database share the cores)");
            await BenchEnvironment.PrintAsync(Console.Out, postgres, ct);
            await BenchEnvironment.WaitForStartUpAsync(app.Services, Console.Out, ct);
            var ingest = app.Services.GetRequiredService<IMessageIngest>();
            if (mode == "bulk")
            {
                var result = await BulkAsync(ingest, ids, load, ct);
                result.Print(Console.Out, "bulk");
                var lagZero = await EnrichmentLagZeroAsync(TimeSpan.FromMinutes(10), ct);
                // Enricher runs skipped in the whole run (inline and deferred; warm-up included): a catch-up that skipped
                // enrichers did less work per message.
                var skips = EnrichStage.Skips().OrderBy(s => s.Enricher, StringComparer.Ordinal).ThenBy(s => s.Why, StringComparer.Ordinal)
                    .Select(s => FormattableString.Invariant($"{s.Enricher}:{s.Why}={s.Count:0}")).ToList();
                Console.WriteLine("enrichment: skipped " + (skips.Count == 0 ? "none" : string.Join(" ", skips)));
                last = $"mode=bulk {result.Summary("msgs_per_s")} enrichment_lag_zero_s={lagZero}";
                return result.Failed == 0 ? 0 : 1;
            }
            var (code, line) = await KafkaAsync(app.Services, ingest, ids, load, bootstrap!, profile, ct);
            last = line;
            return code;
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true);
            if (last is not null) Console.WriteLine(last);
        }
    }

    private static IngestMessage Message(string[] ids, long n, string run) =>
        new(Tenant, ids[n % ids.Length], "alice", $"{run}-{n}", new MessageContent("text", $"message {n}"), IngestSource.Bulk);

    private static Task<LoadResult> BulkAsync(IMessageIngest ingest, string[] ids, LoadSettings load, CancellationToken ct, TextWriter? log = null)
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        return LoadRun.RunAsync(load, async (n, token) =>
        {
            // Overloaded is retried with the same message_id, as a bulk client does; the wait counts in its latency.
            while (true)
            {
                var outcome = await ingest.SubmitAsync(Message(ids, n, run), token);
                if (outcome is Rejected { Rejection.Code: Caas.Actors.Common.ErrorCodes.Overloaded })
                {
                    await Task.Delay(20, token);
                    continue;
                }
                return outcome is Persisted;
            }
        }, BenchEnvironment.SelfRssMb, log ?? Console.Out, ct);
    }

    /// <summary>
    /// The seconds until the node's enrichment lag (<c>caas_enrichment_lag_messages</c> and <c>…_lag_seconds</c>) reads 0
    /// after the load stopped, and the catch-up rate: deferred enrichments recorded meanwhile
    /// (<c>caas_enrichment_deferred_recorded_total</c>) per second; "timeout" when it is not 0 in time. The node runs in
    /// this process, so the metrics are read from their objects every 100 ms: scraping its <c>/metrics</c> that often (as
    /// this bench did) took about 4% of the CPU of the catch-up it measured (a profile of one: the whole exposition, and
    /// the process collector's open-handle count, a <c>stat</c> per open file). The lag gauges are sampled once a second,
    /// so the time has that resolution.
    /// </summary>
    private static async Task<string> EnrichmentLagZeroAsync(TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var recordedAtStart = EnrichmentProjection.Recorded.Value;
        var deferredAtStart = EnrichmentProjection.Deferred.Value;
        while (true)
        {
            if (EnrichmentProjection.LagMessages.Value == 0 && EnrichmentProjection.LagSeconds.Value == 0)
            {
                var seconds = clock.Elapsed.TotalSeconds;
                var caughtUp = EnrichmentProjection.Recorded.Value - recordedAtStart;
                var rate = seconds > 0 ? caughtUp / seconds : 0;
                return string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"{seconds:F1} enrichment_deferred={deferredAtStart:F0} enrichment_caught_up={caughtUp:F0} enrichment_catchup_per_s={rate:F0}");
            }
            if (clock.Elapsed > timeout) return "timeout";
            await Task.Delay(100, ct);
        }
    }

    private static async Task<(int Code, string LastLine)> KafkaAsync(IServiceProvider services, IMessageIngest ingest, string[] ids, LoadSettings load, string bootstrap,
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
        // The node's own limits, as CAAS_KAFKA_* give them to a node.
        settings = settings.WithTuning(Environment.GetEnvironmentVariable);
        Console.WriteLine($"kafka: per_conversation={settings.PerConversationInFlight} parallelism={settings.Parallelism} max_pending_per_partition={settings.MaxPendingPerPartition} max_held={settings.MaxHeld}");
        await KafkaTopics.EnsureAsync(settings, [settings.MessagesTopic], NullLoggerFor(services));

        // Warm-up: the node's path (entities, journal, projections) through the ingest, then a few records through Kafka so
        // the consumer is assigned and running before the burst.
        if (load.Warmup > TimeSpan.Zero)
        {
            // Its own phase figures (gc, cpu, jit) are not printed: the Kafka phase's are, below.
            var warm = await BulkAsync(ingest, ids, load with { Duration = load.Warmup, Messages = long.MaxValue, Rate = null, Warmup = TimeSpan.Zero,
                InFlight = 1_000 }, ct, TextWriter.Null);
            Console.WriteLine($"warm-up: {warm.Acked} acked, {warm.Failed} failed in {warm.Seconds:F1} s (through the ingest)");
            if (load.Settle > TimeSpan.Zero)
                await LoadRun.SettleAsync(load.Settle, async window =>
                {
                    var more = await BulkAsync(ingest, ids, load with { Duration = window, Messages = long.MaxValue, Rate = null, Warmup = TimeSpan.Zero,
                        InFlight = 1_000 }, ct, TextWriter.Null);
                    return (more.Acked, more.Failed);
                }, LoadRun.InProcessJit, Console.Out, ct);
        }

        var scheduled = new ConcurrentDictionary<string, long>();
        var latencies = new LatencyHistogram();
        long persisted = 0, rejected = 0, warmed = 0, lastPersistedAt = 0;
        var timing = new TimingIngest(ingest, (message, outcome) =>
        {
            if (!scheduled.TryRemove(message.MessageId!, out var at))
            {
                Interlocked.Increment(ref warmed);
                return;
            }
            if (outcome is Persisted)
            {
                latencies.Record(Stopwatch.GetElapsedTime(at));
                Interlocked.Increment(ref persisted);
                Interlocked.Exchange(ref lastPersistedAt, Stopwatch.GetTimestamp());
            }
            else Interlocked.Increment(ref rejected);
        });
        var system = services.GetRequiredService<ActorSystem>();
        var (control, done) = KafkaIngest.Run(settings, timing, services.GetRequiredService<DeadLetterStore>(), system.Materializer(),
            NullLoggerFor(services), "bench");
        using var producer = new ProducerBuilder<string, string>(settings.ProducerConfig()).Build();
        void Produce(IngestMessage m)
        {
            var value = JsonSerializer.Serialize(new
            {
                tenant_id = m.TenantId, conversation_id = m.ConversationId, sender_id = m.SenderId, message_id = m.MessageId,
                content = new { type = "text", text = m.Content.Text },
            });
            while (true)
            {
                try
                {
                    producer.Produce(settings.MessagesTopic, new Message<string, string> { Key = m.ConversationId, Value = value });
                    return;
                }
                catch (ProduceException<string, string> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    producer.Poll(TimeSpan.FromMilliseconds(10));
                }
            }
        }

        const int warmRecords = 1_000;
        for (var n = 0; n < warmRecords; n++) Produce(Message(ids, n, "warm-" + run));
        producer.Flush(TimeSpan.FromSeconds(60));
        var warmUntil = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (Interlocked.Read(ref warmed) < warmRecords && DateTime.UtcNow < warmUntil) await Task.Delay(20, ct);

        using var sampling = new CancellationTokenSource();
        var sampler = Environment.GetEnvironmentVariable("CAAS_BENCH_KAFKA_SAMPLE") == "1"
            ? Task.Run(async () =>
            {
                var t = Stopwatch.StartNew();
                while (!sampling.IsCancellationRequested)
                {
                    var (buffered, overflow, paused, open) = control.Snapshot();
                    Console.WriteLine($"sample t={t.Elapsed.TotalSeconds:F0} persisted={Interlocked.Read(ref persisted)} open={open} buffered={buffered} overflow={overflow} paused={paused} held={KafkaIngest.Held} submitted={KafkaIngest.Submitted}");
                    try { await Task.Delay(1000, sampling.Token); } catch (OperationCanceledException) { }
                }
            })
            : Task.CompletedTask;
        var rss = new RssSampler(BenchEnvironment.SelfRssMb);
        var gc = GcWindow.Start();
        var cpuAtStart = Environment.CpuUsage.TotalTime;
        var jitAtStart = System.Runtime.JitInfo.GetCompilationTime().TotalSeconds;
        var clock = Stopwatch.StartNew();
        var t0 = Stopwatch.GetTimestamp();
        long produced = 0;
        while (produced < load.Messages && clock.Elapsed < load.Duration && !ct.IsCancellationRequested)
        {
            var due = load.Rate is { } rate ? Math.Min(load.Messages, (long)(clock.Elapsed.TotalSeconds * rate) + 1) : produced + 1_000;
            for (; produced < due && produced < load.Messages; produced++)
            {
                var m = Message(ids, produced, run);
                // Open loop: latency from when the record was due; a burst: from the produce call.
                scheduled[m.MessageId!] = load.Rate is { } r ? t0 + (long)(produced / r * Stopwatch.Frequency) : Stopwatch.GetTimestamp();
                Produce(m);
            }
            if (load.Rate is not null) await Task.Delay(1, ct);
        }
        producer.Flush(TimeSpan.FromSeconds(120));
        var burstSeconds = clock.Elapsed.TotalSeconds;
        var burstEnd = Stopwatch.GetTimestamp();
        Console.WriteLine($"produced {produced} records in {burstSeconds:F1} s ({produced / burstSeconds:F0}/s)");

        // After the burst: the time until the group's committed offsets reach the end of every partition.
        string lagZero = "timeout";
        var lagUntil = DateTime.UtcNow + TimeSpan.FromMinutes(10);
        using (var lagProbe = new GroupLagProbe(settings))
        while (DateTime.UtcNow < lagUntil)
        {
            if (lagProbe.Lag(settings.MessagesTopic, TimeSpan.FromSeconds(10)) == 0)
            {
                lagZero = Stopwatch.GetElapsedTime(burstEnd).TotalSeconds.ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
                break;
            }
            await Task.Delay(100, ct);
        }
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (Interlocked.Read(ref persisted) + Interlocked.Read(ref rejected) < produced && DateTime.UtcNow < until) await Task.Delay(20, ct);
        var seconds = (Interlocked.Read(ref lastPersistedAt) - t0) / (double)Stopwatch.Frequency;
        var (rssStart, rssMiddle, rssEnd) = rss.Stop(seconds);
        // The phase's figures, from the burst's first record to the last one persisted (producer, node and database's
        // client in this process; the lag probe's polls after the last record count too).
        Console.WriteLine(gc.Summary(seconds));
        Console.WriteLine(LoadRun.CpuLine("cpu", (Environment.CpuUsage.TotalTime - cpuAtStart).TotalSeconds, seconds, Interlocked.Read(ref persisted)));
        var jitSeconds = System.Runtime.JitInfo.GetCompilationTime().TotalSeconds - jitAtStart;
        Console.WriteLine(FormattableString.Invariant($"jit: compile_s={jitSeconds:F2} ({(seconds > 0 ? jitSeconds / seconds * 100 : 0):F1}% of one core over the phase)"));
        sampling.Cancel();
        await sampler;
        await control.StopAsync();
        await done;
        var result = new LoadResult(persisted, produced - persisted, Math.Max(seconds, 1e-3), latencies, rssStart, rssMiddle, rssEnd);
        result.Print(Console.Out, "kafka");
        Console.WriteLine("kafka: records by outcome " + string.Join(" ", KafkaIngest.Outcomes().Select(o => $"{o.Outcome}={o.Count:0}")));
        return (persisted == produced ? 0 : 1, $"mode=kafka {result.Summary("msgs_per_s")} lag_zero_s={lagZero}");
    }

    private static Microsoft.Extensions.Logging.ILogger NullLoggerFor(IServiceProvider services) =>
        services.GetRequiredService<ILoggerFactory>().CreateLogger("Caas.Bench");

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
