using System.Security.Cryptography;
using System.Text.Json;
using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Calls;
using Caas.Web.Tests.Hubs;
using Caas.Web.Tests.Media;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests.Calls;

/// <summary>
/// Recording a call with every participant's consent, on a real node over SignalR: the request, the consents, the
/// start, a joiner stopping it until they consent, the refusals, and the requester's upload linked to the recording.
/// </summary>
public sealed class RecordingHubTests(CallHubTests.Node node) : IClassFixture<CallHubTests.Node>
{
    private static readonly TimeSpan Within = TimeSpan.FromMinutes(1);

    private static Func<JsonElement, bool> Of(string callId) => e => e.Str("call_id") == callId;

    private Task<HubClient> ConnectAsync(string tenant, string user) => CallClients.ConnectAsync(node, tenant, user);

    /// <summary>The recording as the call entity has it.</summary>
    private async Task<RecordingInfo> RecordingAsync(string tenant, string conversation, string recordingId)
    {
        var calls = node.App.Services.GetRequiredService<IRequiredActor<CallRoomRegion>>().ActorRef;
        return Assert.IsType<RecordingInfo>(await calls.Ask<object>(new GetRecording(tenant, conversation, "test", recordingId), Within));
    }

    /// <summary>A WebM head (as MediaRecorder writes) and random bytes.</summary>
    private static byte[] Recorded(int length)
    {
        var bytes = RandomNumberGenerator.GetBytes(length);
        new byte[] { 0x1A, 0x45, 0xDF, 0xA3 }.CopyTo(bytes, 0);
        return bytes;
    }

    [Fact]
    public async Task A_recording_starts_once_everyone_consents_and_its_requester_uploads_it_linked()
    {
        var conversation = await node.Rest("t1", "rae").CreateGroupAsync("sid", "tom");
        await using var rae = await ConnectAsync("t1", "rae");
        await using var sid = await ConnectAsync("t1", "sid");
        await using var tom = await ConnectAsync("t1", "tom");
        var call = (await rae.Ok("StartCall", new { conversation_id = conversation, media = "video" })).Str("call_id");
        await sid.Ok("AcceptCall", new { call_id = call });
        await tom.Ok("AcceptCall", new { call_id = call });

        // A participant still alone cannot ask before others joined (see the one-person test); here three are in.
        var asked = await rae.Ok("RequestRecording", new { call_id = call });
        var recording = asked.Str("recording_id");
        Assert.Equal("pending", asked.Str("status"));
        Assert.Equal(["sid", "tom"], asked.GetProperty("awaiting").EnumerateArray().Select(u => u.GetString()));
        foreach (var client in new[] { rae, sid, tom })
        {
            var request = await client.NextAsync(CallNotices.RecordingConsentRequested, Of(call), Within);
            Assert.Equal((recording, "rae"), (request.Str("recording_id"), request.Str("requested_by")));
            Assert.True(request.GetProperty("timeout_seconds").GetDouble() > 0);
        }
        // A second request while one is open: 409. Bad answers change nothing.
        await sid.Fails("RequestRecording", new { call_id = call }, "conflict");
        await tom.Fails("ConsentRecording", new { call_id = call, recording_id = recording, consent = true, user_id = "sid" }, "forbidden");
        await tom.Fails("ConsentRecording", new { call_id = call, recording_id = recording, consent = "yes" }, "validation_failed");
        await tom.Fails("ConsentRecording", new { call_id = call, recording_id = RecordingIds.New(), consent = true }, "not_found");

        Assert.Equal("pending", (await sid.Ok("ConsentRecording", new { call_id = call, recording_id = recording, consent = true })).Str("status"));
        Assert.Equal("sid", (await rae.NextAsync(CallNotices.RecordingConsented, Of(call), Within)).Str("user_id"));
        // Nothing was recorded yet: the upload is refused.
        var (early, earlyBody) = await node.Rest("t1", "rae").ApiPost("/v1/media/upload/chunk",
            new { file_name = "call.webm", content_type = "video/webm", conversation_id = conversation, recording_id = recording });
        Assert.True(early == 409, earlyBody.ToString());

        var started = await tom.Ok("ConsentRecording", new { call_id = call, recording_id = recording, consent = true });
        Assert.Equal("recording", started.Str("status"));
        foreach (var client in new[] { rae, sid, tom })
            Assert.Equal(recording, (await client.NextAsync(CallNotices.RecordingStarted, Of(call), Within)).Str("recording_id"));

        // Only the requester uploads it, with its id: size unknown at the start (a recorder), the short last chunk ends it.
        var (notYours, _) = await node.Rest("t1", "sid").ApiPost("/v1/media/upload/chunk",
            new { file_name = "call.webm", content_type = "video/webm", conversation_id = conversation, recording_id = recording });
        Assert.Equal(403, notYours);
        var rest = node.Rest("t1", "rae");
        var (status, start) = await rest.ApiPost("/v1/media/upload/chunk",
            new { file_name = "call.webm", content_type = "video/webm", conversation_id = conversation, recording_id = recording });
        Assert.True(status == 201, start.ToString());
        var bytes = Recorded(3000);
        Assert.Equal(200, (await rest.ChunkAsync(start.Str("upload_id"), 0, bytes)).Status);
        var (completed, file) = await rest.ApiPost($"/v1/media/upload/complete/{start.Str("upload_id")}", null);
        Assert.True(completed == 201, file.ToString());

        await rae.Ok("EndCall", new { call_id = call });
        var stopped = await sid.NextAsync(CallNotices.RecordingStopped, Of(call), Within);
        Assert.Equal(RecordingReasons.CallEnded, stopped.Str("reason"));

        var info = await RecordingAsync("t1", conversation, recording);
        Assert.Equal(("recorded", "rae", RecordingReasons.CallEnded), (info.Status, info.RequestedBy, info.EndReason));
        Assert.Equal(["rae", "sid", "tom"], info.Consents.Where(c => c.Consent).Select(c => c.UserId).Order());
        Assert.Equal(file.Str("id"), info.File!.FileId);
        Assert.Equal((bytes.Length, Convert.ToHexStringLower(SHA256.HashData(bytes)), "video/webm"), (info.File.Size, info.File.Sha256, info.File.ContentType));
        // Stored once: a second upload for it is refused.
        var (again, _) = await rest.ApiPost("/v1/media/upload/chunk",
            new { file_name = "call.webm", content_type = "video/webm", conversation_id = conversation, recording_id = recording });
        Assert.Equal(409, again);
    }

