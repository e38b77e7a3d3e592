using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Caas.Web.Auth;

namespace Caas.Node.Bench;

/// <summary>What <c>--nodes</c>, <c>--kill-node-at</c> and <c>--ack-seconds</c> ask of <c>caas bench-sockets</c>.</summary>
internal sealed record ClusterSettings(int Nodes, int? KillNodeAt, int AckSeconds);

/// <summary>
/// <c>caas bench-sockets --nodes N [--kill-node-at S]</c>: N nodes as child processes forming one Akka cluster on one
/// PostgreSQL database (node 0 is the seed; every node gets the same JWT secret and master key), clients spread over
/// them (client i on node i % N), the same phases and last line as the single-node bench (rss_mb is the largest
/// node's). With <c>--kill-node-at S</c> the last node is SIGKILLed S seconds into the measured phase (node 0 serves the
/// bench's REST calls and is the seed, so it is never the one killed): its clients reconnect to another node and
/// <c>Resume</c> from the last event_seq they saw, its senders send their unacknowledged messages again with the same
/// message_id, and at the end every client's messages are checked against its room's history (exactly once after
/// dropping duplicates by event_seq, in seq order). The clients here always track what they receive, so the check
/// runs without a kill too. Loopback only; every loop and wait is bounded; the nodes are killed at the end.
/// </summary>
internal static class SocketClusterBench
{
    internal const char RecordSeparator = '\u001e';
    private const string Tenant = "bench";

    /// <summary>The options this bench adds to <c>bench-sockets</c>.</summary>
    internal sealed class Options
    {
        private readonly Option<int> _nodes = new("--nodes")
            { Description = "Nodes (child processes) in one cluster; more than 1 needs PostgreSQL (--postgres or CAAS_POSTGRES).", DefaultValueFactory = _ => 1 };
        private readonly Option<int?> _killAt = new("--kill-node-at")
            { Description = "With --nodes 2 or more: SIGKILL the last node this many seconds into the measured phase; its clients resume on another node." };
        private readonly Option<int> _ackSeconds = new("--ack-seconds")
        {
            Description = "Clients acknowledge (MarkDelivered {event_seq}) every this many seconds; 0 = never (each acknowledgement " +
                          "that moves is announced to the whole room as a delivered receipt).",
            DefaultValueFactory = _ => 0,
        };

        public Options(Command command)
        {
            command.Options.Add(_nodes);
            command.Options.Add(_killAt);
            command.Options.Add(_ackSeconds);
        }

        /// <summary>Null when none of them is asked for: the single-node bench runs as before.</summary>
        public ClusterSettings? Read(ParseResult parse)
        {
            var nodes = parse.GetValue(_nodes);
            var killAt = parse.GetValue(_killAt);
            var ack = parse.GetValue(_ackSeconds);
            return nodes <= 1 && killAt is null && ack <= 0 ? null : new ClusterSettings(Math.Clamp(nodes, 1, 16), killAt, Math.Clamp(ack, 0, 60));
        }
    }

    public static async Task<int> RunAsync(SocketBench.Settings s, ClusterSettings c, CancellationToken ct)
    {
        if (c.Nodes > 1 && s.Postgres is null)
        {
            await Console.Error.WriteLineAsync("--nodes > 1 needs a database the nodes share: give --postgres \"<Npgsql connection string>\" or set CAAS_POSTGRES.");
            return 2;
        }
        if (c.KillNodeAt is { } k && (c.Nodes < 2 || k < 0 || k >= s.Seconds))
        {
            await Console.Error.WriteLineAsync("--kill-node-at S needs --nodes 2 or more and 0 <= S < --seconds.");
            return 2;
        }
        var run = new Run(s, c);
        try
        {
            return await run.ExecuteAsync(ct);
        }
        finally
        {
            await run.DisposeAsync();
        }
    }

    /// <summary>One node process: where it listens, and its CPU and memory as /proc tells while it lives.</summary>
    private sealed class BenchNode(int index, Process process, Uri address, string dataDir)
    {
        public int Index { get; } = index;
        public Process Process { get; } = process;
        public Uri Address { get; } = address;
        public string DataDir { get; } = dataDir;
        public bool Killed { get; set; }
        public bool Alive => !Killed && !Process.HasExited;
        public double MaxRss { get; set; }
        private double _lastCpu;

