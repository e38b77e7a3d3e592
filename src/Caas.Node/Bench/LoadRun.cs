using System.CommandLine;
using System.CommandLine.Parsing;
using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using Npgsql;

namespace Caas.Node.Bench;

/// <summary>What every load bench is told: how long to warm up, how long or how many to measure, how to offer load.</summary>
/// <param name="Warmup">Load before measuring (not recorded): JIT, caches, entities in memory, pools filled.</param>
/// <param name="Duration">The measured phase ends at this time or at <paramref name="Messages"/>, whichever comes first.</param>
/// <param name="InFlight">Closed loop: requests awaited at once.</param>
/// <param name="Rate">Open loop: messages offered per second on a fixed schedule (null: closed loop).</param>
/// <param name="Settle">After <paramref name="Warmup"/>, the warm-up goes on in windows of <see cref="SettleWindow"/> while the
/// JIT compiler still spends more than <see cref="SettledShare"/> of a core in them, at most this much longer (zero: no
/// settling). On two busy cores the tiered JIT recompiles the hot path for tens of seconds after the load starts; a node
/// that has run for hours has long finished, so the phase measures that node, not a JIT at work.</param>
public sealed record LoadSettings(TimeSpan Warmup, TimeSpan Duration, long Messages, int InFlight, double? Rate, TimeSpan Settle = default)
{
    /// <summary>The window the JIT's work is measured over while settling.</summary>
    public static readonly TimeSpan SettleWindow = TimeSpan.FromSeconds(5);

    /// <summary>Settled: the JIT compiled for less than this share of one core over the last window.</summary>
    public const double SettledShare = 0.02;

    /// <summary>Open-loop requests outstanding at once before the schedule waits (a bound on memory; waiting still counts as latency).</summary>
    public const int MaxOutstanding = 100_000;

    public string Describe() => Rate is { } r
        ? $"open loop at {r:0} msgs/s (latency from the scheduled send time)"
        : $"closed loop, {InFlight} in flight";
}

/// <summary>The options <see cref="LoadSettings"/> is read from, shared by the benches so they read alike.</summary>
public sealed class LoadOptions
{
    public Option<TimeSpan> Warmup { get; } = DurationOption("--warmup", "Warm-up before measuring (10s, 500ms, 2m).", TimeSpan.FromSeconds(10));
    public Option<TimeSpan> Duration { get; } = DurationOption("--duration", "Measured phase: at most this long (it also ends at --messages).", TimeSpan.FromSeconds(60));
    public Option<long> Messages { get; } = new("--messages") { Description = "Measured phase: at most this many messages.", DefaultValueFactory = _ => 300_000 };
    public Option<TimeSpan> Settle { get; } = DurationOption("--settle",
        "After --warmup, go on warming up in 5 s windows while the JIT compiles for over 2% of a core, at most this much longer (0s: off).",
        TimeSpan.FromSeconds(60));
    public Option<double?> Rate { get; } = new("--rate") { Description = "Open loop: offer R msgs/s on a fixed schedule and report latency at that rate (default: closed loop)." };
    public Option<int> InFlight { get; }

