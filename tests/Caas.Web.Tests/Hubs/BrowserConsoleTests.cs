using System.Diagnostics;
using Xunit.Abstractions;

namespace Caas.Web.Tests.Hubs;

/// <summary>
/// The browser console in headless Chromium (Debian's, driven by playwright-core): two pages chat with each other.
/// The script is tests/browser/console.test.mjs; its screenshots go to artifacts/browser/.
/// </summary>
public sealed class BrowserConsoleTests(HubNode node, ITestOutputHelper output) : IClassFixture<HubNode>
{
    [Fact(Timeout = 300_000)]
    public async Task Two_browser_pages_chat_through_the_console()
    {
        var root = RepositoryRoot();
        var browser = Path.Combine(root, "tests", "browser");
        Assert.True(File.Exists("/usr/bin/chromium") && Directory.Exists(Path.Combine(browser, "node_modules", "playwright-core")),
            "Chromium or the npm packages are missing: run scripts/deps/browser.sh (scripts/test.sh does).");

        // The page itself, its script (a module on the client SDK) and the SDK's committed bundle (SignalR inside) are
        // served by the node.
        using var http = new HttpClient { BaseAddress = node.BaseAddress };
        Assert.Contains("<script type=\"module\" src=\"console.js\">", await GetAsync(http, "/console/"));
        Assert.Contains("./lib/caas-client.js", await GetAsync(http, "/console/console.js"));
        Assert.Contains("HubConnectionBuilder", await GetAsync(http, "/console/lib/caas-client.js"));

        var artifacts = Path.Combine(root, "artifacts", "browser");
        var start = new ProcessStartInfo("node", "console.test.mjs")
        {
            WorkingDirectory = browser,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment =
            {
                ["CAAS_URL"] = node.BaseAddress.ToString().TrimEnd('/'),
                ["CAAS_TOKEN_ALICE"] = node.Jwt.Issue("t-browser", "alice"),
                ["CAAS_TOKEN_BOB"] = node.Jwt.Issue("t-browser", "bob"),
                ["CAAS_ARTIFACTS"] = artifacts,
            },
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(270));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        output.WriteLine(await stdout);
        output.WriteLine(await stderr);
        Assert.True(process.ExitCode == 0, $"console.test.mjs exited {process.ExitCode}:\n{await stdout}\n{await stderr}");
        Assert.True(File.Exists(Path.Combine(artifacts, "console-alice.png")), "the screenshot is kept as an artifact");
    }

    private static async Task<string> GetAsync(HttpClient http, string path)
    {
        using var response = await http.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {path}: {(int)response.StatusCode} {body}");
        return body;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "tests", "browser", "console.test.mjs"))) return dir.FullName;
        throw new InvalidOperationException("tests/browser/console.test.mjs not found above " + AppContext.BaseDirectory);
    }
}