        public double CpuSeconds()
        {
            try
            {
                var stat = File.ReadAllText($"/proc/{Process.Id}/stat");
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                _lastCpu = (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                // Gone (killed): its last reading stands.
            }
            return _lastCpu;
        }

        public double Rss()
        {
            try
            {
                foreach (var line in File.ReadLines($"/proc/{Process.Id}/status"))
                    if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                        return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
            return 0;
        }
    }

    /// <summary>A message a client sent and has not seen acknowledged; sent again, with the same message_id, until it is.</summary>
    private sealed class PendingSend(string messageId, long dueTicks)
    {
        public string MessageId { get; } = messageId;
        public long DueTicks { get; } = dueTicks;
        public long LastSentTicks { get; set; }
        public int Attempts { get; set; }
        /// <summary>Answered with a retryable failure: send again soon rather than after the no-answer timeout.</summary>
        public bool Failed { get; set; }
    }

    private sealed class Run(SocketBench.Settings s, ClusterSettings c) : IAsyncDisposable
    {
        private readonly List<BenchNode> _nodes = [];
        private readonly List<ClusterClient> _clients = [];
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        public SocketBench.LatencyHistogram Latencies { get; } = new();
        public ConcurrentDictionary<string, long> RefusedByCode { get; } = new();
        public ConcurrentDictionary<string, long> ClosedBy { get; } = new();
        /// <summary>message_id → (room, seq) of every acknowledged send.</summary>
        public ConcurrentDictionary<string, (string Room, long Seq)> Acked { get; } = new();
        public long SeqConflicts;
        public long Abandoned;
        public long Reconnects, ReconnectFailures, NotResumed, Resent;
        public readonly ConcurrentBag<double> ResumeSeconds = [];
        public long KilledAtTicks;
        public long LastResumedTicks;
        public bool Stopping;
        private JwtSettings _jwt = null!;
        private string? _database;

        public long Now => _clock.ElapsedTicks;

        public IReadOnlyList<BenchNode> Nodes => _nodes;

        public async Task<int> ExecuteAsync(CancellationToken ct)
        {
            _jwt = new JwtSettings(Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(48)), null, null, null);
            // The database remembers the master key its data keys were wrapped with: with CAAS_MASTER_KEY set the nodes use it
            // and the given database; without, a fresh key and a fresh database on the same server (dropped at the end).
            var masterKey = Environment.GetEnvironmentVariable("CAAS_MASTER_KEY") is { Length: > 0 } given ? given : null;
            var postgres = s.Postgres;
            if (postgres is not null && masterKey is null)
            {
                try
                {
                    postgres = _database = await ReplayBench.CreateDatabaseAsync(postgres, ct);
                }
                catch (Npgsql.PostgresException e)
                {
                    await Console.Error.WriteLineAsync($"Could not create a database for the run ({e.MessageText}): set CAAS_MASTER_KEY to the key the given database " +
                                                       "was written with (or to a new one for an empty database), or allow CREATE DATABASE.");
                    return 2;
                }
                Console.WriteLine($"database {new Npgsql.NpgsqlConnectionStringBuilder(postgres).Database} created for this run (CAAS_MASTER_KEY unset; dropped at the end)");
            }
            masterKey ??= Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
            var remotePorts = Enumerable.Range(0, c.Nodes).Select(_ => SocketBench.FreePort()).ToArray();
            var seed = $"akka.tcp://{NodeHost.SystemName}@127.0.0.1:{remotePorts[0]}";
            BenchNode Start(int i)
            {
                var dataDir = Path.Combine(Path.GetTempPath(), $"caas-bench-sockets-{Guid.NewGuid():N}-n{i}");
                var address = new Uri($"http://127.0.0.1:{SocketBench.FreePort()}");
                var env = new Dictionary<string, string>
                {
                    ["CAAS_MASTER_KEY"] = masterKey,
                    ["CAAS_REMOTE_HOSTNAME"] = "127.0.0.1",
                    ["CAAS_REMOTE_PORT"] = remotePorts[i].ToString(CultureInfo.InvariantCulture),
                };
                // A cluster of one keeps the embedded default (no seeds: it joins itself).
                if (c.Nodes > 1) env["CAAS_SEED_NODES"] = seed;
                var node = new BenchNode(i, SocketBench.StartNode(dataDir, address, _jwt.Secret!, postgres, env), address, dataDir);
                lock (_nodes) _nodes.Add(node);
                return node;
            }

            // Node 0 first (it migrates the schema and is the seed), then the others together.
            var clock = Stopwatch.StartNew();
            var first = Start(0);
            using var http = new HttpClient { BaseAddress = first.Address, Timeout = TimeSpan.FromSeconds(60) };
            await WaitUntilLiveAsync(first, ct);
            var others = Enumerable.Range(1, c.Nodes - 1).Select(Start).ToList();
            await Task.WhenAll(others.Select(n => WaitUntilLiveAsync(n, ct)));
            Console.WriteLine($"cluster of {c.Nodes} up in {clock.Elapsed.TotalSeconds:0.0} s (seed {seed}; one PostgreSQL; same JWT secret and master key): " +
                              string.Join(", ", _nodes.Select(n => $"node{n.Index} pid={n.Process.Id} http={n.Address.Port} remote={remotePorts[n.Index]}")));
            Console.WriteLine($"store={(s.Postgres is null ? "sqlite" : "postgres")} cores={Environment.ProcessorCount} (client load runs on the same cores); " +
                              $"connections={s.Connections} room_size={s.RoomSize} rate={s.Rate}/s warmup={s.WarmupSeconds}s seconds={s.Seconds} " +
                              $"kill_node_at={(c.KillNodeAt is { } ka ? ka + "s (node" + (c.Nodes - 1) + ")" : "-")} ack_seconds={c.AckSeconds} " +
                              $"room_topics={(Environment.GetEnvironmentVariable("CAAS_ROOM_TOPICS") is { Length: > 0 } topics ? topics : "pubsub")}");
            if (c.KillNodeAt is not null)
                Console.WriteLine($"failure detection: CAAS_HEARTBEAT_PAUSE={Environment.GetEnvironmentVariable("CAAS_HEARTBEAT_PAUSE") ?? "(default 3s)"} " +
                                  $"CAAS_SBR_STABLE_AFTER={Environment.GetEnvironmentVariable("CAAS_SBR_STABLE_AFTER") ?? "(default 15s)"} (passed on to the nodes)");
            await BenchEnvironment.PrintAsync(Console.Out, postgres, ct);

            http.DefaultRequestHeaders.Authorization = new("Bearer", _jwt.Issue(Tenant, "root", ["admin"]));
            (await RetryAsync(http, () => new HttpRequestMessage(HttpMethod.Put, "/v1/admin/tenant/settings")
            {
                Content = JsonContent.Create(new { message_rate_per_minute = 100_000, message_cap_per_hour = 1_000_000 }),
            }, ct)).Dispose();

            // Rooms of R members; user i is member i % R of room i / R (the last room may be smaller). Through node 0.
            var roomCount = (s.Connections + s.RoomSize - 1) / s.RoomSize;
            var rooms = new string[roomCount];
            clock.Restart();
            await SocketBench.ForEachAsync(Enumerable.Range(0, roomCount), 16, async i =>
            {
                var members = Enumerable.Range(i * s.RoomSize + 1, Math.Min(s.RoomSize, s.Connections - i * s.RoomSize) - 1).Select(User).ToArray();
                var owner = _jwt.Issue(Tenant, User(i * s.RoomSize));
                using var response = await RetryAsync(http, () =>
                {
                    var request = new HttpRequestMessage(HttpMethod.Post, "/v1/conversations")
                    {
                        Content = JsonContent.Create(new { type = "group", title = $"room {i}", members }),
                    };
                    request.Headers.Authorization = new("Bearer", owner);
                    return request;
                }, ct);
                rooms[i] = (await response.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("id").GetString()!;
            }, ct);
            Console.WriteLine($"created {roomCount} rooms in {clock.Elapsed.TotalSeconds:0.0} s (through node0)");

            var baselineRss = _nodes.Select(n => n.Rss()).ToArray();
            var joinCpu = new ClusterCpu(_nodes);
            clock.Restart();
            var failedConnects = 0;
            await SocketBench.ForEachAsync(Enumerable.Range(0, s.Connections), s.ConnectParallel, async i =>
            {
                var client = new ClusterClient(this, i, _jwt.Issue(Tenant, User(i), lifetime: TimeSpan.FromHours(2)), rooms[i / s.RoomSize], i % c.Nodes);
                try
                {
                    await client.ConnectAsync(ct);
                    var joined = await client.InvokeAsync("JoinRoom", $"{{\"conversation_id\":\"{client.Room}\"}}", TimeSpan.FromSeconds(60));
                    if (joined.TryGetProperty("event_seq", out var es) && es.ValueKind == JsonValueKind.Number) client.StartAt(es.GetInt64());
                    lock (_clients) _clients.Add(client);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    await client.CloseAsync();
                    if (Interlocked.Increment(ref failedConnects) <= 3) Console.Error.WriteLine($"connection {i} failed: {e.GetType().Name}: {e.Message}");
                }
            }, ct);
            var connectSeconds = clock.Elapsed.TotalSeconds;
            Console.WriteLine($"connected and joined {_clients.Count} ({failedConnects} failed) in {connectSeconds:0.0} s ({_clients.Count / connectSeconds:0}/s); " +
                              joinCpu.Report());

            using var background = new CancellationTokenSource();
            var pinger = EveryAsync(TimeSpan.FromSeconds(10), () => SocketBench.ForEachAsync(_clients.ToArray(), 64, cl => cl.PingAsync(), background.Token), background.Token);
            var resender = EveryAsync(TimeSpan.FromMilliseconds(250), ResendDueAsync, background.Token);
            var acker = c.AckSeconds > 0
                ? EveryAsync(TimeSpan.FromSeconds(c.AckSeconds), () => SocketBench.ForEachAsync(_clients.ToArray(), 64, cl => cl.AcknowledgeAsync(), background.Token), background.Token)
                : Task.CompletedTask;
            var sampler = EveryAsync(TimeSpan.FromSeconds(1), () =>
            {
                foreach (var n in _nodes.Where(n => n.Alive)) n.MaxRss = Math.Max(n.MaxRss, n.Rss());
                return Task.CompletedTask;
            }, background.Token);
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(s.IdleSeconds), ct);
                var idleRss = _nodes.Select(n => n.Rss()).ToArray();
                var held = _clients.Count(cl => cl.IsOpen);
                var kbPerIdle = held == 0 ? 0 : (idleRss.Sum() - baselineRss.Sum()) * 1024 / held;
                Console.WriteLine($"idle: {held} connections held; rss per node " +
                                  string.Join(", ", _nodes.Select(n => $"node{n.Index} {baselineRss[n.Index]:0} -> {idleRss[n.Index]:0} MB")) +
                                  $" ({kbPerIdle:0.0} KB per connection over all nodes)");

                // Load: Rate messages/s, round-robin over rooms, each from a random member of its room.
                var byRoom = _clients.GroupBy(cl => cl.Room).Select(g => g.ToArray()).ToArray();
                var random = new Random(7);
                var roomCursor = 0;
                async Task<long> SendForAsync(TimeSpan length, int? killAt)
                {
                    var sent = 0L;
                    clock.Restart();
                    while (clock.Elapsed < length && !ct.IsCancellationRequested)
                    {
                        if (killAt is { } at && clock.Elapsed.TotalSeconds >= at && KilledAtTicks == 0) Kill(_nodes[^1], clock.Elapsed.TotalSeconds);
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
                            sends.Add(sender.SendNewAsync(Latencies.Now - Math.Max(0, late)));
                            sent++;
                        }
                        await Task.WhenAll(sends);
                        await Task.Delay(10, ct);
                    }
                    return sent;
                }
                if (s.WarmupSeconds > 0)
                {
                    var warm = await SendForAsync(TimeSpan.FromSeconds(s.WarmupSeconds), null);
                    Console.WriteLine($"warm-up: sent {warm} in {s.WarmupSeconds} s");
                    await Task.Delay(TimeSpan.FromSeconds(2), ct);
                }
                Latencies.Reset();
                RefusedByCode.Clear();
                var deliveredBefore = _clients.Sum(cl => cl.Delivered);
                var ackedBefore = Acked.Count;
                foreach (var n in _nodes) n.MaxRss = n.Rss();
                var loadCpu = new ClusterCpu(_nodes);
                var sent = await SendForAsync(TimeSpan.FromSeconds(s.Seconds), c.KillNodeAt);
                var sendSeconds = clock.Elapsed.TotalSeconds;
                var loadCpuReport = loadCpu.Report();
                // Stragglers: wait (bounded) for deliveries to stop growing.
                long last = -1, now;
                for (var i = 0; i < 50 && (now = _clients.Sum(cl => cl.Delivered)) != last; i++)
                {
                    last = now;
                    await Task.Delay(200, ct);
                }
                var deliveries = _clients.Sum(cl => cl.Delivered) - deliveredBefore;
                var perSecond = deliveries / sendSeconds;
                Console.WriteLine($"load: sent {sent} in {sendSeconds:0.0} s, acknowledged {Acked.Count - ackedBefore} so far; {deliveries} deliveries = {perSecond:0}/s");
                if (!RefusedByCode.IsEmpty)
                    Console.WriteLine("refused by code (retried with the same message_id): " + string.Join(", ", RefusedByCode.Select(kv => $"{kv.Key}={kv.Value}")));
                Console.WriteLine($"send-to-receive latency: p50 {Latencies.Percentile(0.50)} ms, p99 {Latencies.Percentile(0.99)} ms, max {Latencies.Max} ms" +
                                  (c.KillNodeAt is null ? "" : " (resent and resumed messages count from the time they were first due)"));
                Console.WriteLine($"load cpu: {loadCpuReport}");
                Console.WriteLine("load rss (max sampled each second): " + string.Join(", ", _nodes.Select(n => $"node{n.Index} {n.MaxRss:0} MB{(n.Killed ? " (killed)" : "")}")));
                var rssMb = _nodes.Max(n => Math.Max(n.MaxRss, idleRss[n.Index]));
                var latencyLine = (p50: Latencies.Percentile(0.50), p99: Latencies.Percentile(0.99));

                await CheckAsync(http, rooms, ct);

                held = _clients.Count(cl => cl.IsOpen);
                Console.WriteLine($"connections={held} deliveries_per_s={perSecond:0} p50_ms={latencyLine.p50} p99_ms={latencyLine.p99} " +
                                  $"rss_mb={rssMb:0} kb_per_idle_connection={kbPerIdle:0.0} join_s={connectSeconds:0.0}");
                return 0;
            }
            finally
            {
                Stopping = true;
                background.Cancel();
                await Task.WhenAll(pinger, resender, acker, sampler);
            }
        }