    public LoadOptions(string inFlightName, int inFlightDefault)
    {
        InFlight = new Option<int>(inFlightName) { Description = "Closed loop: requests awaited at once.", DefaultValueFactory = _ => inFlightDefault };
        Messages.Validators.Add(r => { if (r.GetValueOrDefault<long>() < 1) r.AddError("--messages must be at least 1."); });
        InFlight.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 100_000) r.AddError($"{inFlightName} is 1 to 100000."); });
        Rate.Validators.Add(r => { if (r.GetValueOrDefault<double?>() is <= 0 or > 1_000_000) r.AddError("--rate is above 0 and at most 1000000 msgs/s."); });
        Duration.Validators.Add(r => { if (r.GetValueOrDefault<TimeSpan>() <= TimeSpan.Zero) r.AddError("--duration must be above 0."); });
    }

    public void AddTo(Command command)
    {
        command.Options.Add(Warmup);
        command.Options.Add(Settle);
        command.Options.Add(Duration);
        command.Options.Add(Messages);
        command.Options.Add(Rate);
        command.Options.Add(InFlight);
    }

    public LoadSettings Read(ParseResult parse) =>
        new(parse.GetValue(Warmup), parse.GetValue(Duration), parse.GetValue(Messages), parse.GetValue(InFlight), parse.GetValue(Rate),
            parse.GetValue(Settle));

    private static Option<TimeSpan> DurationOption(string name, string description, TimeSpan fallback) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => fallback,
        CustomParser = r =>
        {
            var text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
            if (TryParseDuration(text, out var value)) return value;
            r.AddError($"{name}: '{text}' is not a duration (for example 10s, 500ms, 2m).");
            return fallback;
        },
    };

    /// <summary>A non-negative number with a unit: ms, s, m or h (a bare number is seconds).</summary>
    public static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = default;
        text = text.Trim();
        var (number, scale) = text switch
        {
            _ when text.EndsWith("ms", StringComparison.Ordinal) => (text[..^2], 0.001),
            _ when text.EndsWith('s') => (text[..^1], 1.0),
            _ when text.EndsWith('m') => (text[..^1], 60.0),
            _ when text.EndsWith('h') => (text[..^1], 3600.0),
            _ => (text, 1.0),
        };
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) || n < 0 || double.IsInfinity(n)) return false;
        value = TimeSpan.FromSeconds(n * scale);
        return true;
    }
}

/// <summary>
/// This process's garbage collections over a measured phase (the node and the load generator when they share the
/// process): how long they paused it, how many of each generation, what was allocated.
/// </summary>
public readonly record struct GcWindow(TimeSpan Paused, int Gen0, int Gen1, int Gen2, long Allocated)
{
    public static GcWindow Start() => Now();

    private static GcWindow Now() =>
        new(GC.GetTotalPauseDuration(), GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalAllocatedBytes());

    /// <summary><c>gc: pause_ms=N (P% of the phase) gen0=N gen1=N gen2=N allocated_mb=N</c> since <see cref="Start"/>.</summary>
    public string Summary(double seconds)
    {
        var now = Now();
        var paused = (now.Paused - Paused).TotalMilliseconds;
        var share = seconds > 0 ? paused / (seconds * 1000) * 100 : 0;
        return FormattableString.Invariant(
            $"gc: pause_ms={paused:F0} ({share:F1}% of the phase) gen0={now.Gen0 - Gen0} gen1={now.Gen1 - Gen1} gen2={now.Gen2 - Gen2} allocated_mb={(now.Allocated - Allocated) / 1048576.0:F0}");
    }
}

/// <summary>What a measured phase found.</summary>
public sealed record LoadResult(long Acked, long Failed, double Seconds, LatencyHistogram Latency, double RssStartMb, double RssMiddleMb, double RssEndMb)
{
    public double AckedPerSecond => Seconds > 0 ? Acked / Seconds : 0;
    public double RssPeakMb => Math.Max(RssStartMb, Math.Max(RssMiddleMb, RssEndMb));

    public void Print(TextWriter o, string what)
    {
        o.WriteLine($"{what}: acked={Acked} failed={Failed} seconds={Seconds:F1} -> {AckedPerSecond:F0}/s; " +
                    $"latency p50 {Latency.Percentile(0.50):F1} ms, p99 {Latency.Percentile(0.99):F1} ms, p99.9 {Latency.Percentile(0.999):F1} ms, max {Latency.MaxMs:F1} ms");
        o.WriteLine($"rss_mb start={RssStartMb:F0} middle={RssMiddleMb:F0} end={RssEndMb:F0}");
    }