    [Fact]
    public async Task A_joiner_stops_the_recording_until_they_consent_and_a_refusal_ends_it()
    {
        var conversation = await node.Rest("t1", "uma").CreateGroupAsync("val", "wes");
        await using var uma = await ConnectAsync("t1", "uma");
        await using var val = await ConnectAsync("t1", "val");
        await using var wes = await ConnectAsync("t1", "wes");
        var call = (await uma.Ok("StartCall", new { conversation_id = conversation, media = "audio" })).Str("call_id");
        await val.Ok("AcceptCall", new { call_id = call });
        var recording = (await uma.Ok("RequestRecording", new { call_id = call })).Str("recording_id");
        await val.Ok("ConsentRecording", new { call_id = call, recording_id = recording, consent = true });
        await uma.NextAsync(CallNotices.RecordingStarted, Of(call), Within);

        // wes joins: told in the answer to joining, before any media flows, and asked; the others hear it stopped.
        var joined = await wes.Ok("AcceptCall", new { call_id = call });
        var state = joined.GetProperty("recording");
        Assert.Equal((recording, "paused"), (state.Str("recording_id"), state.Str("status")));
        Assert.Equal(["wes"], state.GetProperty("awaiting").EnumerateArray().Select(u => u.GetString()));
        Assert.Equal("wes", (await wes.NextAsync(CallNotices.RecordingConsentRequested, Of(call), Within))
            .GetProperty("awaiting").EnumerateArray().Single().GetString());
        var stopped = await uma.NextAsync(CallNotices.RecordingStopped, Of(call), Within);
        Assert.Equal(RecordingReasons.ConsentPending, stopped.Str("reason"));

        Assert.Equal("recording", (await wes.Ok("ConsentRecording", new { call_id = call, recording_id = recording, consent = true })).Str("status"));
        await wes.NextAsync(CallNotices.RecordingStarted, Of(call), Within); // wes joined after the first start: this is the resume

        // val withdraws: the recording is over, and nobody can answer it any more.
        var over = await val.Ok("ConsentRecording", new { call_id = call, recording_id = recording, consent = false });
        Assert.Equal("recorded", over.Str("status"));
        var declined = await uma.NextAsync(CallNotices.RecordingDeclined, Of(call), Within);
        Assert.Equal((RecordingReasons.Refused, "val"), (declined.Str("reason"), declined.GetProperty("user_ids")[0].GetString()));
        await wes.Fails("ConsentRecording", new { call_id = call, recording_id = recording, consent = true }, "conflict");
        // Stopping is for who asked or a moderator: there is nothing to stop now.
        await val.Fails("StopRecording", new { call_id = call }, "not_found");
    }

