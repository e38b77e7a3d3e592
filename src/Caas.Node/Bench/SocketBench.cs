using System.Buffers;
using System.Buffers.Text;
using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using Caas.Web.Auth;

namespace Caas.Node.Bench;

/// <summary>
/// <c>caas bench-sockets</c>: starts a node as a child process (so its memory is its own), opens K WebSocket
/// connections to its chat hub in rooms of R members, lets them sit idle to measure memory per connection, then
/// sends messages at a set rate (open loop) for a warm-up and then a measured time, and measures deliveries/s and
/// send-to-receive latency (from the time each message was due) on every member.
/// The last line reads <c>connections=N deliveries_per_s=N p50_ms=N p99_ms=N rss_mb=N kb_per_idle_connection=N join_s=N</c>
/// (join_s: the time to connect and join every connection). CPU is reported for the node and for the clients apart,
/// as each process's user + system time over a phase, in cores (1.0 = one core busy all of the phase).
/// The clients speak SignalR's JSON protocol (or, with <c>--protocol messagepack</c>, its MessagePack protocol) over raw
/// sockets: one small buffer each, so 10,000 fit in this process.
/// Loopback only; every loop is bounded in count and time.
/// </summary>
public static class SocketBench
{
    private const char RecordSeparator = '\u001e';
    private const string Tenant = "bench";

    public static Command Command()
    {
        var connections = new Option<int>("--connections") { Description = "WebSocket connections (K).", DefaultValueFactory = _ => 10_000 };
        var roomSize = new Option<int>("--room-size") { Description = "Members per room (R); every member has one connection.", DefaultValueFactory = _ => 100 };
        var rate = new Option<int>("--rate") { Description = "Messages sent per second, over all rooms.", DefaultValueFactory = _ => 500 };
        var seconds = new Option<int>("--seconds") { Description = "How long to send (measured).", DefaultValueFactory = _ => 60 };
        var warmup = new Option<int>("--warmup-seconds") { Description = "How long to send at the same rate before measuring.", DefaultValueFactory = _ => 10 };
        var idle = new Option<int>("--idle-seconds") { Description = "How long the connections sit idle before memory is measured.", DefaultValueFactory = _ => 10 };
        var connectParallel = new Option<int>("--connect-parallel") { Description = "Connections opened at once.", DefaultValueFactory = _ => 64 };
        var protocol = new Option<string>("--protocol")
        {
            Description = "The hub protocol the clients speak (one node only).", DefaultValueFactory = _ => "json",
        };
        protocol.AcceptOnlyFromAmong("json", "messagepack");
        var postgres = new Option<string?>("--postgres") { Description = "Npgsql connection string (default: SQLite in a temp dir, or CAAS_POSTGRES)." };
        var command = new Command("bench-sockets", "Measure the chat hub: connections held, deliveries/s, send-to-receive latency, memory per idle connection.")
            { connections, roomSize, rate, seconds, warmup, idle, connectParallel, protocol, postgres };
        var cluster = new SocketClusterBench.Options(command);
        command.SetAction(async (parse, ct) =>
        {
            var k = Math.Clamp(parse.GetValue(connections), 2, 50_000);
            var r = Math.Clamp(parse.GetValue(roomSize), 2, Math.Min(k, 1_000));
            var settings = new Settings(k, r, Math.Clamp(parse.GetValue(rate), 1, 100_000), Math.Clamp(parse.GetValue(seconds), 1, 600),
                Math.Clamp(parse.GetValue(warmup), 0, 600), Math.Clamp(parse.GetValue(idle), 1, 120), Math.Clamp(parse.GetValue(connectParallel), 1, 1_000),
                parse.GetValue(postgres) ?? Environment.GetEnvironmentVariable("CAAS_POSTGRES"), parse.GetValue(protocol) == "messagepack");
            if (cluster.Read(parse) is { } clustered)
            {
                if (settings.MessagePack)
                {
                    Console.Error.WriteLine("--protocol messagepack is for one node; the cluster bench's clients speak JSON.");
                    return 2;
                }
                return await SocketClusterBench.RunAsync(settings, clustered, ct);
            }
            return await RunAsync(settings, ct);
        });
        return command;
    }