    /// <summary><c>acked_per_s=N p50_ms=N p99_ms=N max_ms=N rss_mb=N</c>: the start of every bench's last line.</summary>
    public string Summary(string rateName = "acked_per_s") =>
        $"{rateName}={AckedPerSecond:F0} p50_ms={Latency.Percentile(0.50):F1} p99_ms={Latency.Percentile(0.99):F1} max_ms={Latency.MaxMs:F1} rss_mb={RssPeakMb:F0}";
}

/// <summary>
/// Drives a bench's send function: a warm-up (closed loop, not recorded), then the measured phase, closed loop (N in
/// flight) or open loop (R per second on a fixed schedule, each latency taken from the time the message was due, so a
/// queue building up in the system under test shows in the figures instead of slowing the offered load).
/// </summary>
public static class LoadRun
{
    /// <summary>Sends message number <c>n</c>; answers whether it was acknowledged.</summary>
    public delegate Task<bool> Send(long n, CancellationToken ct);

    /// <summary>Seconds the node's JIT compiler has spent compiling since it started (null: not known).</summary>
    public delegate Task<double?> JitClock(CancellationToken ct);

    /// <summary>This process's JIT (the node and the load generator when they share the process).</summary>
    public static readonly JitClock InProcessJit = _ => Task.FromResult<double?>(System.Runtime.JitInfo.GetCompilationTime().TotalSeconds);

    /// <summary>How long an open-loop phase's warm-up goes on at the offered rate after its closed-loop part (at most the warm-up).</summary>
    public static readonly TimeSpan RateWarmup = TimeSpan.FromSeconds(10);