    [Fact]
    public async Task A_call_of_one_is_not_recorded_and_strangers_get_nothing()
    {
        var conversation = await node.Rest("t1", "xia").CreateGroupAsync("yul");
        await using var xia = await ConnectAsync("t1", "xia");
        await using var yul = await ConnectAsync("t1", "yul");
        await using var zed = await ConnectAsync("t1", "zed");
        await using var other = await ConnectAsync("t2", "xia");
        var call = (await xia.Ok("StartCall", new { conversation_id = conversation, media = "audio" })).Str("call_id");
        await xia.Fails("RequestRecording", new { call_id = call }, "conflict");   // alone in it
        await yul.Fails("RequestRecording", new { call_id = call }, "forbidden");  // still ringing
        await zed.Fails("RequestRecording", new { call_id = call }, "not_found");  // not a member
        await other.Fails("RequestRecording", new { call_id = call }, "not_found"); // another tenant's call id
        await yul.Ok("AcceptCall", new { call_id = call });
        var recording = (await xia.Ok("RequestRecording", new { call_id = call })).Str("recording_id");
        await zed.Fails("ConsentRecording", new { call_id = call, recording_id = recording, consent = true }, "not_found");
        await yul.Fails("StopRecording", new { call_id = call }, "forbidden"); // not who asked, not a moderator
        Assert.Equal("declined", (await xia.Ok("StopRecording", new { call_id = call })).Str("status"));
        await yul.NextAsync(CallNotices.RecordingStopped, Of(call), Within);
    }
}

/// <summary>The consent timeout, on a node where it is one second.</summary>
public sealed class RecordingTimeoutTests(RecordingTimeoutTests.Node node) : IClassFixture<RecordingTimeoutTests.Node>
{
    public sealed class Node() : HubNode(new Dictionary<string, string?>(),
        o => o with { ExtraHocon = "caas.calls.ring-timeout = 1h\ncaas.calls.recording-consent-timeout = 1s" });

    [Fact]
    public async Task Without_every_consent_in_time_the_recording_is_declined_and_a_late_consent_is_a_conflict()
    {
        var within = TimeSpan.FromMinutes(1);
        var conversation = await node.Rest("t1", "ann").CreateGroupAsync("bea");
        await using var ann = await CallClients.ConnectAsync(node, "t1", "ann");
        await using var bea = await CallClients.ConnectAsync(node, "t1", "bea");
        var call = (await ann.Ok("StartCall", new { conversation_id = conversation, media = "audio" })).Str("call_id");
        Func<JsonElement, bool> of = e => e.Str("call_id") == call;
        await bea.Ok("AcceptCall", new { call_id = call });
        var recording = (await ann.Ok("RequestRecording", new { call_id = call })).Str("recording_id");
        var declined = await ann.NextAsync(CallNotices.RecordingDeclined, of, within);
        Assert.Equal((RecordingReasons.Timeout, "bea"), (declined.Str("reason"), declined.GetProperty("user_ids")[0].GetString()));
        await bea.Fails("ConsentRecording", new { call_id = call, recording_id = recording, consent = true }, "conflict");
        // A new request can be made after that.
        Assert.Equal("pending", (await ann.Ok("RequestRecording", new { call_id = call })).Str("status"));
    }
}
