using System.Diagnostics;
using System.Text;
using Caas.Node;
using Caas.Tests.Shared;
using Xunit.Abstractions;

namespace Caas.IntegrationTests;

/// <summary>The built <c>caas</c> command line, run as a child process: <c>dev-token</c> and <c>run</c>.</summary>
public sealed class CommandLineTests(ITestOutputHelper output)
{
    /// <summary>caas.dll is copied next to the tests with its runtimeconfig and deps (a referenced executable project).</summary>
    private static readonly string CaasDll = Path.Combine(AppContext.BaseDirectory, "caas.dll");

    [Fact(Timeout = 60_000)]
    public async Task A_dev_token_is_accepted_by_a_node_on_the_same_data_directory_and_only_there()
    {
        var data = TestDatabases.NewSqliteDirectory();
        await using var node = await TestNode.StartAsync("dev", new NodeOptions { DataDir = data, LogLevel = "Warning" }, devSecret: true);
        Assert.True(File.Exists(Path.Combine(data, "jwt-secret")), "the node keeps its generated dev secret in the data directory");

        var token = await DevTokenAsync(data, "--tenant", "acme", "--user", "alice");
        var alice = new Api(node.BaseAddress, token);
        Assert.Equal("alice", (await alice.Expect(200, HttpMethod.Get, "/v1/users/me")).Str("user_id"));
        var room = await alice.CreateGroupAsync("from the command line", "bob");
        Assert.Equal(1, (await alice.PostMessageAsync(room, "hello")).GetProperty("seq").GetInt64());
        Assert.Equal("forbidden", (await alice.Expect(403, HttpMethod.Get, "/v1/admin/tenant/settings")).Str("code"));

        var admin = new Api(node.BaseAddress, await DevTokenAsync(data, "--tenant", "acme", "--user", "root", "--role", "admin"));
        await admin.Expect(200, HttpMethod.Get, "/v1/admin/tenant/settings");

        // Another data directory has another dev secret: its tokens are forgeries here.
        var stranger = new Api(node.BaseAddress, await DevTokenAsync(TestDatabases.NewSqliteDirectory(), "--tenant", "acme", "--user", "alice"));
        Assert.Equal("unauthenticated", (await stranger.Expect(401, HttpMethod.Get, "/v1/users/me")).Str("code"));
    }

    [Fact(Timeout = 90_000)]
    public async Task Caas_run_serves_dev_tokens_and_keeps_everything_across_a_SIGTERM()
    {
        var data = TestDatabases.NewSqliteDirectory();
        var url = $"http://127.0.0.1:{TestNode.FreeTcpPort()}";
        string room;
        await using (var node = await CaasRunAsync(data, url))
        {
            var alice = new Api(new Uri(url), await DevTokenAsync(data, "--tenant", "acme", "--user", "alice"));
            room = await alice.CreateGroupAsync("survives SIGTERM", "bob");
            for (var i = 1; i <= 3; i++) await alice.PostMessageAsync(room, $"message {i}", $"sigterm-{i}");
            var exit = await node.TerminateAsync();
            output.WriteLine($"caas run exited with {exit} after SIGTERM");
            Assert.Equal(0, exit);
        }

        await using (var node = await CaasRunAsync(data, url))
        {
            var alice = new Api(new Uri(url), await DevTokenAsync(data, "--tenant", "acme", "--user", "alice"));
            var messages = await alice.AllMessagesAsync(room);
            Assert.Equal(["message 1", "message 2", "message 3"], messages.Select(m => m.GetProperty("content").Str("text")));
            Assert.Equal(4, (await alice.PostMessageAsync(room, "message 4")).GetProperty("seq").GetInt64());
            Assert.Equal(0, await node.TerminateAsync());
        }
    }