    /// <param name="nodeCpu">The node's CPU time so far when the node is another process (<c>caas bench-rest</c>); its use
    /// over the phase is printed as a <c>node_cpu:</c> line beside this process's <c>cpu:</c>.</param>
    /// <param name="jit">The node's JIT compilation time (default: this process's): the warm-up settles on it and the phase
    /// prints a <c>jit:</c> line with what it compiled.</param>
    /// <param name="nodeAllocated">Bytes the node has allocated so far when it is another process: the phase prints a
    /// <c>node_gc:</c> line with what it allocated and how much a message (a figure far steadier than a rate here).</param>
    /// <param name="nodeWindow">Opens a window on the node's own figures at the phase's start; what it answers, called at the
    /// phase's end, is a line to print (null: nothing).</param>
    public static async Task<LoadResult> RunAsync(LoadSettings s, Send send, Func<double> rssMb, TextWriter log, CancellationToken ct,
        Func<TimeSpan>? nodeCpu = null, JitClock? jit = null, Func<CancellationToken, Task<double?>>? nodeAllocated = null,
        Func<CancellationToken, Task<Func<CancellationToken, Task<string?>>>>? nodeWindow = null)
    {
        jit ??= InProcessJit;
        var next = 0L;
        if (s.Warmup > TimeSpan.Zero)
        {
            var warm = await ClosedAsync(s with { Duration = s.Warmup, Messages = long.MaxValue }, send, () => next++, new LatencyHistogram(), ct);
            log.WriteLine($"warm-up: {warm.Acked} acked, {warm.Failed} failed in {warm.Seconds:F1} s");
            if (s.Settle > TimeSpan.Zero)
                await SettleAsync(s.Settle, async window =>
                {
                    var more = await ClosedAsync(s with { Duration = window, Messages = long.MaxValue }, send, () => next++, new LatencyHistogram(), ct);
                    return (more.Acked, more.Failed);
                }, jit, log, ct);
            // The warm-up runs closed-loop, at the node's full rate: an open-loop phase right after it would begin with
            // that burst's backlog (projections behind, a GC's debt) and time it as the offered rate's. A few seconds
            // at the offered rate first let the node settle to that rate; their figures are printed, not counted.
            if (s.Rate is { } offered)
            {
                var cool = new LatencyHistogram();
                var length = TimeSpan.FromTicks(Math.Min(s.Warmup.Ticks, RateWarmup.Ticks));
                var (coolAcked, coolFailed, coolSeconds) = await OpenAsync(s with { Duration = length, Messages = long.MaxValue }, offered, send,
                    () => next++, cool, ct);
                log.WriteLine(FormattableString.Invariant(
                    $"rate warm-up: {coolAcked} acked, {coolFailed} failed in {coolSeconds:F1} s at {offered:0.#}/s; latency p50 {cool.Percentile(0.50):F1} ms, p99 {cool.Percentile(0.99):F1} ms, max {cool.MaxMs:F1} ms (not counted)"));
            }
        }
        var rss = new RssSampler(rssMb);
        var gc = GcWindow.Start();
        var cpu = Environment.CpuUsage.TotalTime;
        var nodeCpuAtStart = nodeCpu?.Invoke();
        var jitAtStart = await jit(ct);
        var allocatedAtStart = nodeAllocated is null ? null : await nodeAllocated(ct);
        var window = nodeWindow is null ? null : await nodeWindow(ct);
        var histogram = new LatencyHistogram();
        var (acked, failed, seconds) = s.Rate is { } rate
            ? await OpenAsync(s, rate, send, () => next++, histogram, ct, log)
            : await ClosedAsync(s, send, () => next++, histogram, ct);
        var (start, middle, end) = rss.Stop(seconds);
        log.WriteLine(gc.Summary(seconds));
        // This process's CPU over the phase (node and load generator when they share it), and per acknowledged message.
        var used = (Environment.CpuUsage.TotalTime - cpu).TotalSeconds;
        log.WriteLine(CpuLine("cpu", used, seconds, acked));
        if (nodeCpu is not null && nodeCpuAtStart is { } nodeStart)
            log.WriteLine(CpuLine("node_cpu", (nodeCpu() - nodeStart).TotalSeconds, seconds, acked));
        if (allocatedAtStart is { } allocatedStart && await nodeAllocated!(ct) is { } allocatedEnd)
            log.WriteLine(FormattableString.Invariant(
                $"node_gc: allocated_mb={(allocatedEnd - allocatedStart) / (1024 * 1024):F0} kb_per_acked={(acked > 0 ? (allocatedEnd - allocatedStart) / 1024 / acked : 0):F1}"));
        if (window is not null && await window(ct) is { } nodeLine) log.WriteLine(nodeLine);
        if (jitAtStart is { } jitStart && await jit(ct) is { } jitEnd)
            log.WriteLine(FormattableString.Invariant(
                $"jit: compile_s={jitEnd - jitStart:F2} ({(seconds > 0 ? (jitEnd - jitStart) / seconds * 100 : 0):F1}% of one core over the phase)"));
        return new LoadResult(acked, failed, seconds, histogram, start, middle, end);
    }

    /// <summary>
    /// Goes on warming up (<paramref name="warm"/> runs the load for a window and answers what it acknowledged) in windows
    /// of <see cref="LoadSettings.SettleWindow"/> until the JIT compiled for less than <see cref="LoadSettings.SettledShare"/>
    /// of one core over the last one, or <paramref name="limit"/> has passed; prints a <c>jit settle:</c> line either way.
    /// </summary>
    public static async Task SettleAsync(TimeSpan limit, Func<TimeSpan, Task<(long Acked, long Failed)>> warm, JitClock jit, TextWriter log,
        CancellationToken ct, TimeSpan? window = null)
    {
        var full = window ?? LoadSettings.SettleWindow;
        if (await jit(ct) is not { } before)
        {
            log.WriteLine("jit settle: the node's JIT time is not known; no settling");
            return;
        }
        var clock = Stopwatch.StartNew();
        long acked = 0, failed = 0;
        while (true)
        {
            var left = limit - clock.Elapsed;
            var windowClock = Stopwatch.StartNew();
            var (a, f) = await warm(full < left ? full : left);
            acked += a;
            failed += f;
            var seconds = windowClock.Elapsed.TotalSeconds;
            var after = await jit(ct) ?? before;
            var share = seconds > 0 ? (after - before) / seconds : 0;
            var settled = share < LoadSettings.SettledShare && seconds >= full.TotalSeconds * 0.9;
            if (settled || clock.Elapsed >= limit - TimeSpan.FromMilliseconds(1) || ct.IsCancellationRequested)
            {
                log.WriteLine(FormattableString.Invariant(
                    $"jit settle: {(settled ? "settled" : "not settled")} after {clock.Elapsed.TotalSeconds:F1} s more warm-up ({acked} acked, {failed} failed); ") +
                    FormattableString.Invariant($"the JIT compiled {after - before:F2} s in the last {seconds:F1} s ({share * 100:F1}% of one core)"));
                return;
            }
            before = after;
        }
    }