    internal sealed record Settings(int Connections, int RoomSize, int Rate, int Seconds, int WarmupSeconds, int IdleSeconds, int ConnectParallel, string? Postgres,
        bool MessagePack = false);

    private static async Task<int> RunAsync(Settings s, CancellationToken ct)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "caas-bench-sockets-" + Guid.NewGuid().ToString("N"));
        var port = FreePort();
        var jwt = new JwtSettings(Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(48)), null, null, null);
        var baseAddress = new Uri($"http://127.0.0.1:{port}");
        using var node = StartNode(dataDir, baseAddress, jwt.Secret!, s.Postgres);
        var clients = new List<BenchClient>();
        try
        {
            using var http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };
            await WaitUntilLiveAsync(http, node, ct);
            Console.WriteLine($"node pid={node.Id} at {baseAddress} store={(s.Postgres is null ? "sqlite" : "postgres")} cores={Environment.ProcessorCount} " +
                              $"(client load runs on the same cores); connections={s.Connections} room_size={s.RoomSize} rate={s.Rate}/s warmup={s.WarmupSeconds}s seconds={s.Seconds} " +
                              $"protocol={(s.MessagePack ? "messagepack" : "json")}");
            await BenchEnvironment.PrintAsync(Console.Out, s.Postgres, ct);
            Console.WriteLine("the node runs `caas run` with the same caas.runtimeconfig.json, so the same GC mode");
            // As the other benches: the node's start-up training of the intent model (a fresh data directory has none
            // saved) otherwise shared the cores with the join phase and grew the node's memory while it was measured.
            await BenchEnvironment.WaitForStartUpAsync(async t =>
            {
                using var health = await http.GetAsync("/health", t);
                var body = await health.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(t);
                return body.TryGetProperty("intent", out var intent) && intent.ValueKind == System.Text.Json.JsonValueKind.String ? intent.GetString() : null;
            }, Console.Out, ct);

            http.DefaultRequestHeaders.Authorization = new("Bearer", jwt.Issue(Tenant, "root", ["admin"]));
            (await http.PutAsJsonAsync("/v1/admin/tenant/settings", new { message_rate_per_minute = 100_000, message_cap_per_hour = 1_000_000 }, ct)).EnsureSuccessStatusCode();

            // Rooms of R members; user i is member i % R of room i / R (the last room may be smaller).
            var roomCount = (s.Connections + s.RoomSize - 1) / s.RoomSize;
            var rooms = new string[roomCount];
            var clock = Stopwatch.StartNew();
            await ForEachAsync(Enumerable.Range(0, roomCount), 16, async i =>
            {
                var members = Enumerable.Range(i * s.RoomSize + 1, Math.Min(s.RoomSize, s.Connections - i * s.RoomSize) - 1).Select(User).ToArray();
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/conversations")
                {
                    Content = JsonContent.Create(new { type = "group", title = $"room {i}", members }),
                };
                request.Headers.Authorization = new("Bearer", jwt.Issue(Tenant, User(i * s.RoomSize)));
                using var response = await http.SendAsync(request, ct);
                response.EnsureSuccessStatusCode();
                rooms[i] = (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(ct)).GetProperty("id").GetString()!;
            }, ct);
            Console.WriteLine($"created {roomCount} rooms in {clock.Elapsed.TotalSeconds:0.0} s");

            var baselineRss = RssMb(node.Id);
            var latencies = new LatencyHistogram();
            var joinCpu = new CpuMeter(node.Id);
            clock.Restart();
            var failedConnects = 0;
            var lockObj = new object();
            await ForEachAsync(Enumerable.Range(0, s.Connections), s.ConnectParallel, async i =>
            {
                try
                {
                    var client = await BenchClient.ConnectAsync(baseAddress, jwt.Issue(Tenant, User(i), lifetime: TimeSpan.FromHours(2)), latencies, ct, s.MessagePack);
                    await client.InvokeAsync("JoinRoom", $"{{\"conversation_id\":\"{rooms[i / s.RoomSize]}\"}}", TimeSpan.FromSeconds(60));
                    client.Room = rooms[i / s.RoomSize];
                    lock (lockObj) clients.Add(client);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    if (Interlocked.Increment(ref failedConnects) <= 3) Console.Error.WriteLine($"connection {i} failed: {e.GetType().Name}: {e.Message}");
                }
            }, ct);
            var connectSeconds = clock.Elapsed.TotalSeconds;
            Console.WriteLine($"connected and joined {clients.Count} ({failedConnects} failed) in {connectSeconds:0.0} s ({clients.Count / connectSeconds:0}/s); " +
                              joinCpu.Report());

            // Idle: the clients only ping (as the SignalR clients do), the node keeps every connection.
            using var pings = new CancellationTokenSource();
            var pinger = PingAsync(clients, pings.Token);
            await Task.Delay(TimeSpan.FromSeconds(s.IdleSeconds), ct);
            var idleRss = RssMb(node.Id);
            var held = clients.Count(c => c.IsOpen);
            var kbPerIdle = held == 0 ? 0 : (idleRss - baselineRss) * 1024 / held;
            Console.WriteLine($"idle: {held} connections held, node rss {baselineRss:0} MB before -> {idleRss:0} MB ({kbPerIdle:0.0} KB per connection)");

            // Load: Rate messages/s, round-robin over rooms, each from a random member of its room.
            var byRoom = clients.GroupBy(c => c.Room!).Select(g => g.ToArray()).ToArray();
            var random = new Random(7);
            var roomCursor = 0;
            async Task<long> SendForAsync(TimeSpan length)
            {
                var sent = 0L;
                var tick = TimeSpan.FromMilliseconds(10);
                clock.Restart();
                while (clock.Elapsed < length && !ct.IsCancellationRequested)
                {
                    // Message k is due at k / rate, so k = 0 at once: without the + 1 every message went out 1 / rate after the
                    // time it is stamped with, which added 100 ms to every latency at 10 msgs/s (2 ms at 500).
                    var due = (long)(clock.Elapsed.TotalSeconds * s.Rate) + 1;
                    var sends = new List<Task>();
                    while (sent < due)
                    {
                        var members = byRoom[roomCursor++ % byRoom.Length];
                        var sender = members[random.Next(members.Length)];
                        // Stamped with the time the message was due (open loop), so a late send counts in its latency.
                        var late = clock.ElapsedTicks - (long)(sent / (double)s.Rate * Stopwatch.Frequency);
                        sends.Add(sender.SendMessageAsync(latencies.Now - Math.Max(0, late)));
                        sent++;
                    }
                    await Task.WhenAll(sends);
                    await Task.Delay(tick, ct);
                }
                return sent;
            }
            if (s.WarmupSeconds > 0)
            {
                var warm = await SendForAsync(TimeSpan.FromSeconds(s.WarmupSeconds));
                Console.WriteLine($"warm-up: sent {warm} in {s.WarmupSeconds} s");
                await Task.Delay(TimeSpan.FromSeconds(2), ct);
            }
            latencies.Reset();
            BenchClient.AckLatencies.Reset();
            BenchClient.RefusedByCode.Clear();
            var deliveredBefore = clients.Sum(c => c.Delivered);
            var ackedBefore = clients.Sum(c => c.Acked);
            var rejectedBefore = clients.Sum(c => c.Rejected);
            var rss = new RssSampler(() => RssMb(node.Id));
            var loadCpu = new CpuMeter(node.Id);
            var sent = await SendForAsync(TimeSpan.FromSeconds(s.Seconds));
            var sendSeconds = clock.Elapsed.TotalSeconds;
            // Stragglers: wait (bounded) for deliveries to stop growing.
            long last = -1, now;
            for (var i = 0; i < 50 && (now = clients.Sum(c => c.Delivered)) != last; i++)
            {
                last = now;
                await Task.Delay(200, ct);
            }
            var deliveries = clients.Sum(c => c.Delivered) - deliveredBefore;
            var acked = clients.Sum(c => c.Acked) - ackedBefore;
            var rejected = clients.Sum(c => c.Rejected) - rejectedBefore;
            var (rssStart, rssMiddle, loadRss) = rss.Stop(sendSeconds);
            var loadCpuReport = loadCpu.Report();
            pings.Cancel();
            await pinger;
            held = clients.Count(c => c.IsOpen);
            var perSecond = deliveries / sendSeconds;
            var expected = acked * s.RoomSize;
            Console.WriteLine($"load: sent {sent} in {sendSeconds:0.0} s, acknowledged {acked}, refused {rejected}; " +
                              $"{deliveries} deliveries (expected about {expected}) = {perSecond:0}/s");
            if (!BenchClient.RefusedByCode.IsEmpty)
                Console.WriteLine("refused by code: " + string.Join(", ", BenchClient.RefusedByCode.Select(kv => $"{kv.Key}={kv.Value}")) +
                                  " (a persist_timeout message is still persisted and delivered later)");
            Console.WriteLine($"send-to-receive latency: p50 {latencies.Percentile(0.50)} ms, p99 {latencies.Percentile(0.99)} ms, " +
                              $"max {latencies.Max} ms");
            Console.WriteLine($"send-to-ack latency (acknowledged sends): p50 {BenchClient.AckLatencies.Percentile(0.50)} ms, " +
                              $"p99 {BenchClient.AckLatencies.Percentile(0.99)} ms, max {BenchClient.AckLatencies.Max} ms");
            Console.WriteLine($"rss_mb start={rssStart:F0} middle={rssMiddle:F0} end={loadRss:F0} (node, under load)");
            Console.WriteLine($"load cpu: {loadCpuReport}");
            Console.WriteLine($"connections={held} deliveries_per_s={perSecond:0} p50_ms={latencies.Percentile(0.50)} p99_ms={latencies.Percentile(0.99)} " +
                              $"rss_mb={Math.Max(idleRss, Math.Max(rssMiddle, loadRss)):0} kb_per_idle_connection={kbPerIdle:0.0} join_s={connectSeconds:0.0}");
            return 0;
        }
        finally
        {
            await Task.WhenAll(clients.Select(c => c.CloseAsync()));
            if (!node.HasExited)
            {
                node.Kill(entireProcessTree: true);
                await node.WaitForExitAsync(CancellationToken.None);
            }
            if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true);
        }
    }

    private static string User(int i) => $"u{i}";

    internal static Process StartNode(string dataDir, Uri baseAddress, string secret, string? postgres,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        // The same program, as `caas run`: through the apphost, or through dotnet when this runs as `dotnet caas.dll`.
        var self = Environment.ProcessPath!;
        var viaDotnet = Path.GetFileNameWithoutExtension(self) == "dotnet";
        var start = new ProcessStartInfo(self) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (viaDotnet) start.ArgumentList.Add(typeof(SocketBench).Assembly.Location);
        start.ArgumentList.Add("run");
        start.Environment["CAAS_DATA_DIR"] = dataDir;
        start.Environment["ASPNETCORE_URLS"] = baseAddress.ToString().TrimEnd('/');
        start.Environment["CAAS_JWT_SECRET"] = secret;
        start.Environment["CAAS_LOG_LEVEL"] = "Error";
        start.Environment["CAAS_POSTGRES"] = postgres ?? string.Empty;
        start.Environment["CAAS_SEED_NODES"] = string.Empty;
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        var process = Process.Start(start)!;
        // Drain its output so the node never blocks on a full pipe.
        _ = process.StandardOutput.ReadToEndAsync();
        NodeErrors.AddOrUpdate(process, process.StandardError.ReadToEndAsync());
        return process;
    }

    /// <summary>What each node started here writes to stderr, once it exits (to show why a node did not start).</summary>
    internal static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Process, Task<string>> NodeErrors = new();

    internal static async Task WaitUntilLiveAsync(HttpClient http, Process node, CancellationToken ct)
    {
        for (var i = 0; i < 600; i++)
        {
            if (node.HasExited) throw new InvalidOperationException($"The node exited with {node.ExitCode}.");
            try
            {
                using var r = await http.GetAsync("/health/ready", ct);
                if (r.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(100, ct);
        }
        throw new TimeoutException("The node was not ready within 60 s.");
    }

    private static async Task PingAsync(List<BenchClient> clients, CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromSeconds(10), ct);
                await ForEachAsync(clients, 64, c => c.PingAsync(), ct);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    internal static async Task ForEachAsync<T>(IEnumerable<T> items, int parallel, Func<T, Task> body, CancellationToken ct)
    {
        using var gate = new SemaphoreSlim(parallel);
        var tasks = new List<Task>();
        foreach (var item in items)
        {
            await gate.WaitAsync(ct);
            tasks.Add(Task.Run(async () =>
            {
                try { await body(item); }
                finally { gate.Release(); }
            }, ct));
        }
        await Task.WhenAll(tasks);
    }

    private static double RssMb(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024;
        return 0;
    }

    internal static int FreePort()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        try { return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port; }
        finally { listener.Stop(); }
    }

    /// <summary>CPU time of the node (from /proc) and of this process (the clients) since it was made.</summary>
    private sealed class CpuMeter(int nodePid)
    {
        private readonly Stopwatch _wall = Stopwatch.StartNew();
        private readonly double _node = NodeCpuSeconds(nodePid);
        private readonly double _clients = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;

        public string Report()
        {
            var wall = Math.Max(_wall.Elapsed.TotalSeconds, 0.001);
            var node = NodeCpuSeconds(nodePid) - _node;
            var clients = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - _clients;
            return $"node cpu {node:0.0} s ({node / wall:0.00} cores), client cpu {clients:0.0} s ({clients / wall:0.00} cores) over {wall:0.0} s";
        }

        /// <summary>utime + stime of a process, fields 14 and 15 of /proc/pid/stat, in clock ticks of 1/100 s (Linux's USER_HZ).</summary>
        private static double NodeCpuSeconds(int pid)
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name (field 2) may hold spaces; the fields after its closing parenthesis are plain.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture)
                    + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture)) / 100.0;
        }
    }

    /// <summary>Millisecond buckets up to 60 s; lock-free, so receive loops can record without allocating.</summary>
    internal sealed class LatencyHistogram
    {
        private readonly long[] _buckets = new long[60_001];
        // One clock for every histogram, so a send stamped by one can be recorded by another (delivery and acknowledgement).
        private static readonly Stopwatch _clock = Stopwatch.StartNew();

        public long Now => _clock.ElapsedTicks;

        public long Max { get; private set; }

        public void Record(long sentTicks)
        {
            var ms = (_clock.ElapsedTicks - sentTicks) * 1000 / Stopwatch.Frequency;
            if (ms < 0) return;
            Interlocked.Increment(ref _buckets[Math.Min(ms, _buckets.Length - 1)]);
            if (ms > Max) Max = ms;
        }

        public void Reset()
        {
            Array.Clear(_buckets);
            Max = 0;
        }

        public long Percentile(double p)
        {
            var total = _buckets.Sum();
            if (total == 0) return 0;
            var target = (long)Math.Ceiling(total * p);
            long seen = 0;
            for (var i = 0; i < _buckets.Length; i++)
                if ((seen += _buckets[i]) >= target) return i;
            return _buckets.Length - 1;
        }
    }

    /// <summary>
    /// One hub connection speaking SignalR's JSON protocol, or its MessagePack protocol (binary frames, each message
    /// prefixed by its length as a VarInt), over a raw WebSocket.
    /// </summary>
    private sealed class BenchClient
    {
        public static readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> RefusedByCode = new();
        /// <summary>Send to acknowledgement (the hub's completion of SendMessage: persisted), for the acknowledged sends.</summary>
        public static readonly LatencyHistogram AckLatencies = new();
        private static readonly byte[] Ping = Encoding.UTF8.GetBytes("{\"type\":6}" + RecordSeparator);
        private static readonly byte[] PackedPing = Framed((ref MessagePack.MessagePackWriter w) => { w.WriteArrayHeader(1); w.Write(6); });
        private readonly ClientWebSocket _socket;
        private readonly LatencyHistogram _latencies;
        private readonly bool _messagePack;
        private readonly SemaphoreSlim _sendLock = new(1, 1);
        private readonly Dictionary<string, TaskCompletionSource<string>> _pending = new();
        private int _invocations;
        private long _delivered, _acked, _rejected;

        private BenchClient(ClientWebSocket socket, LatencyHistogram latencies, bool messagePack)
        {
            _socket = socket;
            _latencies = latencies;
            _messagePack = messagePack;
        }

        public string? Room { get; set; }
        public bool IsOpen => _socket.State == WebSocketState.Open;
        public long Delivered => Interlocked.Read(ref _delivered);
        public long Acked => Interlocked.Read(ref _acked);
        public long Rejected => Interlocked.Read(ref _rejected);

        public static async Task<BenchClient> ConnectAsync(Uri baseAddress, string token, LatencyHistogram latencies, CancellationToken ct, bool messagePack = false)
        {
            var socket = new ClientWebSocket();
            socket.Options.KeepAliveInterval = TimeSpan.Zero;
            socket.Options.SetBuffer(4096, 4096);
            var uri = new UriBuilder(baseAddress) { Scheme = "ws", Path = "/hubs/chat", Query = "access_token=" + token }.Uri;
            await socket.ConnectAsync(uri, ct);
            var client = new BenchClient(socket, latencies, messagePack);
            // The handshake is JSON in both protocols.
            await client.SendRawAsync(Encoding.UTF8.GetBytes($"{{\"protocol\":\"{(messagePack ? "messagepack" : "json")}\",\"version\":1}}" + RecordSeparator),
                WebSocketMessageType.Text);
            var buffer = new byte[256];
            var first = await socket.ReceiveAsync(buffer, ct);
            if (Encoding.UTF8.GetString(buffer, 0, first.Count) != "{}" + RecordSeparator)
                throw new InvalidOperationException("Handshake refused: " + Encoding.UTF8.GetString(buffer, 0, first.Count));
            _ = client.ReceiveLoopAsync();
            return client;
        }

        public async Task<string> InvokeAsync(string target, string argumentJson, TimeSpan timeout)
        {
            var id = Interlocked.Increment(ref _invocations).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var done = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_pending) _pending[id] = done;
            await SendRawAsync(_messagePack
                ? Invocation(id, target, MessagePack.MessagePackSerializer.ConvertFromJson(argumentJson))
                : Encoding.UTF8.GetBytes($"{{\"type\":1,\"invocationId\":\"{id}\",\"target\":\"{target}\",\"arguments\":[{argumentJson}]}}{RecordSeparator}"));
            var result = await done.Task.WaitAsync(timeout);
            if (!result.Contains("\"success\":true", StringComparison.Ordinal)) throw new InvalidOperationException($"{target} failed: {result}");
            return result;
        }

        /// <summary>Sends without waiting for the acknowledgement; the receive loop counts it.</summary>
        public Task SendMessageAsync(long sentTicks) =>
            SendRawAsync(_messagePack
                ? Invocation("s" + sentTicks, "SendMessage", Packed((ref MessagePack.MessagePackWriter w) =>
                {
                    w.WriteMapHeader(2);
                    w.Write("conversation_id");
                    w.Write(Room);
                    w.Write("content");
                    w.Write("b:" + sentTicks);
                }))
                : Encoding.UTF8.GetBytes(
                    $"{{\"type\":1,\"invocationId\":\"s{sentTicks}\",\"target\":\"SendMessage\",\"arguments\":[{{\"conversation_id\":\"{Room}\",\"content\":\"b:{sentTicks}\"}}]}}{RecordSeparator}"));

        public Task PingAsync() => IsOpen ? SendRawAsync(_messagePack ? PackedPing : Ping) : Task.CompletedTask;

        private delegate void Write(ref MessagePack.MessagePackWriter writer);

        private static byte[] Packed(Write write)
        {
            var buffer = new ArrayBufferWriter<byte>(128);
            var writer = new MessagePack.MessagePackWriter(buffer);
            write(ref writer);
            writer.Flush();
            return buffer.WrittenSpan.ToArray();
        }

        /// <summary>A MessagePack message with its VarInt length in front, as SignalR's binary framing wants.</summary>
        private static byte[] Framed(Write write)
        {
            var body = Packed(write);
            var frame = new List<byte>(body.Length + 5);
            for (var n = (uint)body.Length; ; n >>= 7)
            {
                frame.Add((byte)(n < 0x80 ? n : (n & 0x7f) | 0x80));
                if (n < 0x80) break;
            }
            frame.AddRange(body);
            return frame.ToArray();
        }

        /// <summary>An invocation <c>[1, headers, invocationId, target, [argument]]</c>.</summary>
        private static byte[] Invocation(string id, string target, byte[] argument) => Framed((ref MessagePack.MessagePackWriter w) =>
        {
            w.WriteArrayHeader(5);
            w.Write(1);
            w.WriteMapHeader(0);
            w.Write(id);
            w.Write(target);
            w.WriteArrayHeader(1);
            w.WriteRaw(argument);
        });

        private Task SendRawAsync(byte[] bytes) =>
            SendRawAsync(bytes, _messagePack ? WebSocketMessageType.Binary : WebSocketMessageType.Text);

        private async Task SendRawAsync(byte[] bytes, WebSocketMessageType type)
        {
            await _sendLock.WaitAsync();
            try
            {
                if (IsOpen) await _socket.SendAsync(bytes, type, true, CancellationToken.None);
            }
            catch (WebSocketException)
            {
            }
            finally
            {
                _sendLock.Release();
            }
        }

        private async Task ReceiveLoopAsync()
        {
            var buffer = ArrayPool<byte>.Shared.Rent(8192);
            var message = new ArrayBufferWriter<byte>(1024);
            try
            {
                while (IsOpen)
                {
                    var r = await _socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
                    if (r.MessageType == WebSocketMessageType.Close) break;
                    message.Write(buffer.AsSpan(0, r.Count));
                    if (!r.EndOfMessage) continue;
                    if (_messagePack) HandlePacked(message.WrittenMemory);
                    else foreach (var record in Records(message.WrittenSpan)) Handle(record);
                    message.Clear();
                }
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        private static List<Range> Split(ReadOnlySpan<byte> span)
        {
            var ranges = new List<Range>();
            var start = 0;
            for (var i = 0; i < span.Length; i++)
                if (span[i] == (byte)RecordSeparator) { ranges.Add(start..i); start = i + 1; }
            return ranges;
        }

        private static IEnumerable<byte[]> Records(ReadOnlySpan<byte> span)
        {
            var list = new List<byte[]>();
            foreach (var range in Split(span)) list.Add(span[range].ToArray());
            return list;
        }

        private static readonly byte[] NewMessageTarget = "\"target\":\"newMessage\""u8.ToArray();
        private static readonly byte[] BenchText = "\"text\":\"b:"u8.ToArray();
        private static readonly byte[] Completion = "\"type\":3"u8.ToArray();
        private static readonly byte[] SendCompletion = "\"invocationId\":\"s"u8.ToArray();
        private static readonly byte[] Success = "\"success\":true"u8.ToArray();

        private static readonly byte[] NewMessageName = "newMessage"u8.ToArray();

        /// <summary>
        /// The MessagePack messages of one WebSocket message. A delivery (<c>newMessage</c>) is read in place for its
        /// <c>b:</c> stamp; a completion (few: sends and joins) is turned into the JSON protocol's text and handled as one.
        /// </summary>
        private void HandlePacked(ReadOnlyMemory<byte> bytes)
        {
            while (!bytes.IsEmpty)
            {
                uint length = 0;
                var at = 0;
                for (var shift = 0; ; shift += 7)
                {
                    var b = bytes.Span[at++];
                    length |= (uint)(b & 0x7f) << shift;
                    if (b < 0x80) break;
                }
                var body = bytes.Slice(at, (int)length);
                bytes = bytes[(at + (int)length)..];
                var reader = new MessagePack.MessagePackReader(body);
                var count = reader.ReadArrayHeader();
                var type = reader.ReadInt32();
                if (type == 1 && count >= 5)
                {
                    reader.Skip(); // headers
                    reader.Skip(); // invocation id (nil for events)
                    if (!reader.TryReadStringSpan(out var target) || !target.SequenceEqual(NewMessageName)) continue;
                    Interlocked.Increment(ref _delivered);
                    if (FindStamp(ref reader) is { } ticks) _latencies.Record(ticks);
                }
                else if (type == 3 && count >= 4)
                {
                    reader.Skip(); // headers
                    var id = reader.ReadString();
                    var kind = reader.ReadInt32();
                    var text = kind switch
                    {
                        1 => $"{{\"type\":3,\"invocationId\":\"{id}\",\"error\":{System.Text.Json.JsonSerializer.Serialize(reader.ReadString())}}}",
                        3 => $"{{\"type\":3,\"invocationId\":\"{id}\",\"result\":{MessagePack.MessagePackSerializer.ConvertToJson(body[(int)reader.Consumed..])}}}",
                        _ => $"{{\"type\":3,\"invocationId\":\"{id}\"}}",
                    };
                    Handle(Encoding.UTF8.GetBytes(text));
                }
            }
        }

        /// <summary>The first string of the arguments that starts with <c>b:</c>, as the ticks that follow it.</summary>
        private static long? FindStamp(ref MessagePack.MessagePackReader reader)
        {
            switch (reader.NextMessagePackType)
            {
                case MessagePack.MessagePackType.Array:
                    for (var n = reader.ReadArrayHeader(); n > 0; n--)
                        if (FindStamp(ref reader) is { } inArray) return inArray;
                    return null;
                case MessagePack.MessagePackType.Map:
                    for (var n = reader.ReadMapHeader() * 2; n > 0; n--)
                        if (FindStamp(ref reader) is { } inMap) return inMap;
                    return null;
                case MessagePack.MessagePackType.String:
                    return reader.TryReadStringSpan(out var span) && span.Length > 2 && span[0] == (byte)'b' && span[1] == (byte)':' &&
                           Utf8Parser.TryParse(span[2..], out long ticks, out _) ? ticks : null;
                default:
                    reader.Skip();
                    return null;
            }
        }

        private void Handle(byte[] record)
        {
            var span = record.AsSpan();
            if (span.IndexOf(NewMessageTarget) >= 0)
            {
                Interlocked.Increment(ref _delivered);
                var at = span.IndexOf(BenchText);
                if (at >= 0 && Utf8Parser.TryParse(span[(at + BenchText.Length)..], out long ticks, out _)) _latencies.Record(ticks);
                return;
            }
            if (span.IndexOf(Completion) < 0) return;
            if (span.IndexOf(SendCompletion) is var sendAt and >= 0)
            {
                if (span.IndexOf(Success) >= 0)
                {
                    Interlocked.Increment(ref _acked);
                    if (Utf8Parser.TryParse(span[(sendAt + SendCompletion.Length)..], out long sentTicks, out _)) AckLatencies.Record(sentTicks);
                    return;
                }
                Interlocked.Increment(ref _rejected);
                var failure = Encoding.UTF8.GetString(span);
                var codeAt = failure.IndexOf("\"code\":\"", StringComparison.Ordinal);
                var code = codeAt < 0 ? "error" : failure[(codeAt + 8)..failure.IndexOf('"', codeAt + 8)];
                RefusedByCode.AddOrUpdate(code, 1, (_, n) => n + 1);
                return;
            }
            var text = Encoding.UTF8.GetString(span);
            var idAt = text.IndexOf("\"invocationId\":\"", StringComparison.Ordinal);
            if (idAt < 0) return;
            var idStart = idAt + "\"invocationId\":\"".Length;
            var id = text[idStart..text.IndexOf('"', idStart)];
            TaskCompletionSource<string>? done;
            lock (_pending) _pending.Remove(id, out done);
            done?.TrySetResult(text);
        }

        public async Task CloseAsync()
        {
            try
            {
                if (IsOpen) await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(2));
            }
            catch (Exception)
            {
            }
            _socket.Dispose();
        }
    }
}