        /// <summary>Waits for the node's /health/ready; if it exits first, shows the end of what it wrote to stderr.</summary>
        private static async Task WaitUntilLiveAsync(BenchNode node, CancellationToken ct)
        {
            using var h = new HttpClient { BaseAddress = node.Address, Timeout = TimeSpan.FromSeconds(60) };
            try
            {
                await SocketBench.WaitUntilLiveAsync(h, node.Process, ct);
            }
            catch (InvalidOperationException) when (SocketBench.NodeErrors.TryGetValue(node.Process, out var errors))
            {
                var text = await errors.WaitAsync(TimeSpan.FromSeconds(5));
                throw new InvalidOperationException($"node{node.Index} exited with {node.Process.ExitCode}: {text[Math.Max(0, text.Length - 2000)..]}");
            }
        }

        private void Kill(BenchNode node, double intoPhase)
        {
            node.CpuSeconds(); // its last CPU reading, for the phase's report
            node.Killed = true;
            KilledAtTicks = Math.Max(1, Now);
            var affected = _clients.Count(cl => cl.Node == node.Index);
            try
            {
                node.Process.Kill(entireProcessTree: true); // SIGKILL
            }
            catch (InvalidOperationException)
            {
            }
            Console.WriteLine($"killed node{node.Index} (pid {node.Process.Id}, SIGKILL) {intoPhase:0.0} s into the measured phase; {affected} clients were connected to it");
        }