    internal static string CpuLine(string name, double used, double seconds, long acked) => FormattableString.Invariant(
        $"{name}: process_s={used:F1} ({(seconds > 0 ? used / seconds / Environment.ProcessorCount * 100 : 0):F0}% of {Environment.ProcessorCount} cores) us_per_acked={(acked > 0 ? used * 1e6 / acked : 0):F0}");

    private static async Task<(long Acked, long Failed, double Seconds)> ClosedAsync(LoadSettings s, Send send, Func<long> number,
        LatencyHistogram histogram, CancellationToken ct)
    {
        long acked = 0, failed = 0, started = 0;
        var gate = new object();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, s.InFlight).Select(_ => Task.Run(async () =>
        {
            while (!ct.IsCancellationRequested && clock.Elapsed < s.Duration)
            {
                long n;
                lock (gate)
                {
                    if (started >= s.Messages) return;
                    started++;
                    n = number();
                }
                var at = Stopwatch.GetTimestamp();
                if (await SafeSend(send, n, ct))
                {
                    histogram.Record(Stopwatch.GetElapsedTime(at));
                    Interlocked.Increment(ref acked);
                }
                else Interlocked.Increment(ref failed);
            }
        }, ct)));
        return (acked, failed, clock.Elapsed.TotalSeconds);
    }

    private static async Task<(long Acked, long Failed, double Seconds)> OpenAsync(LoadSettings s, double rate, Send send, Func<long> number,
        LatencyHistogram histogram, CancellationToken ct, TextWriter? slowest = null)
    {
        long acked = 0, failed = 0, sent = 0;
        // The slowest latency of each second of the phase (by the time a message was due), to tell one stall from a spread.
        var worst = new long[(int)Math.Min(s.Duration.TotalSeconds, 86_400) + 2];
        using var outstanding = new SemaphoreSlim(LoadSettings.MaxOutstanding);
        var tasks = new List<Task>();
        var t0 = Stopwatch.GetTimestamp();
        var clock = Stopwatch.StartNew();
        while (!ct.IsCancellationRequested && sent < s.Messages && clock.Elapsed < s.Duration)
        {
            var due = Math.Min(s.Messages, (long)(clock.Elapsed.TotalSeconds * rate) + 1);
            while (sent < due)
            {
                // The time this message was due: latency counts from here, whatever kept it from going out on time.
                var scheduled = t0 + (long)(sent / rate * Stopwatch.Frequency);
                await outstanding.WaitAsync(ct);
                var n = number();
                sent++;
                tasks.Add(Task.Run(async () =>
                {
                    try
                    {
                        if (await SafeSend(send, n, ct))
                        {
                            var latency = Stopwatch.GetElapsedTime(scheduled);
                            histogram.Record(latency);
                            var second = (int)Math.Min(worst.Length - 1, Stopwatch.GetElapsedTime(t0, scheduled).TotalSeconds);
                            LatencyHistogram.RaiseTo(ref worst[second], latency.Ticks);
                            Interlocked.Increment(ref acked);
                        }
                        else Interlocked.Increment(ref failed);
                    }
                    finally
                    {
                        outstanding.Release();
                    }
                }, ct));
            }
            if (tasks.Count > 10_000) tasks.RemoveAll(t => t.IsCompleted);
            await Task.Delay(1, ct);
        }
        await Task.WhenAll(tasks);
        slowest?.WriteLine("slowest seconds: " + string.Join(", ", worst.Select((ticks, second) => (ticks, second)).OrderByDescending(w => w.ticks).Take(5)
            .Select(w => FormattableString.Invariant($"t={w.second}s max {TimeSpan.FromTicks(w.ticks).TotalMilliseconds:F0} ms"))) +
            " (the phase's seconds with the slowest messages, by the time each was due)");
        return (acked, failed, clock.Elapsed.TotalSeconds);
    }

    private static async Task<bool> SafeSend(Send send, long n, CancellationToken ct)
    {
        try
        {
            return await send(n, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            return false;
        }
    }
}

