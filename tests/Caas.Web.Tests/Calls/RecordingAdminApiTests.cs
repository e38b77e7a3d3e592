using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Calls;
using Caas.Actors.Common;
using Caas.Web.Tests.Media;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests.Calls;

/// <summary>
/// The admin recordings API on a real node (file media store): recordings made by the call entity's own commands, their
/// files really uploaded; the list (filters, cursor), one recording with a working signed link, the figures, deletion
/// (bytes purged, metadata kept, audited), the refusals, and erasure counting <c>recordings_deleted</c>.
/// </summary>
public sealed class RecordingAdminApiTests(MediaFileNode node) : IClassFixture<MediaFileNode>
{
    private static readonly TimeSpan Within = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(20);

    private sealed record Made(string Conversation, string Call, string Recording, string? FileId, byte[]? Bytes);

    private IActorRef Calls => node.Services.GetRequiredService<IRequiredActor<CallRoomRegion>>().ActorRef;

    private async Task<T> AskAsync<T>(ICallCommand command)
    {
        var reply = await Calls.Ask<object>(command, AskTimeout);
        Assert.False(reply is Rejection, $"{command.GetType().Name}: {reply}");
        return Assert.IsType<T>(reply, exactMatch: false);
    }

    private static byte[] Webm(int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        new byte[] { 0x1A, 0x45, 0xDF, 0xA3 }.CopyTo(bytes, 0);
        return bytes;
    }

