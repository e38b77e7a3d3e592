using System.Diagnostics;
using System.Text.RegularExpressions;
using Caas.Node.Bench;
using Caas.Tests.Shared;

namespace Caas.Node.Tests;

/// <summary>
/// The bench commands: their options refused when wrong, the latency histogram and duration parsing they share, and a
/// tiny run of each (seconds, a handful of conversations) that must end in its documented last line. The figures are
/// never asserted: they depend on the machine.
/// </summary>
// The benches on PostgreSQL make and drop scratch databases (caas_bench_*); one test checks that none of its own is left,
// so the classes that run them do not run side by side.
[Collection(BenchScratchDatabases.Name)]
public sealed partial class BenchCommandTests
{
    private static readonly string CaasDll = Path.Combine(AppContext.BaseDirectory, "caas.dll");

    /// <summary>A short run: one second of warm-up (no settling of the JIT), two measured, a few hundred messages at most.</summary>
    private static readonly string[] Tiny = ["--warmup", "1s", "--settle", "0s", "--duration", "2s", "--messages", "300"];

    private sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string All => Stdout + Stderr;
        public string LastLine => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "";
    }

    private static async Task<Result> CaasAsync(IDictionary<string, string>? env, params string[] args)
    {
        var data = TestDatabases.NewSqliteDirectory();
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = data,
        };
        start.ArgumentList.Add(CaasDll);
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("CAAS_", StringComparison.Ordinal) || k == "ASPNETCORE_URLS").ToList())
            start.Environment.Remove(name);
        start.Environment["CAAS_DATA_DIR"] = data;
        start.Environment["CAAS_INTENT_AUTOTRAIN"] = "0";
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) start.Environment[k] = v;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            // A generous bound: a node starts, warms up and runs for seconds; on a loaded machine several times that.
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(8));
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        return new Result(process.ExitCode, await stdout, await stderr);
    }

    private static Task<Result> CaasAsync(params string[] args) => CaasAsync(null, args);

    [GeneratedRegex(@"^acked_per_s=\d+ p50_ms=[\d.]+ p99_ms=[\d.]+ max_ms=[\d.]+ rss_mb=\d+ baseline_rows_per_s=\d+ ratio=[\d.]+$")]
    private static partial Regex JournalLastLine();

    [GeneratedRegex(@"^acked_per_s=\d+ p50_ms=[\d.]+ p99_ms=[\d.]+ max_ms=[\d.]+ rss_mb=\d+$")]
    private static partial Regex RestLastLine();

    [GeneratedRegex(@"^mode=bulk msgs_per_s=\d+ p50_ms=[\d.]+ p99_ms=[\d.]+ max_ms=[\d.]+ rss_mb=\d+ enrichment_lag_zero_s=(\d+\.\d enrichment_deferred=\d+ enrichment_caught_up=-?\d+ enrichment_catchup_per_s=-?\d+|timeout)$")]
    private static partial Regex BulkLastLine();

    [GeneratedRegex(@"^replay_events_per_s=\d+ rebuild_events_per_s=\d+ search_reindex_s=\d+(\.\d+)? recovery_ms=\d+ recovery_events_per_s=\d+$")]
    private static partial Regex ReplayLastLine();

    [GeneratedRegex(@"^rss_mb start=\d+ middle=\d+ end=\d+$", RegexOptions.Multiline)]
    private static partial Regex RssLine();

    [GeneratedRegex(@"^gc=(server|workstation) concurrent=(true|false) ", RegexOptions.Multiline)]
    private static partial Regex GcLine();

    [Theory]
    [InlineData("10s", 10_000)]
    [InlineData("500ms", 500)]
    [InlineData("2m", 120_000)]
    [InlineData("1h", 3_600_000)]
    [InlineData("1.5", 1_500)]
    [InlineData("0s", 0)]
    public void Durations_read_with_their_unit(string text, double ms)
    {
        Assert.True(LoadOptions.TryParseDuration(text, out var value));
        Assert.Equal(ms, value.TotalMilliseconds, 6);
    }

    [Theory]
    [InlineData("soon")]
    [InlineData("-1s")]
    [InlineData("")]
    [InlineData("10 parsecs")]
    public void Durations_that_are_not_durations_are_refused(string text) => Assert.False(LoadOptions.TryParseDuration(text, out _));

    [Fact]
    public void The_histogram_answers_percentiles_within_its_bucket_precision_and_the_exact_maximum()
    {
        var h = new LatencyHistogram();
        // 1..1000 ms, one each: p50 is 500 ms, p99 990 ms.
        for (var ms = 1; ms <= 1000; ms++) h.Record(TimeSpan.FromMilliseconds(ms));
        Assert.Equal(1000, h.Count);
        Assert.InRange(h.Percentile(0.50), 500 * 0.98, 500 * 1.02);
        Assert.InRange(h.Percentile(0.99), 990 * 0.98, 990 * 1.02);
        Assert.Equal(1000, h.MaxMs, 3);
        Assert.True(h.Percentile(1.0) <= h.MaxMs);
        var empty = new LatencyHistogram();
        Assert.Equal(0, empty.Percentile(0.99));
        // Microseconds below the first power of two are exact; minutes still land in a bucket.
        var small = new LatencyHistogram();
        small.Record(TimeSpan.FromTicks(30 * 10));
        Assert.Equal(0.030, small.Percentile(0.5), 4);
        small.Record(TimeSpan.FromMinutes(30));
        Assert.Equal(1_800_000, small.MaxMs, 3);
    }

    /// <summary>A JIT that compiles <paramref name="perWindow"/> s in each of the first windows (a second each call after).</summary>
    private static LoadRun.JitClock Jit(params double[] perWindow)
    {
        var calls = 0;
        var total = 0.0;
        return _ =>
        {
            // The first call is the start; each later one ends a window.
            if (calls > 0) total += calls - 1 < perWindow.Length ? perWindow[calls - 1] : 1.0;
            calls++;
            return Task.FromResult<double?>(total);
        };
    }

    [Fact]
    public async Task Settling_warms_up_window_by_window_until_the_JIT_is_quiet()
    {
        var windows = new List<TimeSpan>();
        var log = new StringWriter();
        // 200 ms windows: compiling 100 s, 50 s (over 2% of a core however slow the machine), then 0.001 s (under 2%
        // of a core in any window of at least 180 ms): settled after the third.
        await LoadRun.SettleAsync(TimeSpan.FromMinutes(30), async w =>
        {
            windows.Add(w);
            await Task.Delay(w);
            return (10, 1);
        }, Jit(100.0, 50.0, 0.001), log, CancellationToken.None, TimeSpan.FromMilliseconds(200));
        Assert.Equal(3, windows.Count);
        Assert.All(windows, w => Assert.Equal(TimeSpan.FromMilliseconds(200), w));
        Assert.Matches(@"^jit settle: settled after \d+\.\d s more warm-up \(30 acked, 3 failed\); the JIT compiled 0\.00 s in the last \d+\.\d s \(0\.\d% of one core\)\r?\n$", log.ToString());
    }

    [Fact]
    public async Task Settling_stops_at_its_limit_when_the_JIT_never_quiets()
    {
        var windows = new List<TimeSpan>();
        var log = new StringWriter();
        var clock = Stopwatch.StartNew();
        await LoadRun.SettleAsync(TimeSpan.FromSeconds(1), async w =>
        {
            windows.Add(w);
            await Task.Delay(w);
            return (1, 0);
        }, Jit(), log, CancellationToken.None, TimeSpan.FromMilliseconds(300));
        // It stops once the limit (less a millisecond) has passed, however many windows that took: 300 ms each, the
        // last ones cut to what is left of the second (a timer may fire a little early, so not always 4 windows).
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(999), clock.Elapsed.ToString());
        Assert.NotEmpty(windows);
        Assert.All(windows, w => Assert.True(w <= TimeSpan.FromMilliseconds(300) && w > TimeSpan.Zero, w.ToString()));
        Assert.Equal(TimeSpan.FromMilliseconds(300), windows[0]);
        Assert.StartsWith("jit settle: not settled after ", log.ToString());
    }

    [Fact]
    public async Task Settling_is_skipped_when_the_JIT_time_is_unknown()
    {
        var log = new StringWriter();
        var warmed = 0;
        await LoadRun.SettleAsync(TimeSpan.FromSeconds(10), _ => { warmed++; return Task.FromResult((1L, 0L)); },
            _ => Task.FromResult<double?>(null), log, CancellationToken.None);
        Assert.Equal(0, warmed);
        Assert.StartsWith("jit settle: the node's JIT time is not known", log.ToString());
    }

    [Fact]
    public async Task Help_lists_every_bench()
    {
        var help = await CaasAsync("--help");
        Assert.Equal(0, help.ExitCode);
        foreach (var command in new[] { "bench", "bench-pipeline", "bench-rest", "bench-sockets" }) Assert.Contains($"  {command}", help.Stdout);
        var bench = await CaasAsync("bench", "--help");
        foreach (var option in new[] { "--warmup", "--settle", "--duration", "--messages", "--rate", "--parallel", "--baseline-batch", "--recovery-events" })
            Assert.Contains(option, bench.Stdout);
    }

    [Theory]
    [InlineData(new[] { "bench", "--warmup", "soon" }, "--warmup")]
    [InlineData(new[] { "bench", "--duration", "0s" }, "--duration")]
    [InlineData(new[] { "bench", "--rate", "0" }, "--rate")]
    [InlineData(new[] { "bench", "--messages", "0" }, "--messages")]
    [InlineData(new[] { "bench", "--store", "oracle" }, "--store")]
    [InlineData(new[] { "bench", "--parallel", "0" }, "--parallel")]
    [InlineData(new[] { "bench", "--store", "postgres" }, "--postgres")]
    [InlineData(new[] { "bench-pipeline", "--mode", "stream" }, "--mode")]
    [InlineData(new[] { "bench-pipeline", "--mode", "kafka" }, "--kafka")]
    [InlineData(new[] { "bench-rest", "--senders", "0" }, "--senders")]
    [InlineData(new[] { "bench-rest", "--clients", "0" }, "--clients")]
    [InlineData(new[] { "bench-rest", "--store", "postgres" }, "--postgres")]
    [InlineData(new[] { "bench-sockets", "--protocol", "xml" }, "Must be one of")]
    [InlineData(new[] { "bench-sockets", "--protocol", "messagepack", "--nodes", "3", "--postgres", "Host=127.0.0.1;Port=1" }, "--protocol messagepack is for one node")]
    public async Task Bad_bench_arguments_are_refused_before_anything_runs(string[] args, string message)
    {
        var result = await CaasAsync(args);
        Assert.True(result.ExitCode != 0, $"{string.Join(' ', args)}: exit 0, {result.All}");
        Assert.Contains(message, result.All);
        Assert.DoesNotContain("acked_per_s=", result.Stdout);
    }

    [Theory]
    [InlineData("closed")]
    [InlineData("open")]
    public async Task Bench_on_sqlite_warms_up_measures_and_compares_with_the_bare_baseline(string loop)
    {
        string[] args = ["bench", "--store", "sqlite", "--conversations", "10", "--parallel", "8", "--baseline-batch", "50", .. Tiny];
        // The closed loop also settles the JIT (at most 6 s more warm-up: a 5 s window, then one of what is left).
        if (loop == "closed") args = [.. args.Select(a => a == "0s" ? "6s" : a)];
        if (loop == "open") args = [.. args, "--rate", "50"];
        var result = await CaasAsync(args);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Matches(GcLine(), result.Stdout);
        Assert.Matches(RssLine(), result.Stdout);
        Assert.Contains("warm-up: ", result.Stdout);
        Assert.Matches(@"(?m)^jit: compile_s=\d+\.\d\d \(\d+\.\d% of one core over the phase\)$", result.Stdout.Replace("\r", ""));
        var settle = Regex.Match(result.Stdout,
            @"(?m)^jit settle: (settled|not settled) after (\d+\.\d) s more warm-up \(\d+ acked, \d+ failed\); the JIT compiled \d+\.\d\d s in the last (\d+\.\d) s \((\d+\.\d)% of one core\)\r?$");
        if (loop == "open")
        {
            Assert.False(settle.Success, result.Stdout);
            // The warm-up's closed loop is followed by its seconds at the offered rate (as long as the warm-up here),
            // and the phase names its slowest seconds.
            var cool = Regex.Match(result.Stdout, @"(?m)^rate warm-up: \d+ acked, \d+ failed in (\d+\.\d) s at 50/s; latency p50 \d+\.\d ms, p99 \d+\.\d ms, max \d+\.\d ms \(not counted\)\r?$");
            Assert.True(cool.Success, result.Stdout);
            Assert.True(result.Stdout.IndexOf("warm-up: ", StringComparison.Ordinal) < cool.Index);
            Assert.True(double.Parse(cool.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 1.0, cool.Value);
            Assert.Matches(@"(?m)^slowest seconds: t=\d+s max \d+ ms", result.Stdout);
        }
        else
        {
            Assert.True(settle.Success, result.Stdout);
            // Settled only below 2% of a core; otherwise only once the 6 s were spent.
            var share = double.Parse(settle.Groups[4].Value, System.Globalization.CultureInfo.InvariantCulture);
            var after = double.Parse(settle.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
            if (settle.Groups[1].Value == "settled") Assert.True(share < 2.0, settle.Value);
            else Assert.True(after >= 6.0, settle.Value);
            Assert.True(result.Stdout.IndexOf("warm-up: ", StringComparison.Ordinal) < settle.Index);
        }
        Assert.Contains(loop == "open" ? "open loop at 50 msgs/s" : "closed loop, 8 in flight", result.Stdout);
        Assert.Contains("baseline: ", result.Stdout);
        Assert.DoesNotContain("postgres:", result.Stdout);
        Assert.Matches(JournalLastLine(), result.LastLine);
    }

    [Fact]
    public async Task Bench_on_postgres_prints_the_servers_durability_and_leaves_no_scratch_database()
    {
        var admin = TestDatabases.AdminConnectionString;
        var before = await DatabasesAsync(admin);
        var result = await CaasAsync(new Dictionary<string, string> { ["CAAS_POSTGRES"] = admin },
            ["bench", "--store", "postgres", "--conversations", "10", "--parallel", "8", "--baseline-batch", "50", .. Tiny]);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Matches(new Regex(@"^postgres: .*fsync=(on|off) synchronous_commit=\w+", RegexOptions.Multiline), result.Stdout);
        Assert.Contains("(binary COPY)", result.Stdout);
        Assert.Matches(JournalLastLine(), result.LastLine);
        // Only what existed before (other runs may create theirs meanwhile, never this one's).
        Assert.Subset(before, await DatabasesAsync(admin));
    }

    [Fact]
    public async Task Bench_rest_posts_from_keep_alive_clients_to_a_child_node()
    {
        var result = await CaasAsync(["bench-rest", "--senders", "5", "--clients", "2", "--in-flight", "4", .. Tiny]);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("senders=5 clients=2", result.Stdout);
        Assert.Matches(RssLine(), result.Stdout);
        // The node is a child process: its own CPU over the phase, apart from the load generator's.
        Assert.Matches(@"(?m)^cpu: process_s=\d+\.\d .*\n^node_cpu: process_s=\d+\.\d \(\d+% of \d+ cores\) us_per_acked=\d+$", result.Stdout.Replace("\r", ""));
        // The node's allocations over the phase, read from its /metrics.
        Assert.Matches(@"(?m)^node_gc: allocated_mb=\d+ kb_per_acked=\d+\.\d$", result.Stdout.Replace("\r", ""));
        // The node's own timing of the phase's posts, read from its /metrics (the last ones may be counted just after
        // the client has its answer, so only "some" is certain).
        var nodeLatency = Regex.Match(result.Stdout, @"(?m)^node_latency: requests=(\d+) p50_ms(<=|>)[\d.]+ p99_ms(<=|>)[\d.]+ \(");
        Assert.True(nodeLatency.Success, result.Stdout);
        Assert.True(long.Parse(nodeLatency.Groups[1].Value) > 0, nodeLatency.Value);
        // The node's JIT over the phase, read from its /metrics.
        Assert.Matches(@"(?m)^jit: compile_s=\d+\.\d\d \(\d+\.\d% of one core over the phase\)$", result.Stdout.Replace("\r", ""));
        // What the node's enrichers did over the whole run: the sends counted, skips by enricher and reason, if any.
        var enrichment = Regex.Match(result.Stdout, @"(?m)^enrichment: sent=(\d+) \(warm-up included\) deferred=\d+ skipped (none|(\S+:\S+=\d+ ?)+)\r?$");
        Assert.True(enrichment.Success, result.Stdout);
        Assert.True(long.Parse(enrichment.Groups[1].Value) > 0);
        Assert.Matches(RestLastLine(), result.LastLine);
    }

    [Fact]
    public async Task Bench_enrich_warms_every_enricher_up_then_times_each()
    {
        var result = await CaasAsync("bench", "--enrich", "--warmup", "1s");
        Assert.True(result.ExitCode == 0, result.All);
        var warm = Regex.Match(result.Stdout, @"(?m)^warm-up: (\d+) messages through every enricher in (\d+\.\d) s$");
        Assert.True(warm.Success, result.Stdout);
        Assert.True(long.Parse(warm.Groups[1].Value) > 0);
        Assert.True(double.Parse(warm.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) >= 1.0, warm.Value);
        // The warm-up comes before the first timed enricher.
        Assert.True(result.Stdout.IndexOf("warm-up:", StringComparison.Ordinal) < result.Stdout.IndexOf("entities ", StringComparison.Ordinal));
        foreach (var name in new[] { "entities", "sentiment", "all-text" })
            Assert.Matches($@"(?m)^{name}\s+throughput=\s*\d+/s p50_ms=[\d.]+ p99_ms=[\d.]+", result.Stdout);
        Assert.Matches(@"^throughput=[\d.]+ p99_ms=[\d.]+$", result.LastLine);
    }

    [Fact]
    public async Task Bench_pipeline_bulk_ends_in_its_last_line()
    {
        var result = await CaasAsync(["bench-pipeline", "--mode", "bulk", "--conversations", "5", "--in-flight", "16", .. Tiny]);
        Assert.True(result.ExitCode == 0, result.All);
        // Enricher runs skipped over the run (inline and deferred), by enricher and reason, if any.
        Assert.Matches(@"(?m)^enrichment: skipped (none|(\S+:\S+=\d+ ?)+)\r?$", result.Stdout);
        Assert.Matches(BulkLastLine(), result.LastLine);
    }

    [Fact]
    public async Task Bench_replay_times_replay_rebuild_and_the_recovery_of_one_long_conversation()
    {
        var result = await CaasAsync("bench", "--replay", "--events", "400", "--conversations", "4", "--recovery-events", "300", "--warmup", "1s");
        Assert.True(result.ExitCode == 0, result.All);
        // The warm-up recovers its conversation of a tenth, passivated between, until --warmup has passed; then three timed runs.
        Assert.Matches(@"recovery: warm-up, \d+ recoveries of 30 events in \d+\.\d s; the first \(cold\) \d+ ms", result.Stdout);
        for (var run = 1; run <= 3; run++) Assert.Contains($"recovery: recovery ({run} of 3), 300 events, back in ", result.Stdout);
        Assert.Contains("recovery: 300 events, median of 3: ", result.Stdout);
        Assert.Matches(ReplayLastLine(), result.LastLine);
    }

    private static async Task<HashSet<string>> DatabasesAsync(string admin)
    {
        await using var c = new Npgsql.NpgsqlConnection(admin);
        await c.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand("SELECT datname FROM pg_database WHERE datname LIKE 'caas_bench_%'", c);
        await using var r = await cmd.ExecuteReaderAsync();
        var names = new HashSet<string>();
        while (await r.ReadAsync()) names.Add(r.GetString(0));
        return names;
    }
}