/// <summary>Samples RSS every 250 ms, so start, middle and end of the phase can be reported.</summary>
public sealed class RssSampler
{
    private readonly List<(double At, double Mb)> _samples = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Timer _timer;
    private readonly Func<double> _rss;

    public RssSampler(Func<double> rss)
    {
        _rss = rss;
        Take();
        _timer = new Timer(_ => Take(), null, TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(250));
    }

    private void Take()
    {
        double mb;
        try { mb = _rss(); }
        catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException) { return; }
        lock (_samples) _samples.Add((_clock.Elapsed.TotalSeconds, mb));
    }

    public (double Start, double Middle, double End) Stop(double seconds)
    {
        _timer.Dispose();
        Take();
        lock (_samples)
        {
            if (_samples.Count == 0) return (0, 0, 0);
            var middle = _samples.MinBy(x => Math.Abs(x.At - seconds / 2)).Mb;
            return (_samples[0].Mb, middle, _samples[^1].Mb);
        }
    }
}

/// <summary>
/// Latency in log-linear buckets (64 per power of two of microseconds: within 1.6%), lock-free, a few KB whatever the
/// run's length, so a long run does not grow the bench's own memory.
/// </summary>
public sealed class LatencyHistogram
{
    private const int SubBuckets = 64;
    private readonly long[] _counts = new long[SubBuckets * 45];
    private long _maxMicros;

    public long Count => _counts.Sum();
    public double MaxMs => Interlocked.Read(ref _maxMicros) / 1000.0;

    public void Record(TimeSpan latency)
    {
        var us = Math.Max(0, (long)(latency.Ticks / (TimeSpan.TicksPerMillisecond / 1000.0)));
        Interlocked.Increment(ref _counts[Math.Min(Index(us), _counts.Length - 1)]);
        RaiseTo(ref _maxMicros, us);
    }

    /// <summary>Sets <paramref name="target"/> to <paramref name="value"/> if that is larger, from any thread.</summary>
    internal static void RaiseTo(ref long target, long value)
    {
        long seen;
        while (value > (seen = Interlocked.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }

    /// <summary>The q-quantile in ms (the middle of its bucket; never above the maximum seen).</summary>
    public double Percentile(double q)
    {
        var total = Count;
        if (total == 0) return 0;
        var target = Math.Max(1, (long)Math.Ceiling(q * total));
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            if ((seen += _counts[i]) < target) continue;
            var (low, width) = Bucket(i);
            return Math.Min(low + width / 2.0, Interlocked.Read(ref _maxMicros)) / 1000.0;
        }
        return MaxMs;
    }

    internal static int Index(long us)
    {
        if (us < SubBuckets) return (int)us;
        var exponent = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)us);
        var mantissa = us >> (exponent - 6);
        return (exponent - 5) * SubBuckets + (int)(mantissa - SubBuckets);
    }

    internal static (long Low, long Width) Bucket(int index)
    {
        if (index < SubBuckets) return (index, 1);
        var exponent = index / SubBuckets + 5;
        var mantissa = index % SubBuckets + SubBuckets;
        return (mantissa << (exponent - 6), 1L << (exponent - 6));
    }
}

