using System.Diagnostics;
using Caas.Node;
using Caas.Tests.Shared;
using Xunit.Abstractions;

namespace Caas.IntegrationTests;

/// <summary><c>caas reindex</c>, run as a child process against a running node with its own dev secret.</summary>
public sealed class SearchCommandLineTests(ITestOutputHelper output)
{
    private static readonly string CaasDll = Path.Combine(AppContext.BaseDirectory, "caas.dll");

    [Fact]
    public async Task Caas_reindex_swaps_in_a_rebuilt_index_and_searches_still_find()
    {
        var data = TestDatabases.NewSqliteDirectory();
        await using var node = await TestNode.StartAsync("reindex-cli", new NodeOptions { DataDir = data, LogLevel = "Warning" }, devSecret: true);
        var url = node.BaseAddress.ToString().TrimEnd('/');
        var alice = new Api(node.BaseAddress, await DevTokenAsync(data, "--tenant", "acme", "--user", "alice"));
        var room = await alice.CreateGroupAsync("reindexed", "bob");
        await alice.PostMessageAsync(room, "the marmalade recipe");
        await FindAsync(alice, "marmalade", 1);

        var (exit, stdout, stderr) = await RunAsync(data, "reindex", "--url", url);
        Assert.True(exit == 0, $"caas reindex exited with {exit}: {stdout} {stderr}");
        Assert.Contains("reindexed offset=", stdout);
        await FindAsync(alice, "marmalade", 1);
        await alice.PostMessageAsync(room, "more marmalade");
        await FindAsync(alice, "marmalade", 2);
    }

    /// <summary>Searches until <paramref name="count"/> messages are found (the index trails the journal), for up to two minutes.</summary>
    private static async Task FindAsync(Api api, string q, int count)
    {
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        int found;
        do
        {
            found = (await api.Expect(200, HttpMethod.Get, "/v1/search/messages?q=" + Uri.EscapeDataString(q))).GetProperty("items").GetArrayLength();
            if (found == count) return;
            await Task.Delay(100);
        }
        while (DateTime.UtcNow < until);
        Assert.Equal(count, found);
    }

    private ProcessStartInfo Caas(string dataDir, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(CaasDll);
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("CAAS_", StringComparison.Ordinal) || k == "ASPNETCORE_URLS").ToList())
            start.Environment.Remove(name);
        start.Environment["CAAS_DATA_DIR"] = dataDir;
        start.Environment["CAAS_LOG_LEVEL"] = "Warning";
        return start;
    }

    private async Task<(int Exit, string Stdout, string Stderr)> RunAsync(string dataDir, params string[] args)
    {
        using var process = Process.Start(Caas(dataDir, args))!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        output.WriteLine($"caas {string.Join(' ', args)} -> {process.ExitCode}");
        return (process.ExitCode, await stdout, await stderr);
    }

    private async Task<string> DevTokenAsync(string dataDir, params string[] args)
    {
        var (exit, stdout, stderr) = await RunAsync(dataDir, ["dev-token", .. args]);
        Assert.True(exit == 0, $"caas dev-token exited with {exit}: {stderr}");
        return stdout.Trim();
    }
}