    [Fact(Timeout = 90_000)]
    public async Task Caas_rebuild_and_caas_erase_act_on_the_running_node_with_its_own_secret()
    {
        var data = TestDatabases.NewSqliteDirectory();
        await using var node = await TestNode.StartAsync("admin-cli", new NodeOptions { DataDir = data, LogLevel = "Warning" }, devSecret: true);
        var url = node.BaseAddress.ToString().TrimEnd('/');
        var alice = new Api(node.BaseAddress, await DevTokenAsync(data, "--tenant", "acme", "--user", "alice"));
        var bob = new Api(node.BaseAddress, await DevTokenAsync(data, "--tenant", "acme", "--user", "bob"));
        var room = await alice.CreateGroupAsync("admin commands", "bob");
        await alice.PostMessageAsync(room, "alice wrote this");
        await bob.PostMessageAsync(room, "bob wrote this");

        var (exit, stdout, stderr) = await RunAsync(data, "rebuild", "conversations", "--url", url);
        Assert.True(exit == 0, $"caas rebuild exited with {exit}: {stderr}");
        Assert.Contains("rebuilt=conversations", stdout);
        Assert.Equal(["alice wrote this", "bob wrote this"], (await bob.AllMessagesAsync(room)).Select(m => m.GetProperty("content").Str("text")));
        Assert.Equal(2, (await RunAsync(data, "rebuild", "no-such-model", "--url", url)).Exit);

        (exit, stdout, stderr) = await RunAsync(data, "erase", "--tenant", "acme", "--user", "alice", "--url", url);
        Assert.True(exit == 0, $"caas erase exited with {exit}: {stderr}");
        Assert.Equal(1, System.Text.Json.JsonDocument.Parse(stdout).RootElement.GetProperty("keys_destroyed").GetArrayLength());
        var after = await bob.AllMessagesAsync(room);
        Assert.Equal(["erased", "text"], after.Select(m => m.GetProperty("content").Str("type")));
        Assert.Equal("bob wrote this", after[1].GetProperty("content").Str("text"));
        Assert.Equal(2, (await RunAsync(data, "erase", "--tenant", "acme", "--user", "not valid", "--url", url)).Exit);
    }

    private async Task<(int Exit, string Stdout, string Stderr)> RunAsync(string dataDir, params string[] args)
    {
        using var process = Process.Start(Caas(dataDir, args))!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"caas {string.Join(' ', args)} -> {process.ExitCode}");
        return (process.ExitCode, await stdout, await stderr);
    }

    private static ProcessStartInfo Caas(string dataDir, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(CaasDll);
        foreach (var a in args) start.ArgumentList.Add(a);
        // Only the data directory configures the child; nothing of this process's environment leaks in.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("CAAS_", StringComparison.Ordinal) || k == "ASPNETCORE_URLS").ToList())
            start.Environment.Remove(name);
        start.Environment["CAAS_DATA_DIR"] = dataDir;
        start.Environment["CAAS_LOG_LEVEL"] = "Warning";
        return start;
    }

    private async Task<string> DevTokenAsync(string dataDir, params string[] args)
    {
        using var process = Process.Start(Caas(dataDir, ["dev-token", .. args]))!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(process.ExitCode == 0, $"caas dev-token exited with {process.ExitCode}: {await stderr}");
        var token = (await stdout).Trim();
        Assert.Equal(3, token.Split('.').Length);
        return token;
    }

    private async Task<RunningCaas> CaasRunAsync(string dataDir, string url)
    {
        var process = Process.Start(Caas(dataDir, "run", "--urls", url))!;
        var log = new StringBuilder();
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (log) log.AppendLine(e.Data);
            if (e.Data.StartsWith("CAAS is listening on", StringComparison.Ordinal)) listening.TrySetResult();
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var running = new RunningCaas(process, log, output);
        var started = await Task.WhenAny(listening.Task, process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(30)));
        if (started != listening.Task)
        {
            await running.DisposeAsync();
            Assert.Fail($"caas run did not start: {log}");
        }
        return running;
    }

    private sealed class RunningCaas(Process process, StringBuilder log, ITestOutputHelper output) : IAsyncDisposable
    {
        /// <summary>SIGTERM, as a service manager stops it; answers the exit code.</summary>
        public async Task<int> TerminateAsync()
        {
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                await kill.WaitForExitAsync();
            try
            {
                await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (TimeoutException)
            {
                lock (log) Assert.Fail($"caas run did not stop within 30 s of SIGTERM: {log}");
            }
            return process.ExitCode;
        }

        public async ValueTask DisposeAsync()
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
            lock (log) if (log.Length > 0) output.WriteLine(log.ToString());
            process.Dispose();
        }
    }
}
