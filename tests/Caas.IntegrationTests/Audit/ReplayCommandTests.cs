using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using Caas.Node;
using Caas.Tests.Shared;

namespace Caas.IntegrationTests.Audit;

/// <summary><c>caas replay</c> against the embedded SQLite store gives the same NDJSON as the audit API.</summary>
public sealed class ReplayCommandTests
{
    private const string Tenant = "acme";
    private static readonly string CaasDll = Path.Combine(AppContext.BaseDirectory, "caas.dll");

    [Fact(Timeout = 120_000)]
    public async Task The_command_line_replay_equals_the_api_replay()
    {
        var options = new NodeOptions { DataDir = TestDatabases.NewSqliteDirectory(), LogLevel = "Warning", ExtraHocon = "akka.loglevel = WARNING" };
        string room, apiConversation, apiPosted;
        DateTimeOffset middle;
        await using (var node = await TestNode.StartAsync("replay", options))
        {
            var olive = node.As(Tenant, "olive");
            room = await olive.CreateGroupAsync("Replayed", "bob");
            for (var i = 1; i <= 3; i++) await olive.PostMessageAsync(room, $"before {i}");
            await Task.Delay(20);
            middle = DateTimeOffset.UtcNow;
            await Task.Delay(20);
            for (var i = 1; i <= 4; i++) await olive.PostMessageAsync(room, $"after {i}");
            var other = await olive.CreateGroupAsync("Other");
            await olive.PostMessageAsync(other, "elsewhere");

            using var http = new HttpClient { BaseAddress = node.BaseAddress };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", TestNode.Jwt.Issue(Tenant, "auditor", ["admin"]));
            apiConversation = await http.GetStringAsync($"/v1/admin/audit/conversations/{room}/events");
            apiPosted = await http.GetStringAsync($"/v1/admin/audit/events?type=conv.message-posted&from={Uri.EscapeDataString(middle.ToString("O"))}");
        }
        Assert.Equal(8, Lines(apiConversation).Length);
        Assert.Equal(5, Lines(apiPosted).Length);

        var file = Path.Combine(options.DataDir, "replay.ndjson");
        var (exit, _, err) = await CaasAsync(options.DataDir, "replay", "--tenant", Tenant, "--conversation", room, "--out", file);
        Assert.True(exit == 0, err);
        Assert.Equal(Lines(apiConversation), Lines(await File.ReadAllTextAsync(file)));
        Assert.Contains("events=8", err);

        var (exit2, stdout, err2) = await CaasAsync(options.DataDir, "replay", "--tenant", Tenant, "--type", "conv.message-posted", "--from", middle.ToString("O"));
        Assert.True(exit2 == 0, err2);
        Assert.Equal(Lines(apiPosted), Lines(stdout));
        Assert.Equal(["after 1", "after 2", "after 3", "after 4", "elsewhere"],
            Lines(stdout).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("payload").GetProperty("content").GetProperty("text").GetString()));

        var (bad, _, why) = await CaasAsync(options.DataDir, "replay", "--tenant", Tenant, "--from", "2026-11-23T10:00:00Z", "--to", "2026-11-23T09:00:00Z");
        Assert.Equal(2, bad);
        Assert.Contains("--to is before --from", why);
    }

    private static string[] Lines(string ndjson) => ndjson.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private static async Task<(int Exit, string Stdout, string Stderr)> CaasAsync(string dataDir, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(CaasDll);
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("CAAS_", StringComparison.Ordinal)).ToList())
            start.Environment.Remove(name);
        start.Environment["CAAS_DATA_DIR"] = dataDir;
        // The node under test was given the shared test master key (TestNode); an operator's CLI gets the same one.
        start.Environment["CAAS_MASTER_KEY"] = Caas.Tests.Shared.TestDatabases.MasterKey;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout, await stderr);
    }
}