    private async Task<(string Id, string Sha256)> UploadAsync(string tenant, string user, string conversation, byte[] bytes)
    {
        using var client = node.Client(tenant, user);
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent(conversation), "conversation_id");
        var file = new ByteArrayContent(bytes);
        file.Headers.ContentType = new MediaTypeHeaderValue("video/webm");
        form.Add(file, "file", "call.webm");
        using var response = await client.PostAsync("/v1/media/upload", form);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.True((int)response.StatusCode == 201, body.ToString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), body.Str("sha256"));
        return (body.Str("id"), body.Str("sha256"));
    }

    /// <summary>
    /// A call of <paramref name="requester"/> and <paramref name="others"/> in a new conversation, a recording every one
    /// consents to (or <paramref name="refuser"/> refuses), quality reports, the end of the call, and, when recorded,
    /// the file uploaded and linked.
    /// </summary>
    private async Task<Made> RecordAsync(string tenant, string requester, string[] others, string? refuser = null, bool end = true, int seed = 1)
    {
        var conversation = await node.Client(tenant, requester).CreateGroupAsync(others);
        var call = CallIds.New(conversation);
        var recording = RecordingIds.New();
        await AskAsync<CallReply>(new StartCall(tenant, conversation, requester, call, "video", [requester, .. others]));
        foreach (var u in others) await AskAsync<CallReply>(new AcceptCall(tenant, conversation, u, call));
        await AskAsync<object>(new ReportCallQuality(tenant, conversation, requester, call, new CallQualitySample(40, 2, 0, 64)));
        await AskAsync<object>(new ReportCallQuality(tenant, conversation, others[0], call, new CallQualitySample(80, null, 1, null)));
        Assert.Equal("pending", (await AskAsync<RecordingReply>(new RequestRecording(tenant, conversation, requester, call, recording))).Status);
        foreach (var u in others) await AskAsync<RecordingReply>(new ConsentRecording(tenant, conversation, u, call, recording, u != refuser));
        if (!end) return new Made(conversation, call, recording, null, null);
        await AskAsync<CallReply>(new EndCall(tenant, conversation, requester, call, Role.Owner));
        if (refuser is not null) return new Made(conversation, call, recording, null, null);
        var bytes = Webm(20_000 + seed, seed);
        var (fileId, sha) = await UploadAsync(tenant, requester, conversation, bytes);
        var info = await AskAsync<RecordingInfo>(new AttachRecording(tenant, conversation, requester, recording,
            new RecordingFile(fileId, "call.webm", "video/webm", bytes.Length, sha, $"file:{tenant}/{fileId}")));
        Assert.Equal(fileId, info.File!.FileId);
        return new Made(conversation, call, recording, fileId, bytes);
    }

    /// <summary>Polls the admin view of a recording until <paramref name="done"/> (the read model follows the journal).</summary>
    private async Task<JsonElement> RecordingWhenAsync(HttpClient admin, string recording, Func<JsonElement, bool> done)
    {
        var deadline = DateTime.UtcNow + Within;
        while (true)
        {
            var (status, body) = await admin.ApiGet($"/v1/admin/recordings/{recording}");
            if (status == 200 && done(body)) return body;
            Assert.True(DateTime.UtcNow < deadline, $"The recording never matched: {status} {body}");
            await Task.Delay(100);
        }
    }

    private static bool Stored(JsonElement r) => r.GetProperty("file_id").ValueKind == JsonValueKind.String && r.GetProperty("quality").ValueKind == JsonValueKind.Array;

    private static bool Ended(JsonElement r) => r.GetProperty("quality").ValueKind == JsonValueKind.Array;

    private static List<string> Ids(JsonElement page) => [.. page.GetProperty("items").EnumerateArray().Select(i => i.Str("id"))];

    [Fact]
    public async Task An_admin_lists_reads_downloads_and_sums_up_the_tenants_recordings()
    {
        const string tenant = "t-reca";
        using var admin = node.Client(tenant, "root", "admin");
        var recorded = await RecordAsync(tenant, "alice", ["bob"], seed: 1);
        var declined = await RecordAsync(tenant, "carol", ["dan"], refuser: "dan");
        var r = await RecordingWhenAsync(admin, recorded.Recording, Stored);
        await RecordingWhenAsync(admin, declined.Recording, Ended);

        // One recording: who asked, every consent, the file, the quality, and a signed link that serves its bytes.
        Assert.Equal((recorded.Recording, recorded.Call, recorded.Conversation, "alice", "recorded", "call_ended"),
            (r.Str("id"), r.Str("call_id"), r.Str("conversation_id"), r.Str("requested_by"), r.Str("status"), r.Str("end_reason")));
        Assert.Equal([("alice", true, "requested"), ("bob", true, "hub")],
            r.GetProperty("consents").EnumerateArray().Select(c => (c.Str("user_id"), c.GetProperty("consent").GetBoolean(), c.Str("how"))));
        Assert.Equal(["alice", "bob"], r.GetProperty("participants").EnumerateArray().Select(p => p.GetString()));
        Assert.Equal(("video/webm", recorded.FileId, (long)recorded.Bytes!.Length, Convert.ToHexStringLower(SHA256.HashData(recorded.Bytes))),
            (r.Str("format"), r.Str("file_id"), r.GetProperty("size").GetInt64(), r.Str("sha256")));
        Assert.Equal($"file:{tenant}/{recorded.FileId}", r.Str("storage"));
        Assert.True(r.GetProperty("duration_seconds").GetDouble() >= 0);
        Assert.NotEqual(JsonValueKind.Null, r.GetProperty("started_at").ValueKind);
        Assert.Equal(["alice", "bob"], r.GetProperty("quality").EnumerateArray().Select(q => q.Str("user_id")));
        var link = r.GetProperty("download");
        Assert.True(link.GetProperty("expires_at").GetDateTimeOffset() > DateTimeOffset.UtcNow);
        using (var anonymous = node.WithToken(null))
            Assert.Equal(recorded.Bytes, await anonymous.GetByteArrayAsync(link.Str("url")));

        var d = await RecordingWhenAsync(admin, declined.Recording, _ => true);
        Assert.Equal(("declined", "refused"), (d.Str("status"), d.Str("end_reason")));
        Assert.Equal(JsonValueKind.Null, d.GetProperty("download").ValueKind);
        Assert.Equal([("carol", true), ("dan", false)], d.GetProperty("consents").EnumerateArray().Select(c => (c.Str("user_id"), c.GetProperty("consent").GetBoolean())));

        // The list: newest first, by conversation, by period, page by page.
        var (status, all) = await admin.ApiGet("/v1/admin/recordings");
        Assert.Equal(200, status);
        Assert.Equal([declined.Recording, recorded.Recording], Ids(all));
        Assert.Equal(JsonValueKind.Null, all.GetProperty("next_cursor").ValueKind);
        Assert.Equal([recorded.Recording], Ids((await admin.ApiGet($"/v1/admin/recordings?conversation_id={recorded.Conversation}")).Body));
        var (_, first) = await admin.ApiGet("/v1/admin/recordings?limit=1");
        Assert.Equal([declined.Recording], Ids(first));
        var (_, second) = await admin.ApiGet($"/v1/admin/recordings?limit=1&cursor={first.Str("next_cursor")}");
        Assert.Equal([recorded.Recording], Ids(second));
        var requestedAt = Uri.EscapeDataString(d.Str("requested_at"));
        Assert.Equal([declined.Recording], Ids((await admin.ApiGet($"/v1/admin/recordings?from={requestedAt}")).Body));
        Assert.Equal([recorded.Recording], Ids((await admin.ApiGet($"/v1/admin/recordings?to={requestedAt}")).Body));
        foreach (var bad in new[] { "limit=0", "limit=201", "limit=x", "cursor=nonsense", "from=yesterday", "to=2025-13-01T00:00:00Z",
                     "from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z", "conversation_id=a%20b" })
        {
            var (badStatus, problem) = await admin.ApiGet($"/v1/admin/recordings?{bad}");
            Assert.True(badStatus == 400, $"{bad}: {badStatus} {problem}");
            Assert.Equal("validation_failed", problem.Code());
        }

        // The figures: one recorded, one refused; its bytes; the participants' average quality.
        var (statsStatus, stats) = await admin.ApiGet("/v1/admin/recordings/stats/summary");
        Assert.Equal(200, statsStatus);
        Assert.Equal((2L, 1L, 1L, 0L, (long)recorded.Bytes.Length), (stats.GetProperty("count").GetInt64(), stats.GetProperty("recorded").GetInt64(),
            stats.GetProperty("declined").GetInt64(), stats.GetProperty("deleted").GetInt64(), stats.GetProperty("bytes").GetInt64()));
        Assert.Equal(0.5, stats.GetProperty("consent_decline_rate").GetDouble());
        Assert.Equal(r.GetProperty("duration_seconds").GetDouble(), stats.GetProperty("average_duration_seconds").GetDouble(), 3);
        var quality = stats.GetProperty("average_quality");
        // alice 40 ms, bob 80 ms (both calls' reports alike); jitter only alice's; bitrate only alice's.
        Assert.Equal((60d, 2d, 0.5, 64d), (quality.GetProperty("rtt_ms").GetDouble(), quality.GetProperty("jitter_ms").GetDouble(),
            quality.GetProperty("packet_loss_pct").GetDouble(), quality.GetProperty("bitrate_kbps").GetDouble()));
        var (_, later) = await admin.ApiGet($"/v1/admin/recordings/stats/summary?from={Uri.EscapeDataString(DateTimeOffset.UtcNow.AddDays(1).ToString("O"))}");
        Assert.Equal(0, later.GetProperty("count").GetInt64());
        Assert.Equal(JsonValueKind.Null, later.GetProperty("average_quality").ValueKind);
        Assert.Equal(JsonValueKind.Null, later.GetProperty("consent_decline_rate").ValueKind);
        Assert.Equal("validation_failed", (await admin.ApiGet("/v1/admin/recordings/stats/summary?to=soon")).Body.Code());

        // Without the admin role: 403 everywhere (a participant included); another tenant's admin: nothing of it.
        foreach (var caller in new[] { node.Client(tenant, "alice"), node.Client(tenant, "mod", "moderator") })
            using (caller)
                foreach (var (method, path) in new[] { (HttpMethod.Get, "/v1/admin/recordings"), (HttpMethod.Get, $"/v1/admin/recordings/{recorded.Recording}"),
                             (HttpMethod.Get, "/v1/admin/recordings/stats/summary"), (HttpMethod.Delete, $"/v1/admin/recordings/{recorded.Recording}") })
                {
                    var (s, problem) = await caller.SendAsync(method, path);
                    Assert.Equal((403, "forbidden"), (s, problem.Code()));
                }
        using var stranger = node.Client("t-recother", "root", "admin");
        Assert.Equal(404, (await stranger.ApiGet($"/v1/admin/recordings/{recorded.Recording}")).Status);
        Assert.Equal(404, (await stranger.ApiDelete($"/v1/admin/recordings/{recorded.Recording}")).Status);
        Assert.Empty(Ids((await stranger.ApiGet("/v1/admin/recordings")).Body));
        Assert.Equal(0, (await stranger.ApiGet("/v1/admin/recordings/stats/summary")).Body.GetProperty("count").GetInt64());
        Assert.Equal(404, (await admin.ApiGet($"/v1/admin/recordings/{RecordingIds.New()}")).Status);
        Assert.Equal(404, (await admin.ApiGet("/v1/admin/recordings/not-a-recording")).Status);
        // Still there, untouched.
        Assert.Equal("recorded", (await admin.ApiGet($"/v1/admin/recordings/{recorded.Recording}")).Body.Str("status"));
    }

    [Fact]
    public async Task Deleting_a_recording_purges_its_bytes_keeps_its_metadata_and_is_audited()
    {
        const string tenant = "t-recd";
        using var admin = node.Client(tenant, "root", "admin");
        var made = await RecordAsync(tenant, "amy", ["ben"], seed: 2);
        var before = await RecordingWhenAsync(admin, made.Recording, Stored);
        var oldLink = before.GetProperty("download").Str("url");
        Assert.NotNull(await node.MediaStore.SizeAsync(tenant, made.FileId!));

        var (status, deleted) = await admin.ApiDelete($"/v1/admin/recordings/{made.Recording}");
        Assert.True(status == 200, deleted.ToString());
        Assert.Equal(("deleted", "root", made.FileId, (long)made.Bytes!.Length), (deleted.Str("status"), deleted.Str("deleted_by"), deleted.Str("file_id"),
            deleted.GetProperty("size").GetInt64()));
        Assert.Equal(JsonValueKind.Null, deleted.GetProperty("download").ValueKind);
        Assert.Equal(before.Str("sha256"), deleted.Str("sha256"));
        Assert.Equal(before.GetProperty("duration_seconds").GetDouble(), deleted.GetProperty("duration_seconds").GetDouble());

        // The bytes are gone: the old signed link, the member's download, the store.
        using (var anonymous = node.WithToken(null))
        using (var response = await anonymous.GetAsync(oldLink))
            Assert.Equal(404, (int)response.StatusCode);
        Assert.Equal(404, (await node.Client(tenant, "amy").ApiGet($"/v1/media/download/{made.FileId}")).Status);
        Assert.Null(await node.MediaStore.SizeAsync(tenant, made.FileId!));

        // Again: the same answer. The metadata stays, marked deleted (the read model follows).
        var (again, repeat) = await admin.ApiDelete($"/v1/admin/recordings/{made.Recording}");
        Assert.Equal(200, again);
        Assert.Equal((deleted.Str("status"), deleted.Str("deleted_at")), (repeat.Str("status"), repeat.Str("deleted_at")));
        var after = await RecordingWhenAsync(admin, made.Recording, r => r.Str("status") == "deleted");
        Assert.Equal((before.Str("sha256"), before.Str("storage"), before.Str("requested_by")), (after.Str("sha256"), after.Str("storage"), after.Str("requested_by")));
        Assert.Equal(JsonValueKind.Null, after.GetProperty("download").ValueKind);
        var listed = await WhenAsync(() => admin.ApiGet("/v1/admin/recordings"),
            b => b.GetProperty("items").EnumerateArray().Any(i => i.Str("id") == made.Recording && i.Str("status") == "deleted"));
        var stats = await WhenAsync(() => admin.ApiGet("/v1/admin/recordings/stats/summary"), b => b.GetProperty("deleted").GetInt64() == 1);
        Assert.Equal((1L, 0L, 0L), (stats.GetProperty("count").GetInt64(), stats.GetProperty("recorded").GetInt64(), stats.GetProperty("bytes").GetInt64()));
        Assert.Single(listed.GetProperty("items").EnumerateArray());
        Assert.Equal(404, (await admin.ApiDelete($"/v1/admin/recordings/{RecordingIds.New()}")).Status);

        // A recording still running stops, then is deleted.
        var running = await RecordAsync(tenant, "cat", ["dov"], end: false);
        await RecordingWhenAsync(admin, running.Recording, r => r.Str("status") == "recording");
        var (runningStatus, stopped) = await admin.ApiDelete($"/v1/admin/recordings/{running.Recording}");
        Assert.Equal(200, runningStatus);
        Assert.Equal(("deleted", "stopped"), (stopped.Str("status"), stopped.Str("end_reason")));
        Assert.NotEqual(JsonValueKind.Null, stopped.GetProperty("ended_at").ValueKind);

        // Audited: each deletion is in the tenant's admin-action log.
        var (_, log) = await admin.ApiGet("/v1/admin/audit/access-log?limit=200");
        var actions = log.GetProperty("items").EnumerateArray().Select(i => (i.Str("action"), i.Str("target"))).ToList();
        Assert.Equal(2, actions.Count(a => a == ("admin:DELETE /v1/admin/recordings/{id}", $"/v1/admin/recordings/{made.Recording}")));
        Assert.Contains(("admin:DELETE /v1/admin/recordings/{id}", $"/v1/admin/recordings/{running.Recording}"), actions);
    }

    [Fact]
    public async Task Erasing_a_user_deletes_every_recording_they_appear_in_and_says_how_many()
    {
        const string tenant = "t-rece";
        using var admin = node.Client(tenant, "root", "admin");
        var consented = await RecordAsync(tenant, "ada", ["eve"], seed: 3);         // eve consented
        var requested = await RecordAsync(tenant, "eve", ["bo"], seed: 4);          // eve asked (and uploaded)
        var refused = await RecordAsync(tenant, "bo", ["eve"], refuser: "eve");   // eve was asked and refused
        var without = await RecordAsync(tenant, "ada", ["bo"], seed: 5);           // eve is not in it
        foreach (var m in new[] { consented, requested, without }) await RecordingWhenAsync(admin, m.Recording, Stored);
        await RecordingWhenAsync(admin, refused.Recording, Ended);

        var (status, report) = await admin.ApiDelete("/v1/admin/users/eve");
        Assert.True(status == 200, report.ToString());
        Assert.Equal(3, report.GetProperty("recordings_deleted").GetInt32());
        Assert.True(report.TryGetProperty("search_entries_erased", out _));
        foreach (var m in new[] { consented, requested, refused })
        {
            // The reason comes from the read model (the entity's answer has none), so this waits for it too.
            var r = await RecordingWhenAsync(admin, m.Recording, x => x.Str("status") == "deleted" && x.GetProperty("delete_reason").ValueKind == JsonValueKind.String);
            Assert.Equal(("root", "erasure"), (r.Str("deleted_by"), r.Str("delete_reason")));
            if (m.FileId is not null) Assert.Null(await node.MediaStore.SizeAsync(tenant, m.FileId));
        }
        Assert.Equal("recorded", (await admin.ApiGet($"/v1/admin/recordings/{without.Recording}")).Body.Str("status"));
        Assert.NotNull(await node.MediaStore.SizeAsync(tenant, without.FileId!));

        // Repeatable: nothing is left to delete.
        var (_, second) = await admin.ApiDelete("/v1/admin/users/eve");
        Assert.Equal(0, second.GetProperty("recordings_deleted").GetInt32());
    }

    private static async Task<JsonElement> WhenAsync(Func<Task<(int Status, JsonElement Body)>> read, Func<JsonElement, bool> done)
    {
        var deadline = DateTime.UtcNow + Within;
        while (true)
        {
            var (status, body) = await read();
            if (status == 200 && done(body)) return body;
            Assert.True(DateTime.UtcNow < deadline, $"Never matched: {status} {body}");
            await Task.Delay(100);
        }
    }
}
