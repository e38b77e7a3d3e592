using System.Diagnostics;
using System.Text.Json;
using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Calls;
using Caas.Web.Tests.Turn;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Caas.Web.Tests.Calls;

/// <summary>
/// Two headless Chromium browsers (Debian's, driven by playwright-core) call each other through /console/call.html:
/// ICE servers with TURN REST credentials from this node, signaling only through its hub, iceTransportPolicy "relay"
/// so the media flows through the coturn instances of scripts/test.sh. The script is tests/browser/call.test.mjs (it
/// checks connected, a relay candidate pair on both sides and inbound-rtp bytes growing on both sides), then records the
/// call with consent: alice asks, bob allows, alice's page records; carol joins and refuses, which ends it, and alice's
/// page uploads it. This test then checks that the node recorded the call as ended with its participants, and the
/// recording with its consents and its file (a WebM download). Screenshots go to artifacts/browser/.
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
        var conversation = await alice.CreateGroupAsync("bob", "carol");

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
                ["CAAS_TOKEN_CAROL"] = node.Jwt.Issue(tenant, "carol"),
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

        // The node recorded the call: ended, completed, with its participants (the list reads the call entity).
        var (status, list) = await alice.ApiGet($"/v1/conversations/{conversation}/calls");
        Assert.Equal(200, status);
        Assert.Equal(JsonValueKind.Null, list.GetProperty("active").ValueKind);
        var item = Assert.Single(list.GetProperty("items").EnumerateArray());
        Assert.Equal((callId, "video", "alice", "completed"), (item.Str("call_id"), item.Str("media"), item.Str("started_by"), item.Str("reason")));
        Assert.Equal(["alice", "bob", "carol"], item.GetProperty("participants").EnumerateArray().Select(p => p.GetString()).Order());

        // The recording, as the call entity has it: recorded, alice's and bob's consents, carol's refusal ending it, the uploaded file.
        var printed = JsonDocument.Parse(text.Split('\n').Single(l => l.StartsWith("RECORDING ", StringComparison.Ordinal))["RECORDING ".Length..]).RootElement;
        var (recordingId, fileId) = (printed.Str("recording_id"), printed.Str("file_id"));
        var calls = node.Services.GetRequiredService<IRequiredActor<CallRoomRegion>>().ActorRef;
        var info = Assert.IsType<RecordingInfo>(await calls.Ask<object>(new GetRecording(tenant, conversation, "test", recordingId), TimeSpan.FromMinutes(1)));
        Assert.Equal((callId, "recorded", "alice", RecordingReasons.Refused), (info.CallId, info.Status, info.RequestedBy, info.EndReason));
        Assert.Equal([("alice", true, ConsentMethods.Requested), ("bob", true, ConsentMethods.Hub), ("carol", false, ConsentMethods.Hub)],
            info.Consents.Select(c => (c.UserId, c.Consent, c.How)).OrderBy(c => c.UserId, StringComparer.Ordinal));
        Assert.NotNull(info.StartedAt);
        Assert.True(info.DurationSeconds > 0, $"recorded {info.DurationSeconds} s");
        Assert.NotNull(info.File);
        Assert.Equal(fileId, info.File.FileId);
        Assert.True(info.File.Size > 0);
        Assert.Equal(printed.GetProperty("bytes").GetInt64(), info.File.Size);
        Assert.StartsWith("video/webm", info.File.ContentType);

        // The file downloads as alice: WebM (EBML magic) of the stored size.
        using (var download = await alice.GetAsync($"/v1/media/download/{fileId}"))
        {
            Assert.Equal(200, (int)download.StatusCode);
            var bytes = await download.Content.ReadAsByteArrayAsync();
            Assert.Equal(info.File.Size, bytes.Length);
            Assert.Equal(new byte[] { 0x1A, 0x45, 0xDF, 0xA3 }, bytes[..4]);
        }

        // The tenant admin's view of it, where the node has the recordings admin API (its read model follows the journal: polled).
        using var admin = node.Client(tenant, "root", "admin");
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (true)
        {
            using var response = await admin.GetAsync($"/v1/admin/recordings/{recordingId}");
            var body = await response.Content.ReadAsStringAsync();
            if ((int)response.StatusCode == 404 && body.Length == 0)
            {
                output.WriteLine("No /v1/admin/recordings route on this node: its check is skipped.");
                break;
            }
            if ((int)response.StatusCode == 200 && JsonDocument.Parse(body).RootElement is var view && view.GetProperty("file_id").ValueKind == JsonValueKind.String)
            {
                Assert.Equal((recordingId, "recorded", fileId, RecordingReasons.Refused), (view.Str("id"), view.Str("status"), view.Str("file_id"), view.Str("end_reason")));
                Assert.Equal(["alice:True", "bob:True", "carol:False"],
                    view.GetProperty("consents").EnumerateArray().Select(c => $"{c.Str("user_id")}:{c.GetProperty("consent").GetBoolean()}").Order(StringComparer.Ordinal));
                break;
            }
            Assert.True(DateTime.UtcNow < deadline, $"The admin view of the recording never showed its file: {(int)response.StatusCode} {body}");
            await Task.Delay(200);
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "tests", "browser", "call.test.mjs"))) return dir.FullName;
        throw new InvalidOperationException("tests/browser/call.test.mjs not found above " + AppContext.BaseDirectory);
    }
}
