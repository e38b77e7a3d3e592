using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Caas.FaultTests.Harness;
using Caas.Streams.Kafka;
using Confluent.Kafka;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Npgsql;
using Xunit.Abstractions;

namespace Caas.FaultTests.BadInput;

/// <summary>
/// The bad-input corpus (<see cref="Corpus"/>, a few hundred generated cases) against a node of the fault cluster:
/// each is answered with a 4xx (a problem with a stable code where there is a body), a hub error object with a code,
/// a closed hub connection, or — on Kafka — a dead letter or the broker's refusal; never a 5xx; and the digest of the
/// tenant's conversation and tenant journals and of its messages read model is the same after the case as before.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class BadInputTests(FaultCluster cluster, ITestOutputHelper output)
{
    public static IEnumerable<object[]> Cases() => Corpus.All.Select(c => new object[] { c.Name });

    [Fact]
    public void The_corpus_has_at_least_300_cases_on_every_channel()
    {
        Assert.True(Corpus.All.Count >= 300, $"{Corpus.All.Count} cases");
        foreach (var channel in Enum.GetValues<Channel>())
            Assert.True(Corpus.All.Count(c => c.Channel == channel) >= 10, $"{channel}: {Corpus.All.Count(c => c.Channel == channel)} cases");
        output.WriteLine(string.Join(", ", Corpus.All.GroupBy(c => c.Channel).Select(g => $"{g.Key}: {g.Count()}")) + $"; total {Corpus.All.Count}");
    }

    [Theory(Timeout = 5 * 60_000)]
    [MemberData(nameof(Cases))]
    public Task Bad_input_is_refused_and_changes_nothing(string name) => RunCaseAsync(name);

    private async Task RunCaseAsync(string name)
    {
        var world = await World.GetAsync(cluster);
        var c = Corpus.Get(name);
        var before = await world.DigestAsync();
        Verdict verdict;
        for (var attempt = 1; ; attempt++)
        {
            verdict = c.Channel switch
            {
                Channel.Rest => await RestAsync(world, c),
                Channel.RawHttp => await RawHttpAsync(world, c),
                Channel.Hub => await HubAsync(world, c),
                Channel.RawHub => await RawHubAsync(world, c),
                Channel.Ndjson => await NdjsonAsync(world, c),
                Channel.Kafka => await KafkaAsync(world, c),
                _ => throw new ArgumentOutOfRangeException(nameof(name)),
            };
            // A loaded machine may answer 503 overloaded or unavailable ("retry"): the input was not judged, so it is
            // sent again, as a client would; only the verdict on the input counts.
            if (verdict.Ok || attempt == 5 || !verdict.RetryLater) break;
            output.WriteLine($"{name}: attempt {attempt} answered {verdict.What}; retrying");
            await Task.Delay(TimeSpan.FromSeconds(2 * attempt));
        }
        output.WriteLine($"{name}: {verdict.What}");
        Assert.True(verdict.Ok, $"{name}: {verdict.What}");
        // Still serving, and nothing stored or changed.
        Assert.True(await cluster.Nodes[0].ReadyAsync() || await WaitReadyAsync(), "node0 no longer ready after the case");
        var after = await world.DigestAsync();
        Assert.True(before == after, $"{name}: the journals or the messages read model changed ({before} -> {after})");
    }

    private async Task<bool> WaitReadyAsync()
    {
        await cluster.WaitReadyAsync(cluster.Nodes[0], TimeSpan.FromMinutes(2));
        return true;
    }

    /// <param name="RetryLater">The node did not judge the input (503 with the code <c>overloaded</c> or <c>unavailable</c>).</param>
    private sealed record Verdict(bool Ok, string What, bool RetryLater = false);

    private static Verdict FromHttp(int status, string body, string? contentType)
    {
        if (status is < 400 or >= 500) return new Verdict(false, $"HTTP {status}: {Clip(body)}", status == 503 && ProblemCode(body) is "overloaded" or "unavailable");
        if (contentType?.Contains("json", StringComparison.OrdinalIgnoreCase) == true && body.Length > 0)
        {
            try
            {
                var json = JsonDocument.Parse(body).RootElement;
                if (json.ValueKind != JsonValueKind.Object || !json.TryGetProperty("code", out var code) || code.ValueKind != JsonValueKind.String)
                    return new Verdict(false, $"HTTP {status} without a code: {Clip(body)}");
                return new Verdict(true, $"HTTP {status} {code.GetString()}");
            }
            catch (JsonException)
            {
                return new Verdict(false, $"HTTP {status} with a broken JSON body: {Clip(body)}");
            }
        }
        return new Verdict(true, $"HTTP {status} (no JSON body)");
    }

    /// <summary>The problem+json body's <c>code</c>, or null when the body is not one.</summary>
    private static string? ProblemCode(string body)
    {
        try
        {
            return JsonDocument.Parse(body).RootElement is { ValueKind: JsonValueKind.Object } json
                   && json.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.String
                ? code.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Clip(string s) => s.Length > 300 ? s[..300] + "…" : s;

    private static async Task<Verdict> RestAsync(World world, BadCase c)
    {
        using var request = new HttpRequestMessage(new HttpMethod(c.Method), new Uri(world.Node, world.Fill(c.Path, uri: true)));
        if (world.TokenFor(c.Token) is { } auth)
        {
            if (auth.StartsWith("RAW:", StringComparison.Ordinal)) request.Headers.TryAddWithoutValidation("Authorization", auth[4..]);
            else request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + auth);
        }
        if (c.Body is not null)
        {
            request.Content = new ByteArrayContent(world.Fill(c.Body));
            if (c.ContentType is not null) request.Content.Headers.TryAddWithoutValidation("Content-Type", c.ContentType);
        }
        try
        {
            using var response = await World.Http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            return FromHttp((int)response.StatusCode, body, response.Content.Headers.ContentType?.MediaType);
        }
        catch (HttpRequestException e)
        {
            // Kestrel may answer a request it refuses (body too large) and close before the whole body is sent.
            return new Verdict(e.InnerException is IOException or SocketException, "connection closed by the server: " + e.Message);
        }
    }

    private static async Task<Verdict> RawHttpAsync(World world, BadCase c)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", world.Node.Port);
        var stream = tcp.GetStream();
        using var writing = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await stream.WriteAsync(world.Fill(c.Body!), writing.Token);
            await stream.FlushAsync(writing.Token);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            // The server may close as soon as it has read enough to refuse; what it answered is read below.
        }
        var buffer = new byte[8192];
        var read = 0;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            while (read < buffer.Length)
            {
                var n = await stream.ReadAsync(buffer.AsMemory(read), timeout.Token);
                if (n == 0) break;
                read += n;
                if (Encoding.ASCII.GetString(buffer, 0, read).Contains("\r\n\r\n", StringComparison.Ordinal)) break;
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            if (read == 0) return new Verdict(e is IOException, "closed without an answer: " + e.GetType().Name);
        }
        var text = Encoding.ASCII.GetString(buffer, 0, read);
        if (read == 0) return new Verdict(true, "closed without an answer");
        var parts = text.Split(' ', 3);
        if (parts.Length < 2 || !int.TryParse(parts[1], out var status)) return new Verdict(false, "not an HTTP answer: " + Clip(text));
        // 505 is HTTP's own answer to a version it does not speak (a refusal, not a failure).
        return status is >= 400 and < 500 or 505 ? new Verdict(true, $"HTTP {status}") : new Verdict(false, $"HTTP {status}: {Clip(text)}");
    }

    private static async Task<Verdict> HubAsync(World world, BadCase c)
    {
        var hub = await world.HubAsync();
        var args = c.HubArgs!.Select(a => (object?)JsonDocument.Parse(world.Fill(JsonSerializer.Serialize(a), uri: false)).RootElement).ToArray();
        using var call = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            var answer = await hub.InvokeCoreAsync<JsonElement>(c.Method, args, call.Token);
            if (answer.TryGetProperty("success", out var s) && s.ValueKind == JsonValueKind.False &&
                answer.TryGetProperty("error", out var error) && error.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.String)
                return new Verdict(code.GetString() != "internal", $"hub error {code.GetString()}");
            return new Verdict(false, "hub answered " + Clip(answer.ToString()));
        }
        catch (Microsoft.AspNetCore.SignalR.HubException e)
        {
            // A frame the hub cannot bind to the method's parameters is refused by SignalR itself with an invocation error.
            return new Verdict(e.Message.Contains("binding", StringComparison.OrdinalIgnoreCase), "hub invocation error: " + e.Message);
        }
    }

    private static async Task<Verdict> RawHubAsync(World world, BadCase c)
    {
        using var socket = new ClientWebSocket();
        var uri = new Uri($"ws://127.0.0.1:{world.Node.Port}/hubs/chat?access_token={Uri.EscapeDataString(world.TokenFor(Tokens.Alice)!)}");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await socket.ConnectAsync(uri, timeout.Token);
        await socket.SendAsync("{\"protocol\":\"json\",\"version\":1}\u001e"u8.ToArray(), WebSocketMessageType.Text, true, timeout.Token);
        var handshake = await ReceiveAsync(socket, timeout.Token);
        if (handshake is null || !handshake.StartsWith('{')) return new Verdict(false, "no handshake answer: " + handshake);
        try
        {
            await socket.SendAsync(world.Fill(c.Body!), WebSocketMessageType.Text, true, timeout.Token);
        }
        catch (WebSocketException)
        {
            return new Verdict(true, "the server closed the socket");
        }
        // A frame without an invocation id gets no completion: a probe invocation right after it shows whether the
        // connection is still usable (the frame ignored) — the other acceptable answer is a close with an error.
        var invocation = Encoding.UTF8.GetString(c.Body!).Contains("invocationId", StringComparison.Ordinal);
        if (!invocation)
        {
            try
            {
                await socket.SendAsync("{\"type\":1,\"invocationId\":\"probe\",\"target\":\"GetPresence\",\"arguments\":[{\"user_id\":\"bob\"}]}\u001e"u8.ToArray(),
                    WebSocketMessageType.Text, true, timeout.Token);
            }
            catch (WebSocketException)
            {
                return new Verdict(true, "the server closed the socket");
            }
        }
        // Pings (type 6) are skipped; a bounded number of frames is read.
        for (var i = 0; i < 20; i++)
        {
            string? frame;
            try
            {
                frame = await ReceiveAsync(socket, timeout.Token);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
                return new Verdict(e is WebSocketException, "socket: " + e.Message);
            }
            if (frame is null) return new Verdict(true, "the server closed the socket");
            foreach (var message in frame.Split('\u001e', StringSplitOptions.RemoveEmptyEntries))
            {
                using var json = JsonDocument.Parse(message);
                var type = json.RootElement.GetProperty("type").GetInt32();
                if (type == 7) return new Verdict(true, "closed: " + Clip(message));
                if (type != 3) continue;
                if (json.RootElement.TryGetProperty("error", out _)) return new Verdict(true, "completion error: " + Clip(message));
                if (Json.Str(json.RootElement, "invocationId") == "probe") return new Verdict(true, "frame ignored, connection still answers");
                var result = json.RootElement.GetProperty("result");
                var ok = result.TryGetProperty("success", out var s) && s.ValueKind == JsonValueKind.False
                         && result.GetProperty("error").TryGetProperty("code", out var code) && code.GetString() != "internal";
                return new Verdict(ok, "completion: " + Clip(message));
            }
        }
        return new Verdict(false, "no answer to the frame");
    }

    private static async Task<string?> ReceiveAsync(ClientWebSocket socket, CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        using var ms = new MemoryStream();
        while (true)
        {
            var r = await socket.ReceiveAsync(buffer, ct);
            if (r.MessageType == WebSocketMessageType.Close) return null;
            ms.Write(buffer, 0, r.Count);
            if (r.EndOfMessage) return Encoding.UTF8.GetString(ms.ToArray());
            if (ms.Length > 4 << 20) throw new InvalidOperationException("frame too large");
        }
    }

    private static async Task<Verdict> NdjsonAsync(World world, BadCase c)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(world.Node, "/v1/ingest"))
        {
            Content = new ByteArrayContent(world.Fill(c.Body!)),
        };
        request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/x-ndjson");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + world.TokenFor(Tokens.Ingest));
        using var response = await World.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        var status = (int)response.StatusCode;
        if (status != 200) return FromHttp(status, body, response.Content.Headers.ContentType?.MediaType);
        var answers = body.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (answers.Length != 1) return new Verdict(false, $"{answers.Length} answer lines for one line: {Clip(body)}");
        var line = JsonDocument.Parse(answers[0]).RootElement;
        var ok = Json.Str(line, "status") == "rejected" && Json.Str(line, "code") is { } code && code != "internal";
        return new Verdict(ok, "line " + Clip(answers[0]));
    }

    private static async Task<Verdict> KafkaAsync(World world, BadCase c)
    {
        var marker = "zq" + Guid.NewGuid().ToString("N")[..12];
        var value = world.Fill(c.Body!, marker);
        var key = c.ContentType == "other-key" ? "other-key" : world.Room;
        try
        {
            await world.Producer.ProduceAsync(c.Path, new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(key), Value = value });
        }
        catch (ProduceException<byte[], byte[]> e)
        {
            return new Verdict(true, "refused by the broker: " + e.Error.Reason);
        }
        // The record is consumed by some node of the cluster and dead-lettered; wait for its row (bounded).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            var reason = await world.DeadLetterAsync(marker);
            if (reason is not null) return new Verdict(true, "dead-lettered: " + reason);
            await Task.Delay(500);
        }
        return new Verdict(false, "not dead-lettered within 90 s");
    }

    /// <summary>The corpus tenant's world (made once): a room with alice (owner) and bob, one message, another tenant's room.</summary>
    private sealed class World
    {
        public static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(60) };
        private static readonly SemaphoreSlim Gate = new(1, 1);
        private static World? _world;
        private readonly FaultCluster _cluster;
        private HubConnection? _hub;

        private World(FaultCluster cluster, string tenant)
        {
            _cluster = cluster;
            Tenant = tenant;
            // The world lives as long as the test process; once the suite's broker is gone, its reconnect complaints are noise.
            Producer = new ProducerBuilder<byte[], byte[]>(new KafkaSettings { Bootstrap = cluster.Services.Kafka, Profile = KafkaProfile.Compat09 }.ProducerConfig())
                .SetLogHandler((_, _) => { })
                .SetErrorHandler((_, _) => { })
                .Build();
        }

        public string Tenant { get; }
        public string Room { get; private set; } = "";
        public string OtherRoom { get; private set; } = "";
        public string MessageId { get; private set; } = "";
        public long Seq { get; private set; }
        public Uri Node => _cluster.Nodes[0].Url;
        public IProducer<byte[], byte[]> Producer { get; }

        public static async Task<World> GetAsync(FaultCluster cluster)
        {
            await Gate.WaitAsync();
            try
            {
                if (_world is not null && _world._cluster == cluster) return _world;
                var w = new World(cluster, "badin-" + Guid.NewGuid().ToString("N")[..8]);
                await cluster.AllReadyAsync(TimeSpan.FromMinutes(5));
                var alice = w.TokenFor(Tokens.Alice)!;
                w.Room = (await Rest.ExpectAsync(w.Node, alice, HttpMethod.Post, "/v1/conversations",
                    JsonSerializer.Serialize(new { type = "group", title = "bad input", members = new[] { "bob" } }), 201)).GetProperty("id").GetString()!;
                var posted = await Rest.ExpectAsync(w.Node, alice, HttpMethod.Post, "/v1/messages",
                    JsonSerializer.Serialize(new { conversation_id = w.Room, content = new { type = "text", text = "the one good message" }, message_id = "good-1" }), 201);
                w.MessageId = "good-1";
                w.Seq = posted.GetProperty("seq").GetInt64();
                // The digest reads the read model directly: wait until the projection has written the good message, so
                // that its arrival is not taken for a change made by the first case.
                var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
                while (await Sql.ScalarAsync(cluster.Database, $"SELECT count(*) FROM rm_messages WHERE tenant_id = '{w.Tenant}'") < 1)
                {
                    if (DateTime.UtcNow > deadline) throw new TimeoutException("the read model did not get the world's message");
                    await Task.Delay(200);
                }
                w.OtherRoom = (await Rest.ExpectAsync(w.Node, w.TokenFor(Tokens.Eve)!, HttpMethod.Post, "/v1/conversations",
                    JsonSerializer.Serialize(new { type = "group", title = "elsewhere", members = new[] { "frank" } }), 201)).GetProperty("id").GetString()!;
                _world = w;
                return w;
            }
            finally
            {
                Gate.Release();
            }
        }

        public string Fill(string s, bool uri) =>
            s.Replace("{room}", Room, StringComparison.Ordinal).Replace("{other_room}", OtherRoom, StringComparison.Ordinal)
                .Replace("{msg}", MessageId, StringComparison.Ordinal).Replace("{tenant}", Tenant, StringComparison.Ordinal)
                .Replace("\"{seq}\"", Seq.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
                .Replace("{alice}", TokenFor(Tokens.Alice), StringComparison.Ordinal);

        public byte[] Fill(byte[] body, string? marker = null)
        {
            // Placeholders are ASCII; the rest of the bytes (possibly not UTF-8) are kept as they are.
            var latin = Encoding.Latin1.GetString(body);
            var filled = Fill(latin, uri: false);
            if (marker is not null) filled = filled.Replace("{marker}", marker, StringComparison.Ordinal);
            return Encoding.Latin1.GetBytes(filled);
        }

        public string? TokenFor(string kind)
        {
            var jwt = FaultCluster.Jwt;
            var secret = Encoding.UTF8.GetBytes(FaultCluster.Secret);
            var exp = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeSeconds();
            return kind switch
            {
                Tokens.Alice or Tokens.Bob or Tokens.Mallory => jwt.Issue(Tenant, kind),
                Tokens.Eve => jwt.Issue("other-" + Tenant, "eve"),
                Tokens.Ingest => jwt.Issue(Tenant, "ingest-service", ["ingest"]),
                Tokens.Admin => jwt.Issue(Tenant, "admin-user", ["admin"]),
                Tokens.None => null,
                "forged" => Sign(new { sub = "alice", tenant_id = Tenant, exp }, Encoding.UTF8.GetBytes("not-the-secret-not-the-secret-not-the-secret-0")),
                "expired" => Sign(new { sub = "alice", tenant_id = Tenant, exp = DateTimeOffset.UtcNow.AddHours(-2).ToUnixTimeSeconds() }, secret),
                "alg-none" => B64(new { alg = "none", typ = "JWT" }) + "." + B64(new { sub = "alice", tenant_id = Tenant, exp }) + ".",
                "alg-none-no-sig" => B64(new { alg = "none" }) + "." + B64(new { sub = "alice", tenant_id = Tenant, exp }),
                "alg-hs512" => Sign(new { sub = "alice", tenant_id = Tenant, exp }, secret, "HS512"),
                "no-tenant" => Sign(new { sub = "alice", exp }, secret),
                "no-sub" => Sign(new { tenant_id = Tenant, exp }, secret),
                "tenant-control-char" => Sign(new { sub = "alice", tenant_id = Tenant + "\n", exp }, secret),
                "sub-control-char" => Sign(new { sub = "alice\u0000", tenant_id = Tenant, exp }, secret),
                "garbage" => "garbage",
                "empty" => "RAW:Bearer ",
                "two-dots" => "..",
                "four-parts" => jwt.Issue(Tenant, "alice") + ".extra",
                "base64-junk" => "!!!.@@@.###",
                "not-before-future" => Sign(new { sub = "alice", tenant_id = Tenant, exp, nbf = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeSeconds() }, secret),
                "huge-claims" => Sign(new { sub = "alice", tenant_id = Tenant, exp, pad = new string('p', 12_000), roles = new[] { "admin" } }, Encoding.UTF8.GetBytes("wrong-secret-wrong-secret-wrong-secret-0000")),
                "json-array-payload" => B64(new { alg = "HS256", typ = "JWT" }) + "." + B64(new[] { 1, 2 }) + ".c2ln",
                "basic-scheme" => "RAW:Basic YWxpY2U6cGFzc3dvcmQ=",
                "lowercase-bearer-garbage" => "RAW:bearer x.y.z",
                "bearer-space-only" => "RAW:Bearer  ",
                _ => throw new ArgumentOutOfRangeException(nameof(kind), kind),
            };
        }

        private static string B64(object o) => Base64Url(JsonSerializer.SerializeToUtf8Bytes(o));

        private static string Base64Url(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');

        private static string Sign(object claims, byte[] key, string alg = "HS256")
        {
            var head = B64(new { alg, typ = "JWT" }) + "." + B64(claims);
            var sig = alg == "HS512" ? HMACSHA512.HashData(key, Encoding.ASCII.GetBytes(head)) : HMACSHA256.HashData(key, Encoding.ASCII.GetBytes(head));
            return head + "." + Base64Url(sig);
        }

        public async Task<HubConnection> HubAsync()
        {
            if (_hub is { State: HubConnectionState.Connected }) return _hub;
            if (_hub is not null) await _hub.DisposeAsync();
            var token = TokenFor(Tokens.Alice)!;
            _hub = new HubConnectionBuilder()
                .WithUrl(new Uri(Node, "/hubs/chat"), o =>
                {
                    o.AccessTokenProvider = () => Task.FromResult<string?>(token);
                    o.Transports = HttpTransportType.WebSockets;
                    o.SkipNegotiation = true;
                })
                .Build();
            await _hub.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
            return _hub;
        }

        /// <summary>
        /// A digest of the tenant's conversation and tenant-settings journals (every column of every row) and of its
        /// rows in the messages read model.
        /// </summary>
        public async Task<string> DigestAsync()
        {
            await using var c = new NpgsqlConnection(_cluster.Database);
            await c.OpenAsync();
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            await AddAsync(c, sha, "SELECT * FROM journal WHERE persistence_id LIKE @conv OR (persistence_id LIKE 'tenant%' AND persistence_id LIKE @tenant) ORDER BY persistence_id, sequence_number",
                ("conv", $"conversation|{Tenant}|%"), ("tenant", $"%{Tenant}"));
            await AddAsync(c, sha, "SELECT * FROM rm_messages WHERE tenant_id = @t ORDER BY conversation_id, seq", ("t", Tenant));
            return Convert.ToHexStringLower(sha.GetHashAndReset())[..16];
        }

        private static async Task AddAsync(NpgsqlConnection c, IncrementalHash sha, string sql, params (string Name, string Value)[] args)
        {
            await using var cmd = new NpgsqlCommand(sql, c);
            foreach (var (n, v) in args) cmd.Parameters.AddWithValue(n, v);
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                for (var i = 0; i < reader.FieldCount; i++)
                {
                    var v = reader.IsDBNull(i) ? "\u0000null" : reader.GetValue(i) is byte[] b ? Convert.ToHexString(b) : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture);
                    sha.AppendData(Encoding.UTF8.GetBytes(v + "\u0001"));
                }
        }

        /// <summary>The reason of the dead letter whose payload carries <paramref name="marker"/>, if there is one yet.</summary>
        public async Task<string?> DeadLetterAsync(string marker)
        {
            await using var c = new NpgsqlConnection(_cluster.Database);
            await c.OpenAsync();
            // A value that is not storable as text (not UTF-8, or holding a NUL) is kept as "base64:…": look inside those too.
            await using var cmd = new NpgsqlCommand(
                "SELECT code || ': ' || reason, payload FROM caas_ops.dead_letters WHERE strpos(payload, @m) > 0 OR payload LIKE 'base64:%'", c);
            cmd.Parameters.AddWithValue("m", marker);
            await using var r = await cmd.ExecuteReaderAsync();
            var needle = Encoding.UTF8.GetBytes(marker);
            while (await r.ReadAsync())
            {
                var payload = r.GetString(1);
                if (payload.Contains(marker, StringComparison.Ordinal)) return r.GetString(0);
                if (payload.StartsWith("base64:", StringComparison.Ordinal)
                    && Convert.FromBase64String(payload["base64:".Length..]).AsSpan().IndexOf(needle) >= 0)
                    return r.GetString(0) + " (payload kept as base64)";
            }
            return null;
        }
    }
}