/// <summary>What a bench prints about where it ran, so figures are read with it.</summary>
public static class BenchEnvironment
{
    /// <summary>The GC this process runs with (the node runs with the same runtimeconfig: caas.runtimeconfig.json).</summary>
    public static string GcMode() =>
        $"gc={(GCSettings.IsServerGC ? "server" : "workstation")} concurrent={(AppContext.TryGetSwitch("System.GC.Concurrent", out var c) ? c : GCSettings.LatencyMode != GCLatencyMode.Batch).ToString().ToLowerInvariant()} " +
        $"latency_mode={GCSettings.LatencyMode} cores={Environment.ProcessorCount} threadpool_spin={ThreadPoolSpinLimit()}";

    /// <summary>The thread pool's spin limit as set: the environment variable, else the runtimeconfig, else the runtime's own default.</summary>
    private static string ThreadPoolSpinLimit() =>
        Environment.GetEnvironmentVariable("DOTNET_ThreadPool_UnfairSemaphoreSpinLimit")
        ?? AppContext.GetData("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit")?.ToString()
        ?? "runtime-default";

    /// <summary>The server's durability settings: the figures mean little without them.</summary>
    public static async Task<string> PostgresSettingsAsync(string connectionString, CancellationToken ct)
    {
        await using var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync(ct);
        var values = new List<string>();
        foreach (var name in new[] { "server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers" })
        {
            await using var cmd = new NpgsqlCommand($"SHOW {name}", c);
            values.Add($"{name}={await cmd.ExecuteScalarAsync(ct)}");
        }
        return "postgres: " + string.Join(' ', values);
    }

    public static async Task PrintAsync(TextWriter o, string? postgres, CancellationToken ct)
    {
        o.WriteLine(GcMode());
        if (postgres is not null) o.WriteLine(await PostgresSettingsAsync(postgres, ct));
    }

    /// <summary>Resident memory of a process in MB (/proc on Linux; the working set elsewhere).</summary>
    public static double RssMb(int pid)
    {
        var status = $"/proc/{pid}/status";
        if (File.Exists(status))
            foreach (var line in File.ReadLines(status))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
        using var p = Process.GetProcessById(pid);
        return p.WorkingSet64 / (1024.0 * 1024);
    }

    public static double SelfRssMb() => RssMb(Environment.ProcessId);

    /// <summary>Settled once the shipped intent model is neither loading nor training.</summary>
    public static bool Settled(string? intentState) =>
        intentState is not (Caas.Enrichment.Intent.ShippedIntentModel.Loading or Caas.Enrichment.Intent.ShippedIntentModel.Training);

    /// <summary>
    /// Waits (at most 5 minutes) until the node's start-up work is done: a node with no saved intent model trains one
    /// from the shipped data on start (about a minute of CPU on this machine), and a bench's fresh data directory has
    /// none, so without this wait the training shared the cores with the measured run.
    /// </summary>
    public static async Task WaitForStartUpAsync(Func<CancellationToken, Task<string?>> intentState, TextWriter o, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var state = await intentState(ct);
        while (!Settled(state) && clock.Elapsed < TimeSpan.FromMinutes(5))
        {
            await Task.Delay(250, ct);
            state = await intentState(ct);
        }
        o.WriteLine($"start-up: shipped intent model {state ?? "absent"} after {clock.Elapsed.TotalSeconds:F1} s (the load starts after it)");
    }

    public static Task WaitForStartUpAsync(IServiceProvider services, TextWriter o, CancellationToken ct) =>
        WaitForStartUpAsync(_ => Task.FromResult(services.GetService(typeof(Caas.Enrichment.Intent.ShippedIntentModel)) is Caas.Enrichment.Intent.ShippedIntentModel m ? m.State : null), o, ct);
}
