using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Caas.Node;
using Caas.Web.Tests.Hubs;
using Microsoft.AspNetCore.Builder;
using Npgsql;
using Xunit.Abstractions;

namespace Caas.Web.Tests;

/// <summary>
/// A database outage on a node of its own PostgreSQL (a throwaway cluster this test starts, stops and starts again, so
/// no other test class that shares the script's server is disturbed): while it is down, REST and hub calls answer 503
/// <c>unavailable</c> with Retry-After instead of hanging; when it is back the node recovers by itself and nothing
/// acknowledged before the outage is lost.
/// </summary>
public sealed class StoreOutageTests(ITestOutputHelper output)
{
    [Fact(Timeout = 300_000)]
    public async Task While_PostgreSQL_is_down_requests_answer_unavailable_and_the_node_recovers_when_it_returns()
    {
        await using var pg = await ThrowawayPostgres.StartAsync(output);
        var app = await NodeHost.BuildAsync(new NodeOptions
        {
            Postgres = pg.ConnectionString,
            DataDir = Caas.Tests.Shared.TestDatabases.NewSqliteDirectory(),
            Urls = "http://127.0.0.1:0",
            JwtSecret = NodeFixture.Secret,
            LogLevel = "Warning",
        });
        await app.StartAsync();
        try
        {
            var baseAddress = new Uri(app.Urls.First());
            var jwt = new Caas.Web.Auth.JwtSettings(NodeFixture.Secret, null, null, null);
            // Generous: the point is that no call waits for a command timeout (30 s) or hangs; none should come near this.
            using var alice = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(25) };
            alice.DefaultRequestHeaders.Authorization = new("Bearer", jwt.Issue("t-outage", "alice", []));
            var room = await alice.CreateGroupAsync("bob");
            await alice.PostMessageAsync(room, "before the outage", "m-before");
            await using var hub = await HubClient.ConnectAsync(baseAddress, jwt.Issue("t-outage", "alice", []));
            await hub.JoinAsync(room);

            await pg.StopAsync();

            for (var round = 0; round < 2; round++)
            {
                await ExpectUnavailable(alice, HttpMethod.Get, "/v1/conversations");
                await ExpectUnavailable(alice, HttpMethod.Get, $"/v1/messages/conversations/{room}");
                await ExpectUnavailable(alice, HttpMethod.Post, "/v1/messages",
                    new { conversation_id = room, content = new { type = "text", text = "during" }, message_id = $"m-during-{round}" });
                await ExpectUnavailable(alice, HttpMethod.Post, "/v1/conversations", new { type = "group", title = "new", members = new[] { "bob" } });
                var viaHub = await hub.Call("SendMessage", new { conversation_id = room, content = new { type = "text", text = "during" }, message_id = $"h-during-{round}" });
                Assert.False(viaHub.GetProperty("success").GetBoolean(), viaHub.ToString());
                Assert.Contains(viaHub.GetProperty("error").GetProperty("code").GetString(), new[] { "unavailable", "persist_timeout" });
            }
            // Once the breaker has seen the outage, the hub answers unavailable too (persist_timeout only when unknown).
            var settled = await hub.Call("GetHistory", new { conversation_id = room, after_seq = 0 });
            Assert.Equal("unavailable", settled.GetProperty("error").GetProperty("code").GetString());
            using (var health = await alice.GetAsync("/health")) Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);

            await pg.StartAgainAsync();