        /// <summary>Sends again what is due: answered with a retryable failure (backing off from 1 s to 8 s), or unanswered for 8 s.</summary>
        private Task ResendDueAsync()
        {
            var now = Now;
            foreach (var client in _clients.ToArray()) client.ResendDue(now);
            return Task.CompletedTask;
        }

        /// <summary>The node a dropped client tries next: the live ones other than the one it was on, in turn.</summary>
        public int NextNode(ClusterClient client, int attempt)
        {
            var alive = _nodes.Where(n => n.Alive).Select(n => n.Index).ToList();
            if (alive.Count == 0) return client.Node;
            var others = alive.Where(i => i != client.Node).ToList();
            var pool = others.Count > 0 && attempt % 3 != 2 ? others : alive;
            return pool[(client.Index + attempt) % pool.Count];
        }

        public Uri AddressOf(int node) => _nodes[node].Address;

        /// <summary>
        /// After the load: wait (bounded) for every send to be acknowledged and for each room's history to reach every
        /// member, then compare each client's messages (duplicates by event_seq dropped) with its room's history.
        /// </summary>
        private async Task CheckAsync(HttpClient http, string[] rooms, CancellationToken ct)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromSeconds(60) && _clients.Any(cl => cl.PendingCount > 0)) await Task.Delay(250, ct);
            var unacked = _clients.Sum(cl => cl.PendingCount);
            var reconnecting = _clients.Count(cl => cl.Reconnecting);
            Console.WriteLine($"sends settled in {clock.Elapsed.TotalSeconds:0.0} s: {Acked.Count} acknowledged, {unacked} still unacknowledged, {Interlocked.Read(ref Abandoned)} abandoned " +
                              $"after 40 attempts, {Interlocked.Read(ref Resent)} sends repeated (same message_id), {Interlocked.Read(ref SeqConflicts)} acknowledged twice with different seqs; " +
                              $"{reconnecting} clients still reconnecting");

            // Each room's messages, as its history tells (through node 0, as its first member).
            var truth = new Dictionary<string, List<(long Seq, string MessageId)>>();
            var historyProblems = 0;
            await SocketBench.ForEachAsync(Enumerable.Range(0, rooms.Length), 8, async r =>
            {
                var list = await HistoryAsync(http, rooms[r], User(r * s.RoomSize), ct);
                lock (truth) truth[rooms[r]] = list;
            }, ct);
            var doublePersisted = truth.Values.Sum(l => l.Count - l.Select(m => m.MessageId).Distinct().Count());
            var gaps = truth.Values.Sum(l => l.Count == 0 ? 0 : (int)(l[^1].Seq - l.Count));
            var truthIds = truth.Values.SelectMany(l => l).ToDictionary(m => m.MessageId, m => m.Seq, StringComparer.Ordinal);
            var ackedMissing = Acked.Count(kv => !truthIds.TryGetValue(kv.Key, out var seq) || seq != kv.Value.Seq);
            historyProblems = doublePersisted + gaps + ackedMissing;
            Console.WriteLine($"history: {truth.Values.Sum(l => l.Count)} messages in {rooms.Length} rooms; acknowledged but not in history (or another seq) {ackedMissing}; " +
                              $"message_ids persisted twice {doublePersisted}; seq gaps {gaps}");

            // Drain: wait (bounded) until every client has its room's last message.
            clock.Restart();
            bool Drained(ClusterClient cl) => truth.TryGetValue(cl.Room, out var l) && (l.Count == 0 || cl.HasSeq(l[^1].Seq));
            while (clock.Elapsed < TimeSpan.FromSeconds(60) && !_clients.All(Drained)) await Task.Delay(250, ct);
            Console.WriteLine($"drained in {clock.Elapsed.TotalSeconds:0.0} s: {_clients.Count(Drained)} of {_clients.Count} clients have their room's last message");

            int complete = 0, withMissing = 0, withDuplicates = 0, withOutOfOrder = 0, withExtra = 0;
            long missing = 0, duplicatesAfter = 0, outOfOrder = 0, extra = 0, dropped = 0;
            var examples = new List<string>();
            foreach (var client in _clients)
            {
                var expected = truth[client.Room];
                var r = client.Check(expected.Select(m => m.Seq));
                dropped += r.DuplicatesDropped;
                missing += r.Missing;
                duplicatesAfter += r.DuplicatesAfterDedupe;
                outOfOrder += r.OutOfOrder;
                extra += r.Extra;
                if (r.Missing > 0) withMissing++;
                if (r.DuplicatesAfterDedupe > 0) withDuplicates++;
                if (r.OutOfOrder > 0) withOutOfOrder++;
                if (r.Extra > 0) withExtra++;
                if (r.Missing == 0 && r.DuplicatesAfterDedupe == 0 && r.OutOfOrder == 0 && r.Extra == 0) complete++;
                else if (examples.Count < 5)
                    examples.Add($"u{client.Index} (node{client.Node}, reconnects {client.Reconnects}): {r.Detail}");
            }
            foreach (var e in examples) Console.WriteLine("  check: " + e);
            var resume = ResumeSeconds.OrderBy(x => x).ToArray();
            if (KilledAtTicks > 0 || resume.Length > 0)
            {
                string P(double p) => resume.Length == 0 ? "-" : resume[Math.Min(resume.Length - 1, (int)Math.Ceiling(resume.Length * p) - 1)].ToString("0.00", CultureInfo.InvariantCulture);
                var allResumed = KilledAtTicks > 0 && LastResumedTicks > KilledAtTicks
                    ? ((LastResumedTicks - KilledAtTicks) / (double)Stopwatch.Frequency).ToString("0.0", CultureInfo.InvariantCulture) + " s after the kill"
                    : "-";
                Console.WriteLine($"resume: {Interlocked.Read(ref Reconnects)} reconnects ({Interlocked.Read(ref ReconnectFailures)} attempts failed, " +
                                  $"{Interlocked.Read(ref NotResumed)} answered resumed=false); from drop to Resume answered: p50 {P(0.5)} s, p99 {P(0.99)} s, " +
                                  $"max {P(1)} s; last client resumed {allResumed}");
            }
            if (!ClosedBy.IsEmpty)
                Console.WriteLine("connections closed by the server: " + string.Join(", ", ClosedBy.Select(kv => $"{kv.Key}={kv.Value}")));
            Console.WriteLine($"resume_check clients={_clients.Count} complete={complete} missing={missing} duplicates_after_dedupe={duplicatesAfter} " +
                              $"out_of_order={outOfOrder} not_in_room={extra} duplicates_dropped={dropped} " +
                              $"(clients with missing {withMissing}, duplicates {withDuplicates}, out of order {withOutOfOrder}, not in room {withExtra}; history problems {historyProblems})");
        }

        /// <summary>
        /// A REST call, tried again (up to 30 times, a second apart) while the cluster answers 503 or 429: shards move
        /// while nodes join or after one died.
        /// </summary>
        private static async Task<HttpResponseMessage> RetryAsync(HttpClient http, Func<HttpRequestMessage> make, CancellationToken ct)
        {
            for (var attempt = 1; ; attempt++)
            {
                using var request = make();
                HttpResponseMessage? response = null;
                try
                {
                    response = await http.SendAsync(request, ct);
                    if (response.IsSuccessStatusCode) return response;
                    if (attempt >= 30 || (int)response.StatusCode is not (503 or 429 or 504)) response.EnsureSuccessStatusCode();
                }
                catch (Exception e) when (attempt < 30 && e is TaskCanceledException { InnerException: TimeoutException })
                {
                }
                response?.Dispose();
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
            }
        }

        private async Task<List<(long Seq, string MessageId)>> HistoryAsync(HttpClient http, string room, string user, CancellationToken ct)
        {
            var list = new List<(long, string)>();
            var after = 0L;
            var token = _jwt.Issue(Tenant, user);
            for (var page = 0; page < 10_000; page++)
            {
                using var response = await RetryAsync(http, () =>
                {
                    var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/messages/conversations/{room}?after_seq={after}&limit=200");
                    request.Headers.Authorization = new("Bearer", token);
                    return request;
                }, ct);
                var body = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
                var items = body.GetProperty("items");
                foreach (var item in items.EnumerateArray())
                    list.Add((item.GetProperty("seq").GetInt64(), item.GetProperty("message_id").GetString()!));
                if (items.GetArrayLength() < 200) break;
                after = list[^1].Item1;
            }
            return list;
        }

        private static async Task EveryAsync(TimeSpan interval, Func<Task> body, CancellationToken ct)
        {
            try
            {
                while (!ct.IsCancellationRequested)
                {
                    await Task.Delay(interval, ct);
                    await body();
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            Stopping = true;
            ClusterClient[] clients;
            lock (_clients) clients = [.. _clients];
            await Task.WhenAll(clients.Select(cl => cl.CloseAsync()));
            BenchNode[] nodes;
            lock (_nodes) nodes = [.. _nodes];
            foreach (var node in nodes)
            {
                try
                {
                    if (!node.Process.HasExited)
                    {
                        node.Process.Kill(entireProcessTree: true);
                        await node.Process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
                    }
                }
                catch (Exception e)
                {
                    Console.Error.WriteLine($"node{node.Index} (pid {node.Process.Id}) did not stop: {e.Message}");
                }
                node.Process.Dispose();
                try
                {
                    if (Directory.Exists(node.DataDir)) Directory.Delete(node.DataDir, recursive: true);
                }
                catch (IOException)
                {
                }
            }
            if (_database is not null)
            {
                try
                {
                    await ReplayBench.DropDatabaseAsync(s.Postgres!, _database);
                }
                catch (Exception e) when (e is Npgsql.NpgsqlException or InvalidOperationException)
                {
                    Console.Error.WriteLine($"could not drop {new Npgsql.NpgsqlConnectionStringBuilder(_database).Database}: {e.Message}");
                }
            }
        }
    }

    private static string User(int i) => $"u{i}";

    /// <summary>CPU of every node (from /proc; a killed node's up to its kill) and of this process (the clients).</summary>
    private sealed class ClusterCpu
    {
        private readonly IReadOnlyList<BenchNode> _nodes;
        private readonly double[] _start;
        private readonly double _clients = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
        private readonly Stopwatch _wall = Stopwatch.StartNew();

        public ClusterCpu(IReadOnlyList<BenchNode> nodes)
        {
            _nodes = nodes;
            _start = nodes.Select(n => n.CpuSeconds()).ToArray();
        }

        public string Report()
        {
            var wall = Math.Max(_wall.Elapsed.TotalSeconds, 0.001);
            var parts = _nodes.Select(n =>
            {
                var cpu = n.CpuSeconds() - _start[n.Index];
                return $"node{n.Index} {cpu:0.0} s ({cpu / wall:0.00} cores{(n.Killed ? ", until killed" : "")})";
            });
            var clients = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - _clients;
            return $"cpu over {wall:0.0} s: {string.Join(", ", parts)}; clients {clients:0.0} s ({clients / wall:0.00} cores)";
        }
    }

    /// <summary>
    /// One member's hub connection (SignalR JSON over a raw WebSocket) that keeps what it received (event_seq, seq),
    /// reconnects to another node when its connection drops and resumes from the last event_seq it saw, and sends
    /// messages with a message_id it repeats until the send is acknowledged.
    /// </summary>
    private sealed class ClusterClient(Run run, int index, string token, string room, int node)
    {
        private static readonly byte[] PingBytes = Encoding.UTF8.GetBytes("{\"type\":6}" + RecordSeparator);
        private readonly SemaphoreSlim _sendLock = new(1, 1);
        private readonly Dictionary<string, TaskCompletionSource<JsonElement>> _calls = [];
        private readonly Dictionary<string, PendingSend> _pending = new(StringComparer.Ordinal);
        private readonly List<(long EventSeq, long Seq)> _log = [];
        private readonly HashSet<long> _seqs = [];
        private ClientWebSocket? _socket;
        private int _callIds;
        private long _lastEventSeq, _ackedEventSeq, _delivered;
        private int _reconnecting;
        private bool _closed;

        public int Index { get; } = index;
        public string Room { get; } = room;
        public int Node { get; private set; } = node;
        public int Reconnects { get; private set; }
        public bool IsOpen => _socket?.State == WebSocketState.Open;
        public bool Reconnecting => Volatile.Read(ref _reconnecting) == 1;
        public long Delivered => Interlocked.Read(ref _delivered);

        public int PendingCount
        {
            get { lock (_pending) return _pending.Count; }
        }

        public void StartAt(long eventSeq) => _lastEventSeq = eventSeq;

        public bool HasSeq(long seq)
        {
            lock (_log) return _seqs.Contains(seq);
        }

        public async Task ConnectAsync(CancellationToken ct)
        {
            var socket = new ClientWebSocket();
            socket.Options.KeepAliveInterval = TimeSpan.Zero;
            socket.Options.SetBuffer(4096, 4096);
            var uri = new UriBuilder(run.AddressOf(Node)) { Scheme = "ws", Path = "/hubs/chat", Query = "access_token=" + token }.Uri;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(15));
            try
            {
                await socket.ConnectAsync(uri, timeout.Token);
                await socket.SendAsync(Encoding.UTF8.GetBytes("{\"protocol\":\"json\",\"version\":1}" + RecordSeparator), WebSocketMessageType.Text, true, timeout.Token);
                var buffer = new byte[256];
                var first = await socket.ReceiveAsync(buffer, timeout.Token);
                if (Encoding.UTF8.GetString(buffer, 0, first.Count) != "{}" + RecordSeparator)
                    throw new InvalidOperationException("Handshake refused: " + Encoding.UTF8.GetString(buffer, 0, first.Count));
            }
            catch
            {
                socket.Dispose();
                throw;
            }
            _socket = socket;
            _ = ReceiveLoopAsync(socket);
        }

        /// <summary>Invokes a hub method and returns its result (throws unless it answers success).</summary>
        public async Task<JsonElement> InvokeAsync(string target, string argumentJson, TimeSpan timeout)
        {
            var id = "c" + Interlocked.Increment(ref _callIds).ToString(CultureInfo.InvariantCulture);
            var done = new TaskCompletionSource<JsonElement>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_calls) _calls[id] = done;
            try
            {
                await SendRawAsync(Encoding.UTF8.GetBytes($"{{\"type\":1,\"invocationId\":\"{id}\",\"target\":\"{target}\",\"arguments\":[{argumentJson}]}}{RecordSeparator}"));
                var result = await done.Task.WaitAsync(timeout);
                if (!(result.ValueKind == JsonValueKind.Object && result.TryGetProperty("success", out var ok) && ok.ValueKind == JsonValueKind.True))
                    throw new InvalidOperationException($"{target} failed: {result}");
                return result;
            }
            finally
            {
                lock (_calls) _calls.Remove(id);
            }
        }

        /// <summary>A new message (its text carries the time it was due); sent now if connected, else after the reconnect.</summary>
        public Task SendNewAsync(long dueTicks)
        {
            var send = new PendingSend("m_" + Guid.CreateVersion7().ToString("N"), dueTicks) { LastSentTicks = run.Now, Attempts = 1 };
            lock (_pending) _pending[send.MessageId] = send;
            return IsOpen && !Reconnecting ? SendRawAsync(SendBytes(send)) : Task.CompletedTask;
        }

        private byte[] SendBytes(PendingSend send) => Encoding.UTF8.GetBytes(
            $"{{\"type\":1,\"invocationId\":\"{send.MessageId}\",\"target\":\"SendMessage\",\"arguments\":[{{\"conversation_id\":\"{Room}\"," +
            $"\"content\":\"b:{send.DueTicks}\",\"message_id\":\"{send.MessageId}\"}}]}}{RecordSeparator}");

        public void ResendDue(long now)
        {
            if (!IsOpen || Reconnecting) return;
            List<PendingSend>? due = null;
            lock (_pending)
            {
                foreach (var p in _pending.Values)
                {
                    var waited = (now - p.LastSentTicks) / (double)Stopwatch.Frequency;
                    // A refused send waits 1, 2, 4, then 8 s between tries (a persist_timeout is still being written).
                    if (!(p.Failed ? waited >= Math.Min(8, 1 << Math.Min(3, p.Attempts - 1)) : waited >= 8)) continue;
                    (due ??= []).Add(p);
                }
                if (due is null) return;
                foreach (var p in due)
                {
                    if (++p.Attempts > 40)
                    {
                        _pending.Remove(p.MessageId);
                        Interlocked.Increment(ref run.Abandoned);
                        continue;
                    }
                    p.Failed = false;
                    p.LastSentTicks = now;
                }
                due.RemoveAll(p => !_pending.ContainsKey(p.MessageId));
            }
            foreach (var p in due)
            {
                Interlocked.Increment(ref run.Resent);
                _ = SendRawAsync(SendBytes(p));
            }
        }

        /// <summary>MarkDelivered up to the last event_seq, when it moved (the answer is not awaited).</summary>
        public Task AcknowledgeAsync()
        {
            var last = Interlocked.Read(ref _lastEventSeq);
            if (last <= _ackedEventSeq || !IsOpen || Reconnecting) return Task.CompletedTask;
            _ackedEventSeq = last;
            return SendRawAsync(Encoding.UTF8.GetBytes(
                $"{{\"type\":1,\"invocationId\":\"a\",\"target\":\"MarkDelivered\",\"arguments\":[{{\"conversation_id\":\"{Room}\",\"event_seq\":{last}}}]}}{RecordSeparator}"));
        }

        public Task PingAsync() => IsOpen ? SendRawAsync(PingBytes) : Task.CompletedTask;

        private async Task SendRawAsync(byte[] bytes)
        {
            var socket = _socket;
            if (socket is null) return;
            await _sendLock.WaitAsync();
            try
            {
                if (socket.State == WebSocketState.Open) await socket.SendAsync(bytes, WebSocketMessageType.Text, true, CancellationToken.None);
            }
            catch (Exception e) when (e is WebSocketException or ObjectDisposedException or IOException)
            {
            }
            finally
            {
                _sendLock.Release();
            }
        }

        private async Task ReceiveLoopAsync(ClientWebSocket socket)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(8192);
            var message = new ArrayBufferWriter<byte>(1024);
            try
            {
                while (socket.State == WebSocketState.Open)
                {
                    var r = await socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
                    if (r.MessageType == WebSocketMessageType.Close) break;
                    message.Write(buffer.AsSpan(0, r.Count));
                    if (!r.EndOfMessage) continue;
                    var span = message.WrittenSpan;
                    var start = 0;
                    for (var i = 0; i < span.Length; i++)
                    {
                        if (span[i] != (byte)RecordSeparator) continue;
                        Handle(span[start..i]);
                        start = i + 1;
                    }
                    message.Clear();
                }
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException or IOException)
            {
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
            // Calls waiting on this connection will not be answered.
            lock (_calls)
                foreach (var call in _calls.Values) call.TrySetException(new WebSocketException("The connection closed."));
            if (!_closed && !run.Stopping && ReferenceEquals(socket, _socket)) _ = Task.Run(ReconnectAsync);
        }

        private static readonly byte[] TargetKey = "\"target\":\""u8.ToArray();
        private static readonly byte[] EventSeqKey = "\"event_seq\":"u8.ToArray();
        private static readonly byte[] SeqKey = "\"seq\":"u8.ToArray();
        private static readonly byte[] BenchText = "\"text\":\"b:"u8.ToArray();
        private static readonly byte[] Completion = "\"type\":3"u8.ToArray();
        private static readonly byte[] CloseType = "\"type\":7"u8.ToArray();

        private void Handle(ReadOnlySpan<byte> span)
        {
            var at = span.IndexOf(TargetKey);
            if (at >= 0)
            {
                var name = span[(at + TargetKey.Length)..];
                name = name[..name.IndexOf((byte)'"')];
                // Receipts carry an event_seq too (the sender's acknowledgement), but are not events of the room's journal.
                if (name.SequenceEqual("delivered"u8)) return;
                var es = span.IndexOf(EventSeqKey);
                if (es < 0 || !Utf8Parser.TryParse(span[(es + EventSeqKey.Length)..], out long eventSeq, out _)) return;
                var isMessage = name.SequenceEqual("newMessage"u8);
                long seq = 0;
                if (isMessage)
                {
                    var sa = span.IndexOf(SeqKey);
                    if (sa >= 0) Utf8Parser.TryParse(span[(sa + SeqKey.Length)..], out seq, out _);
                }
                bool fresh;
                lock (_log)
                {
                    _log.Add((eventSeq, seq));
                    fresh = eventSeq > _lastEventSeq;
                    if (fresh) Volatile.Write(ref _lastEventSeq, eventSeq);
                    if (isMessage && fresh) _seqs.Add(seq);
                }
                if (isMessage && fresh)
                {
                    Interlocked.Increment(ref _delivered);
                    var bt = span.IndexOf(BenchText);
                    if (bt >= 0 && Utf8Parser.TryParse(span[(bt + BenchText.Length)..], out long ticks, out _)) run.Latencies.Record(ticks);
                }
                return;
            }
            if (span.IndexOf(CloseType) >= 0)
            {
                var doc = JsonDocument.Parse(span.ToArray());
                var reason = doc.RootElement.TryGetProperty("error", out var err) ? err.GetString() ?? "close" : "close";
                var colon = reason.IndexOf(':');
                run.ClosedBy.AddOrUpdate(colon > 0 ? reason[..colon] : reason, 1, (_, n) => n + 1);
                return;
            }
            if (span.IndexOf(Completion) < 0) return;
            using var completion = JsonDocument.Parse(span.ToArray());
            var root = completion.RootElement;
            var id = root.TryGetProperty("invocationId", out var idElement) ? idElement.GetString() ?? "" : "";
            var result = root.TryGetProperty("result", out var res) ? res.Clone()
                : JsonDocument.Parse($"{{\"success\":false,\"error\":{{\"code\":\"hub_error\",\"message\":{JsonSerializer.Serialize(root.TryGetProperty("error", out var e) ? e.GetString() : "")}}}}}").RootElement.Clone();
            if (id.StartsWith("m_", StringComparison.Ordinal))
            {
                OnSendAnswered(id, result);
                return;
            }
            TaskCompletionSource<JsonElement>? call;
            lock (_calls) _calls.TryGetValue(id, out call);
            call?.TrySetResult(result);
        }

        private void OnSendAnswered(string messageId, JsonElement result)
        {
            if (result.TryGetProperty("success", out var ok) && ok.ValueKind == JsonValueKind.True)
            {
                lock (_pending) _pending.Remove(messageId);
                var seq = result.GetProperty("seq").GetInt64();
                var stored = run.Acked.GetOrAdd(messageId, (Room, seq));
                if (stored.Seq != seq) Interlocked.Increment(ref run.SeqConflicts);
                return;
            }
            var code = result.TryGetProperty("error", out var error) && error.TryGetProperty("code", out var c) ? c.GetString() ?? "error" : "error";
            run.RefusedByCode.AddOrUpdate(code, 1, (_, n) => n + 1);
            lock (_pending)
            {
                if (!_pending.TryGetValue(messageId, out var p)) return;
                // Anything but a refusal of the message itself is worth another try with the same message_id.
                if (code is "validation_failed" or "not_found" or "forbidden" or "payload_too_large") _pending.Remove(messageId);
                else p.Failed = true;
            }
        }

        /// <summary>
        /// The connection dropped (its node died, or the node closed it): connect to another node, Resume the room from
        /// the last event_seq received, then send again every message not yet acknowledged, with the same message_id.
        /// </summary>
        private async Task ReconnectAsync()
        {
            if (Interlocked.Exchange(ref _reconnecting, 1) == 1) return;
            var droppedAt = run.Now;
            Interlocked.Increment(ref run.Reconnects);
            Reconnects++;
            try
            {
                for (var attempt = 0; attempt < 60 && !_closed && !run.Stopping; attempt++)
                {
                    if (attempt > 0) await Task.Delay(TimeSpan.FromSeconds(1));
                    var old = _socket;
                    Node = run.NextNode(this, attempt);
                    try
                    {
                        old?.Dispose();
                        await ConnectAsync(CancellationToken.None);
                        // The room may be briefly unavailable (its entity was on the dead node): ask again on this connection.
                        for (var tries = 0; tries < 30 && !_closed; tries++)
                        {
                            var from = Interlocked.Read(ref _lastEventSeq);
                            JsonElement answer;
                            try
                            {
                                answer = await InvokeAsync("Resume", $"{{\"rooms\":[{{\"conversation_id\":\"{Room}\",\"event_seq\":{from}}}]}}", TimeSpan.FromSeconds(30));
                            }
                            catch (InvalidOperationException)
                            {
                                await Task.Delay(TimeSpan.FromSeconds(1));
                                continue;
                            }
                            var roomAnswer = answer.GetProperty("rooms")[0];
                            if (!(roomAnswer.TryGetProperty("success", out var ok) && ok.ValueKind == JsonValueKind.True))
                            {
                                await Task.Delay(TimeSpan.FromSeconds(1));
                                continue;
                            }
                            if (!(roomAnswer.TryGetProperty("resumed", out var resumed) && resumed.ValueKind == JsonValueKind.True))
                                Interlocked.Increment(ref run.NotResumed);
                            var took = (run.Now - droppedAt) / (double)Stopwatch.Frequency;
                            run.ResumeSeconds.Add(took);
                            InterlockedMax(ref run.LastResumedTicks, run.Now);
                            Volatile.Write(ref _reconnecting, 0);
                            ResendAll();
                            return;
                        }
                        throw new InvalidOperationException("Resume did not succeed in 30 tries.");
                    }
                    catch (Exception e) when (e is WebSocketException or InvalidOperationException or OperationCanceledException or TimeoutException
                                                  or HttpRequestException or IOException)
                    {
                        Interlocked.Increment(ref run.ReconnectFailures);
                    }
                }
            }
            finally
            {
                Volatile.Write(ref _reconnecting, 0);
            }
        }

        private void ResendAll()
        {
            List<PendingSend> all;
            var now = run.Now;
            lock (_pending)
            {
                all = [.. _pending.Values];
                foreach (var p in all)
                {
                    p.Attempts++;
                    p.Failed = false;
                    p.LastSentTicks = now;
                }
            }
            foreach (var p in all)
            {
                Interlocked.Increment(ref run.Resent);
                _ = SendRawAsync(SendBytes(p));
            }
        }

        private static void InterlockedMax(ref long target, long value)
        {
            long seen;
            while ((seen = Interlocked.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
            {
            }
        }

        public sealed record CheckResult(long DuplicatesDropped, long Missing, long DuplicatesAfterDedupe, long OutOfOrder, long Extra, string Detail);

        /// <summary>
        /// Drops duplicates by event_seq (as a client would), then compares the messages left, in the order received,
        /// with the room's history: each seq of it exactly once, in seq order, and nothing else.
        /// </summary>
        public CheckResult Check(IEnumerable<long> roomSeqs)
        {
            List<(long EventSeq, long Seq)> log;
            lock (_log) log = [.. _log];
            var seenEvents = new HashSet<long>();
            var messages = new List<long>();
            long dropped = 0;
            foreach (var (eventSeq, seq) in log)
            {
                if (!seenEvents.Add(eventSeq))
                {
                    dropped++;
                    continue;
                }
                if (seq > 0) messages.Add(seq);
            }
            var expected = roomSeqs.ToHashSet();
            var got = new HashSet<long>();
            long duplicates = 0, outOfOrder = 0, extra = 0, highest = 0;
            foreach (var seq in messages)
            {
                if (!got.Add(seq)) duplicates++;
                else if (!expected.Contains(seq)) extra++;
                if (seq < highest) outOfOrder++;
                highest = Math.Max(highest, seq);
            }
            var missingSeqs = expected.Where(x => !got.Contains(x)).Order().ToList();
            var detail = $"received {messages.Count} messages, room has {expected.Count}; missing {missingSeqs.Count}" +
                         (missingSeqs.Count > 0 ? $" (seq {string.Join(",", missingSeqs.Take(8))}{(missingSeqs.Count > 8 ? ",…" : "")})" : "") +
                         $", duplicates {duplicates}, out of order {outOfOrder}, not in room {extra}";
            return new CheckResult(dropped, missingSeqs.Count, duplicates, outOfOrder, extra, detail);
        }

        public async Task CloseAsync()
        {
            _closed = true;
            var socket = _socket;
            if (socket is null) return;
            try
            {
                if (socket.State == WebSocketState.Open)
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(2));
            }
            catch (Exception)
            {
            }
            socket.Dispose();
        }
    }
}
