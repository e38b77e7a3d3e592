using System.Diagnostics;
using System.Text.Json;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Caas.Node;
using Caas.Tests.Shared;
using Xunit.Abstractions;

namespace Caas.IntegrationTests;

/// <summary>
/// Three nodes in one process on one PostgreSQL database, clustered over real remoting on 127.0.0.1: conversations
/// spread over the nodes, any node serves any conversation, and when a node leaves (or crashes and is downed) its
/// conversations come back on the others with all their state.
/// </summary>
public sealed class ThreeNodeClusterTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Tenant = "acme";
    private const int ConversationCount = 30;
    private const int MessagesEach = 3;
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(30);

    private readonly List<TestNode> _nodes = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        // The youngest first, so that no survivor has to take over anything on the way out.
        foreach (var node in Enumerable.Reverse(_nodes))
        {
            try { await node.StopAsync(); }
            catch (Exception e) { output.WriteLine($"{node.Name} did not stop cleanly: {e.Message}"); }
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Conversations_spread_over_the_nodes_and_survive_a_node_leaving()
    {
        var nodes = await StartClusterAsync();
        var rooms = await WriteRoomsAsync(nodes);
        var hosted = await AssertSpreadAsync(nodes, rooms);
        var before = await ReadEverywhereAsync(nodes, rooms);

        // The oldest node leaves gracefully (coordinated shutdown): it hosts the shard coordinators and the read-model
        // projection too, so shards hand off, and the coordinators and the projection singleton move.
        var leaving = nodes[0];
        var moved = rooms.Where(r => hosted[0].Contains(EntityId(r.Id))).ToList();
        Assert.NotEmpty(moved);
        var survivors = nodes.Skip(1).ToList();
        var writers = Writers.Start(rooms.Where((_, i) => i % 2 == 0), survivors);
        await Task.Delay(500);
        var leave = Stopwatch.StartNew();
        await leaving.StopAsync();
        await AwaitClusterOfTwoAsync(survivors);
        Log($"{leaving.Name} left ({moved.Count} conversations to move) in {leave.Elapsed.TotalSeconds:0.0} s");
        await Task.Delay(1000);
        var acked = await writers.StopAsync(this);

        await AssertSurvivorsServeEverythingAsync(survivors, rooms, before, moved, acked);
    }

    [Fact(Timeout = 120_000)]
    public async Task Conversations_of_a_crashed_node_come_back_after_it_is_downed()
    {
        // A crash, as the others see it: the node's actor system stops without leaving the cluster, so it turns
        // unreachable and the split-brain resolver (keep-majority) downs it.
        var nodes = await StartClusterAsync("""
            akka.coordinated-shutdown.run-by-actor-system-terminate = off
            akka.cluster.run-coordinated-shutdown-when-down = off
            akka.cluster.split-brain-resolver.stable-after = 2s
            """);
        var rooms = await WriteRoomsAsync(nodes);
        var hosted = await AssertSpreadAsync(nodes, rooms);
        var before = await ReadEverywhereAsync(nodes, rooms);

        // The oldest crashes: the coordinators and the projection fail over too, the projection from its stored offset.
        var crashed = nodes[0];
        var moved = rooms.Where(r => hosted[0].Contains(EntityId(r.Id))).ToList();
        Assert.NotEmpty(moved);
        var survivors = nodes.Skip(1).ToList();
        var writers = Writers.Start(rooms.Where((_, i) => i % 2 == 0), survivors);
        await Task.Delay(500);
        var crash = Stopwatch.StartNew();
        var crashedAddress = crashed.Cluster.SelfAddress;
        await crashed.System.Terminate().WaitAsync(TimeSpan.FromSeconds(20));
        // It did not leave: the survivors find it unreachable first, and only the resolver's decision removes it.
        await Eventually.HoldsAsync(() => survivors[0].Cluster.State.Unreachable.Any(m => m.Address == crashedAddress),
            Settle, $"{crashed.Name} is unreachable");
        Assert.Contains(survivors[0].Cluster.State.Members, m => m.Address == crashedAddress);
        await AwaitClusterOfTwoAsync(survivors);
        Log($"{crashed.Name} crashed and was downed and removed ({moved.Count} conversations to move) in {crash.Elapsed.TotalSeconds:0.0} s");
        // Until the crashed node is removed, the projection singleton cannot start elsewhere, so lists trail the
        // entities (the edge waits at most 2 s). Once it runs again, reading one's own writes must hold again.
        var staleUntil = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        await Task.Delay(TimeSpan.FromSeconds(8));
        var acked = await writers.StopAsync(this, staleUntil);

        await AssertSurvivorsServeEverythingAsync(survivors, rooms, before, moved, acked);
    }

    private async Task<List<TestNode>> StartClusterAsync(string extraHocon = "")
    {
        var database = TestDatabases.NewPostgresDatabase("cluster");
        var ports = Enumerable.Range(0, 3).Select(_ => TestNode.FreeTcpPort()).ToArray();
        var seed = $"akka.tcp://{NodeHost.SystemName}@127.0.0.1:{ports[0]}";
        // One at a time: each creates the read-model schema when it starts.
        for (var i = 0; i < 3; i++)
        {
            _nodes.Add(await TestNode.StartAsync($"node{i + 1}", new NodeOptions
            {
                Postgres = database,
                SeedNodes = [seed],
                LogLevel = "Warning",
                ExtraHocon = $"""
                    akka.remote.dot-netty.tcp.hostname = "127.0.0.1"
                    akka.remote.dot-netty.tcp.port = {ports[i]}
                    akka.loglevel = WARNING
                    akka.cluster.sharding.retry-interval = 500ms
                    {extraHocon}
                    """,
            }));
        }

        await Eventually.HoldsAsync(() => _nodes.All(n => n.Cluster.State.Members.Count(m => m.Status == MemberStatus.Up) == 3),
            Settle, "all three members Up on every node");
        // The coordinator allocates a new shard to the region with the fewest, so wait until it knows all three.
        await Eventually.HoldsAsync(async () =>
            (await _nodes[0].Conversations.Ask<CurrentRegions>(GetCurrentRegions.Instance, TimeSpan.FromSeconds(3))).Regions.Count == 3,
            Settle, "the shard coordinator knows three conversation regions");
        Log("cluster of three is up");
        // Writers post as fast as the cluster answers; the per-user rate limit has its own tests.
        await _nodes[0].As(Tenant, "root", "admin").Expect(200, HttpMethod.Put, "/v1/admin/tenant/settings", new { message_rate_per_minute = 100_000 });
        return _nodes;
    }

    private sealed record Room(string Id, string Owner, List<string> MessageIds);

    /// <summary>
    /// Each conversation is created on one node and written to through the others (each owner is a user of its
    /// own, so the per-user message rate never interferes).
    /// </summary>
    private async Task<Room[]> WriteRoomsAsync(List<TestNode> nodes)
    {
        var rooms = new Room[ConversationCount];
        await Parallel.ForEachAsync(Enumerable.Range(0, ConversationCount), new ParallelOptions { MaxDegreeOfParallelism = 6 }, async (i, _) =>
        {
            var owner = $"owner{i}";
            var id = await nodes[i % 3].As(Tenant, owner).CreateGroupAsync($"room {i}", "bob", "carol");
            var room = new Room(id, owner, []);
            // The owner's user-session entity (profile, rate window) is sharded too, and moves like the conversations.
            await nodes[(i + 1) % 3].As(Tenant, owner).Expect(200, HttpMethod.Put, "/v1/users/me",
                new { display_name = $"Owner {i}", time_zone = "Europe/Oslo", locale = "nb-NO" });
            for (var m = 1; m <= MessagesEach; m++)
            {
                var ack = await nodes[(i + m) % 3].As(Tenant, owner).PostMessageAsync(id, $"room {i} message {m}", $"m-{i}-{m}");
                Assert.Equal(m, ack.GetProperty("seq").GetInt64());
                room.MessageIds.Add(ack.Str("message_id"));
            }
            rooms[i] = room;
        });
        Log($"{ConversationCount} conversations with {MessagesEach} messages each written");
        return rooms;
    }

    /// <summary>Every conversation lives on exactly one node, and more than one node hosts some.</summary>
    private async Task<List<HashSet<string>>> AssertSpreadAsync(List<TestNode> nodes, Room[] rooms)
    {
        var hosted = new List<HashSet<string>>();
        foreach (var node in nodes) hosted.Add(await node.HostedConversationsAsync());
        Log("conversations per node: " + string.Join(", ", hosted.Select((h, i) => $"{nodes[i].Name}={h.Count}")));
        foreach (var room in rooms)
            Assert.Equal(1, hosted.Count(h => h.Contains(EntityId(room.Id))));
        Assert.True(hosted.Count(h => h.Count > 0) >= 2, "conversations should spread over more than one node");
        return hosted;
    }

    /// <summary>Any node reads any conversation, whichever node hosts it; answers what each conversation looks like.</summary>
    private static async Task<Dictionary<string, (JsonElement Conversation, List<JsonElement> Messages)>> ReadEverywhereAsync(
        List<TestNode> nodes, Room[] rooms)
    {
        var seen = new Dictionary<string, (JsonElement, List<JsonElement>)>();
        foreach (var (room, i) in rooms.Select((r, i) => (r, i)))
        {
            JsonElement? first = null;
            foreach (var node in nodes)
            {
                var conversation = await Owner(node, room).Expect(200, HttpMethod.Get, $"/v1/conversations/{room.Id}");
                Assert.Equal(MessagesEach, conversation.GetProperty("last_seq").GetInt64());
                Assert.Equal(["bob", "carol", room.Owner],
                    conversation.GetProperty("members").EnumerateArray().Select(m => m.Str("user_id")).Order(StringComparer.Ordinal));
                if (first is { } f) JsonAssert.Same(f, conversation, $"conversation {room.Id} through {node.Name}");
                first = conversation;
            }
            var messages = await Owner(nodes[(i + 2) % 3], room).AllMessagesAsync(room.Id);
            Assert.Equal(Enumerable.Range(1, MessagesEach).Select(s => (long)s), messages.Select(m => m.GetProperty("seq").GetInt64()));
            Assert.Equal(room.MessageIds, messages.Select(m => m.Str("message_id")));
            seen[room.Id] = (first!.Value, messages);
        }
        return seen;
    }

    private static Task AwaitClusterOfTwoAsync(List<TestNode> survivors) =>
        Eventually.HoldsAsync(() => survivors.All(n =>
                n.Cluster.State.Members.Count == 2 && n.Cluster.State.Members.All(m => m.Status == MemberStatus.Up)),
            Settle, "the survivors see a cluster of two");

    /// <summary>
    /// Every conversation answers on both survivors: a quiet one with exactly the state it had, a busy one (written
    /// to while the node went away) with every acknowledged message exactly once, at the sequence number its
    /// acknowledgement gave, and no gap. Writing then continues gap-free, the read model (whose projection may have
    /// moved) catches up, and the moved conversations live on the survivors.
    /// </summary>
    private async Task AssertSurvivorsServeEverythingAsync(List<TestNode> survivors, Room[] rooms,
        Dictionary<string, (JsonElement Conversation, List<JsonElement> Messages)> before, List<Room> moved,
        IReadOnlyDictionary<string, Dictionary<string, long>> acked)
    {
        var lastSeq = new Dictionary<string, long>();
        foreach (var (room, i) in rooms.Select((r, i) => (r, i)))
        {
            var api = Owner(survivors[i % 2], room);
            if (!acked.TryGetValue(room.Id, out var written))
            {
                foreach (var node in survivors)
                    JsonAssert.Same(before[room.Id].Conversation,
                        await Owner(node, room).Expect(200, HttpMethod.Get, $"/v1/conversations/{room.Id}"), $"conversation {room.Id} on {node.Name}");
                var messages = await api.AllMessagesAsync(room.Id);
                Assert.Equal(before[room.Id].Messages.Count, messages.Count);
                for (var m = 0; m < messages.Count; m++)
                    JsonAssert.Same(before[room.Id].Messages[m], messages[m], $"message {m + 1} of {room.Id} on {survivors[i % 2].Name}");
                lastSeq[room.Id] = MessagesEach;
                continue;
            }

            var expected = MessagesEach + written.Count;
            var conversation = await api.Expect(200, HttpMethod.Get, $"/v1/conversations/{room.Id}");
            Assert.Equal(expected, conversation.GetProperty("last_seq").GetInt64());
            List<JsonElement> all = [];
            await Eventually.HoldsAsync(async () => (all = await api.AllMessagesAsync(room.Id)).Count >= expected,
                TimeSpan.FromSeconds(20), $"the read model lists the {expected} messages of {room.Id}");
            Assert.Equal(Enumerable.Range(1, expected).Select(s => (long)s), all.Select(m => m.GetProperty("seq").GetInt64()));
            var bySeq = all.ToDictionary(m => m.GetProperty("seq").GetInt64(), m => m.Str("message_id"));
            Assert.Equal(expected, bySeq.Values.Distinct().Count());
            Assert.Equal(room.MessageIds, Enumerable.Range(1, MessagesEach).Select(s => bySeq[s]));
            foreach (var (id, seq) in written) Assert.True(bySeq[seq] == id, $"{room.Id}: {id} was acknowledged as seq {seq}, which holds {bySeq[seq]}");
            lastSeq[room.Id] = expected;
        }
        foreach (var (room, i) in rooms.Select((r, i) => (r, i)))
        {
            var profile = await Owner(survivors[i % 2], room).Expect(200, HttpMethod.Get, "/v1/users/me");
            Assert.Equal((room.Owner, $"Owner {i}", "Europe/Oslo", "nb-NO"),
                (profile.Str("user_id"), profile.Str("display_name"), profile.Str("time_zone"), profile.Str("locale")));
        }
        Log($"every conversation's and profile's state is intact on the survivors ({acked.Values.Sum(w => w.Count)} messages written during the change)");

        await Parallel.ForEachAsync(rooms, new ParallelOptions { MaxDegreeOfParallelism = 6 }, async (room, _) =>
        {
            for (var m = 1; m <= 2; m++)
            {
                var ack = await Owner(survivors[m % 2], room).PostMessageAsync(room.Id, $"after {m}");
                Assert.Equal(lastSeq[room.Id] + m, ack.GetProperty("seq").GetInt64());
            }
        });

        foreach (var room in rooms)
        {
            var api = Owner(survivors[0], room);
            var expected = lastSeq[room.Id] + 2;
            List<JsonElement> messages = [];
            await Eventually.HoldsAsync(async () => (messages = await api.AllMessagesAsync(room.Id)).Count == expected,
                TimeSpan.FromSeconds(20), $"the read model lists the new messages of {room.Id}");
            Assert.Equal(Enumerable.Range(1, (int)expected).Select(s => (long)s), messages.Select(m => m.GetProperty("seq").GetInt64()));
        }

        var after = new HashSet<string>();
        foreach (var node in survivors) after.UnionWith(await node.HostedConversationsAsync());
        Assert.All(moved, r => Assert.Contains(EntityId(r.Id), after));
        Log("writing goes on gap-free and the moved conversations live on the survivors");
    }

    /// <summary>
    /// Clients that keep posting while the cluster changes, as a real client should: a message that gets no
    /// acknowledgement (503 while its conversation moves, or a lost connection) is retried with the same
    /// message_id until it is acknowledged. Answers, per conversation, each message id and its acknowledged seq.
    /// </summary>
    private sealed class Writers
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Dictionary<string, Dictionary<string, long>> _acked = [];
        private readonly List<Task> _tasks = [];
        private readonly List<string> _retries = [];

        public static Writers Start(IEnumerable<Room> rooms, List<TestNode> via)
        {
            var writers = new Writers();
            foreach (var room in rooms)
            {
                var acked = writers._acked[room.Id] = [];
                writers._tasks.Add(Task.Run(() => writers.WriteAsync(room, via, acked)));
            }
            return writers;
        }

        private async Task WriteAsync(Room room, List<TestNode> via, Dictionary<string, long> acked)
        {
            for (var n = 0; !_stop.IsCancellationRequested; n++)
            {
                var id = $"w-{room.Id}-{n}";
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(40);
                for (var attempt = 0; ; attempt++)
                {
                    var api = Owner(via[(n + attempt) % via.Count], room);
                    string outcome;
                    try
                    {
                        var (status, body) = await api.Post("/v1/messages", new { conversation_id = room.Id, content = new { type = "text", text = id }, message_id = id });
                        if (status is 201 or 200)
                        {
                            Assert.Equal(id, body.Str("message_id"));
                            var seq = acked[id] = body.GetProperty("seq").GetInt64();
                            if (n % 3 == 0) await ReadOwnWriteAsync(api, room, id, seq);
                            break;
                        }
                        outcome = $"{status} {(body.ValueKind == JsonValueKind.Object && body.TryGetProperty("code", out var c) ? c.GetString() : body.ToString())}";
                        Assert.True(status is 503 or 500 or 429, $"{id}: unexpected {outcome}");
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                    {
                        outcome = e.GetType().Name;
                    }
                    lock (_retries) _retries.Add($"{id} on {api.BaseAddress.Port}: {outcome}");
                    Assert.True(DateTime.UtcNow < deadline, $"{id} was never acknowledged");
                    await Task.Delay(100);
                }
                await Task.Delay(50);
            }
        }

        /// <summary>Read-your-writes, while the cluster changes: the next list call shows the acknowledged message.</summary>
        private async Task ReadOwnWriteAsync(Api api, Room room, string id, long seq)
        {
            var (status, page) = await api.Get($"/v1/messages/conversations/{room.Id}?after_seq={seq - 1}&limit=1");
            if (status == 503) return; // the conversation is moving: the client is told to retry, which is honest
            var items = status == 200 ? page.GetProperty("items").EnumerateArray().ToList() : [];
            if (items.Count != 1 || items[0].Str("message_id") != id)
                lock (_stale) _stale.Add((DateTime.UtcNow, $"{id} (seq {seq}) via {api.BaseAddress.Port}: {status} {page}"));
            else Interlocked.Increment(ref _readsChecked);
        }

        private readonly List<(DateTime At, string What)> _stale = [];
        private int _readsChecked;

        /// <param name="staleUntil">
        /// Until when a list call may miss the caller's own acknowledged message (null: never). While the read-model
        /// projection fails over from a crashed node, the edge's capped wait runs out and lists are stale.
        /// </param>
        public async Task<IReadOnlyDictionary<string, Dictionary<string, long>>> StopAsync(ThreeNodeClusterTests test, DateTime? staleUntil = null)
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_tasks).WaitAsync(TimeSpan.FromSeconds(60));
            var failed = _retries.GroupBy(r => r[(r.IndexOf(": ", StringComparison.Ordinal) + 2)..]).Select(g => $"{g.Key} x{g.Count()}");
            test.Log($"writers: {_acked.Values.Sum(a => a.Count)} acknowledged, {_retries.Count} retries ({string.Join(", ", failed)}); " +
                     $"{_readsChecked} reads of own writes, {_stale.Count} stale" +
                     (_stale.Count > 0 ? $" (the last {(staleUntil ?? DateTime.UtcNow) - _stale.Max(x => x.At):s\\.f} s before the allowed end)" : ""));
            var violations = _stale.Where(x => staleUntil is null || x.At > staleUntil).Select(x => x.What).ToList();
            Assert.True(violations.Count == 0, "a list call right after an acknowledgement missed the message:\n" + string.Join("\n", violations.Take(5)));
            return _acked;
        }
    }

    private static string EntityId(string conversation) => Caas.Actors.Common.Ids.EntityId(Tenant, conversation);

    private static Api Owner(TestNode node, Room room) => node.As(Tenant, room.Owner);

    private void Log(string line) => output.WriteLine($"[{_clock.Elapsed.TotalSeconds,5:0.0} s] {line}");
}