            // No restart of the node: the breaker probes and closes by itself.
            var watch = Stopwatch.StartNew();
            while (true)
            {
                var (status, body) = await alice.ApiPost("/v1/messages", new { conversation_id = room, content = new { type = "text", text = "after" }, message_id = "m-after" });
                if (status == 201 || status == 200) break;
                Assert.True(status == 503, $"expected 503 while recovering, got {status}: {body}");
                Assert.True(watch.Elapsed < TimeSpan.FromMinutes(2), $"the node did not recover within 2 minutes: {body}");
                await Task.Delay(500);
            }
            var (listed, page) = await alice.ApiGet($"/v1/messages/conversations/{room}?after_seq=0");
            Assert.Equal(200, listed);
            var texts = page.GetProperty("items").EnumerateArray().Select(m => m.GetProperty("content").GetProperty("text").GetString()).ToList();
            Assert.Contains("before the outage", texts);
            Assert.Contains("after", texts);
            Assert.True((await hub.Call("SendMessage", new { conversation_id = room, content = new { type = "text", text = "hub after" }, message_id = "h-after" }))
                .GetProperty("success").GetBoolean());
            using (var health = await alice.GetAsync("/health")) Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    private static async Task ExpectUnavailable(HttpClient client, HttpMethod method, string path, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null) request.Content = System.Net.Http.Json.JsonContent.Create(body);
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{method} {path}: {(int)response.StatusCode} {text}");
        Assert.True(text.Contains("\"code\":\"unavailable\"", StringComparison.Ordinal), $"{method} {path}: {text}");
        Assert.NotNull(response.Headers.RetryAfter);
    }

    /// <summary>
    /// A PostgreSQL cluster of this test alone (initdb, pg_ctl from /usr/lib/postgresql/*/bin; as root it runs as the
    /// postgres OS user, as scripts/test.sh does), on a free loopback port that it keeps across a stop and start.
    /// </summary>
    private sealed class ThrowawayPostgres : IAsyncDisposable
    {
        private readonly string _bin;
        private readonly string _dir;
        private readonly int _port;
        private readonly ITestOutputHelper _output;

        private ThrowawayPostgres(string bin, string dir, int port, ITestOutputHelper output)
        {
            _bin = bin;
            _dir = dir;
            _port = port;
            _output = output;
        }

        public string ConnectionString => $"Host=127.0.0.1;Port={_port};Username=postgres;Password=postgres;Database=caas;Timeout=5";

        private static bool IsRoot => Environment.UserName == "root";

        public static async Task<ThrowawayPostgres> StartAsync(ITestOutputHelper output)
        {
            var bin = Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin"))
                .Where(d => File.Exists(Path.Combine(d, "pg_ctl"))).OrderByDescending(d => d).First();
            var dir = Path.Combine(Path.GetTempPath(), "caas-outage-pg-" + Guid.NewGuid().ToString("N")[..8]);
            Directory.CreateDirectory(dir);
            if (IsRoot) await RunAsync("chown", ["postgres:", dir]);
            var port = Caas.Tests.Shared.TestPorts.Free();
            var pg = new ThrowawayPostgres(bin, dir, port, output);
            await pg.AsOwner("initdb", "-D", pg.Data, "-U", "postgres", "--auth-local=trust", "--auth-host=trust", "--no-locale",
                "--encoding=UTF8", "--no-sync");
            await File.AppendAllTextAsync(Path.Combine(pg.Data, "postgresql.conf"),
                $"\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{dir}'\nfsync = off\nmax_connections = 100\n");
            await pg.StartAgainAsync();
            await using var admin = new NpgsqlConnection($"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres");
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand("CREATE DATABASE caas", admin);
            await create.ExecuteNonQueryAsync();
            return pg;
        }

        private string Data => Path.Combine(_dir, "data");

        public Task StartAgainAsync() =>
            AsOwner("pg_ctl", "-D", Data, "-l", Path.Combine(_dir, "postgres.log"), "-w", "-t", "60", "-o", $"-p {_port}", "start");

        public Task StopAsync() => AsOwner("pg_ctl", "-D", Data, "-m", "fast", "-w", "-t", "60", "stop");

        private Task AsOwner(string tool, params string[] args) =>
            IsRoot ? RunAsync("runuser", ["-u", "postgres", "--", Path.Combine(_bin, tool), .. args]) : RunAsync(Path.Combine(_bin, tool), args);

        private static async Task RunAsync(string file, string[] args)
        {
            var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in args) start.ArgumentList.Add(a);
            using var p = Process.Start(start)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            await p.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
            if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {p.ExitCode}: {await stderr}{await stdout}");
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                await AsOwner("pg_ctl", "-D", Data, "-m", "immediate", "-w", "-t", "60", "stop");
            }
            catch (InvalidOperationException e)
            {
                _output.WriteLine(e.Message);
            }
            Directory.Delete(_dir, recursive: true);
        }
    }
}
