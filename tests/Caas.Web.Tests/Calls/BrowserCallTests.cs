using System.Diagnostics;
using System.Text.Json;
using Caas.Web.Tests.Turn;
using Xunit.Abstractions;

namespace Caas.Web.Tests.Calls;

/// <summary>
/// Two headless Chromium browsers (Debian's, driven by playwright-core) call each other through /console/call.html:
/// ICE servers with TURN REST credentials from this node, signaling only through its hub, iceTransportPolicy "relay"
/// so the media flows through the coturn instances of scripts/test.sh. The script is tests/browser/call.test.mjs (it
/// checks connected, a relay candidate pair on both sides and inbound-rtp bytes growing on both sides); this test then
/// checks that the node recorded the call as ended with both participants. Screenshots go to artifacts/browser/.
/// In the coturn collection: other tests there stop and start the coturn instances.
/// </summary>
[Collection("coturn")]
public sealed class BrowserCallTests(TurnNodeFixture node, ITestOutputHelper output) : IClassFixture<TurnNodeFixture>
{
    [Fact(Timeout = 330_000)]
    public async Task Two_browsers_talk_through_coturn_with_caas_signaling()
    {
        var root = RepositoryRoot();
        var browser = Path.Combine(root, "tests", "browser");
        Assert.True(File.Exists("/usr/bin/chromium") && Directory.Exists(Path.Combine(browser, "node_modules", "playwright-core")),
            "Chromium or the npm packages are missing: run scripts/deps/browser.sh (scripts/test.sh does).");

        var tenant = "t-call-" + Guid.NewGuid().ToString("N")[..8];
        using var alice = node.Client(tenant, "alice");
        var conversation = await alice.CreateGroupAsync("bob");

        var artifacts = Path.Combine(root, "artifacts", "browser");
        var start = new ProcessStartInfo("node", "call.test.mjs")
        {
            WorkingDirectory = browser,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment =
            {
                ["CAAS_URL"] = node.BaseAddress.ToString().TrimEnd('/'),
                ["CAAS_TOKEN_ALICE"] = node.Jwt.Issue(tenant, "alice"),
                ["CAAS_TOKEN_BOB"] = node.Jwt.Issue(tenant, "bob"),
                ["CAAS_CONVERSATION"] = conversation,
                ["CAAS_ARTIFACTS"] = artifacts,
            },
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(300));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        var text = await stdout;
        output.WriteLine(text);
        output.WriteLine(await stderr);
        Assert.True(process.ExitCode == 0, $"call.test.mjs exited {process.ExitCode}:\n{text}\n{await stderr}");

        var result = JsonDocument.Parse(text.Split('\n').Single(l => l.StartsWith("result: ", StringComparison.Ordinal))["result: ".Length..]).RootElement;
        var callId = result.Str("callId");
        foreach (var who in new[] { "alice", "bob" })
        {
            var side = result.GetProperty(who);
            Assert.Equal("relay", side.GetProperty("local").Str("type"));
            Assert.Equal("relay", side.GetProperty("remote").Str("type"));
            Assert.True(side.GetProperty("bytesReceived").GetInt64() > side.GetProperty("bytesReceivedFirst").GetInt64());
            Assert.Equal(["audio", "video"], side.GetProperty("inboundKinds").EnumerateArray().Select(k => k.GetString()));
            Assert.Equal(callId, side.GetProperty("ended").Str("call_id"));
        }

        // The node recorded the call: ended, completed, with both participants (the list reads the call entity).
        var (status, list) = await alice.ApiGet($"/v1/conversations/{conversation}/calls");
        Assert.Equal(200, status);
        Assert.Equal(JsonValueKind.Null, list.GetProperty("active").ValueKind);
        var item = Assert.Single(list.GetProperty("items").EnumerateArray());
        Assert.Equal((callId, "video", "alice", "completed"), (item.Str("call_id"), item.Str("media"), item.Str("started_by"), item.Str("reason")));
        Assert.Equal(["alice", "bob"], item.GetProperty("participants").EnumerateArray().Select(p => p.GetString()).Order());
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "tests", "browser", "call.test.mjs"))) return dir.FullName;
        throw new InvalidOperationException("tests/browser/call.test.mjs not found above " + AppContext.BaseDirectory);
    }
}
