using System.Text.Json;
using Caas.Web.Tests.Hubs;

namespace Caas.Web.Tests.Media;

/// <summary>
/// Messages with attachments on a real node (PostgreSQL, the file store): sent over REST, the hub and bulk NDJSON, read
/// back with the file's metadata everywhere; each bad attachment refused with its code and nothing written.
/// </summary>
public sealed class AttachmentMessageTests(MediaFileNode node) : IClassFixture<MediaFileNode>
{
    private string Tenant { get; } = "t-attach-" + Guid.NewGuid().ToString("N")[..8];

    private static object Attachment(string type, string mediaId, string? caption = null) => new { type, media_id = mediaId, caption };

    private static void AssertShows(JsonElement content, string type, string mediaId, string? caption, byte[] bytes, string fileName, string contentType)
    {
        Assert.Equal(type, content.Str("type"));
        Assert.Equal(mediaId, content.Str("media_id"));
        if (caption is null) Assert.Equal(JsonValueKind.Null, content.GetProperty("caption").ValueKind);
        else Assert.Equal(caption, content.Str("caption"));
        var media = content.GetProperty("media");
        Assert.Equal(fileName, media.Str("file_name"));
        Assert.Equal(contentType, media.Str("content_type"));
        Assert.Equal(bytes.Length, media.GetProperty("size").GetInt64());
        Assert.Equal(MediaHttp.Sha(bytes), media.Str("sha256"));
        foreach (var field in new[] { "width", "height", "duration_ms", "thumbnail_url" }) Assert.True(media.TryGetProperty(field, out _), field);
    }

    private static async Task<JsonElement> HistoryAsync(HttpClient c, string conversation) =>
        (await c.ApiGet($"/v1/messages/conversations/{conversation}")).Body.GetProperty("items");

    private static async Task<long> LastSeqAsync(HttpClient c, string conversation) =>
        (await c.ApiGet($"/v1/conversations/{conversation}")).Body.GetProperty("last_seq").GetInt64();

    [Fact]
    public async Task An_image_sent_over_REST_reaches_the_hub_and_reads_back_with_its_metadata()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync("bob");
        var bytes = MediaHttp.Png(4_000, 7);
        var (uploaded, file) = await alice.UploadAsync(conv, bytes, "cat.png");
        Assert.Equal(201, uploaded);
        var id = file.Str("id");

        await using var bob = await HubClient.ConnectAsync(node.BaseAddress, node.Jwt.Issue(Tenant, "bob"));
        await bob.JoinAsync(conv);

        var (status, ack) = await alice.ApiPost("/v1/messages",
            new { conversation_id = conv, content = Attachment("image", id, "my cat"), message_id = "att-rest-1" });
        Assert.True(status == 201, ack.ToString());
        AssertShows(ack.GetProperty("content"), "image", id, "my cat", bytes, "cat.png", "image/png");

        var live = await bob.NextAsync("newMessage:" + conv, within: TimeSpan.FromSeconds(60));
        Assert.Equal("att-rest-1", live.Str("message_id"));
        AssertShows(live.GetProperty("content"), "image", id, "my cat", bytes, "cat.png", "image/png");

        var (got, message) = await alice.ApiGet("/v1/messages/att-rest-1");
        Assert.True(got == 200, message.ToString());
        AssertShows(message.GetProperty("content"), "image", id, "my cat", bytes, "cat.png", "image/png");

        using var bobRest = node.Client(Tenant, "bob");
        var history = await HistoryAsync(bobRest, conv);
        AssertShows(history.EnumerateArray().Single(m => m.Str("message_id") == "att-rest-1").GetProperty("content"),
            "image", id, "my cat", bytes, "cat.png", "image/png");

        // The same message again is the same message (a retry), not a second one.
        var (again, repeat) = await alice.ApiPost("/v1/messages",
            new { conversation_id = conv, content = Attachment("image", id, "my cat"), message_id = "att-rest-1" });
        Assert.True(again == 200, repeat.ToString());
        Assert.Equal(1, await LastSeqAsync(alice, conv));

        // An edit changes the caption; the file stays.
        var (edited, editedBody) = await alice.ApiPut("/v1/messages/att-rest-1", new { content = new { type = "text", text = "my cat, asleep" } });
        Assert.True(edited == 200, editedBody.ToString());
        AssertShows(editedBody.GetProperty("content"), "image", id, "my cat, asleep", bytes, "cat.png", "image/png");
        AssertShows((await alice.ApiGet("/v1/messages/att-rest-1")).Body.GetProperty("content"), "image", id, "my cat, asleep", bytes, "cat.png", "image/png");

        // Deleting the message leaves the file in the gallery and downloadable.
        Assert.Equal(200, (await alice.ApiDelete($"/v1/messages/att-rest-1")).Status);
        Assert.Equal(bytes, await alice.BytesAsync($"/v1/media/download/{id}"));
        Assert.Equal(200, (await alice.ApiGet($"/v1/media/files/{id}")).Status);
    }

    [Fact]
    public async Task A_file_sent_over_the_hub_without_a_caption_reads_back_over_REST()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync("bob");
        var bytes = MediaHttp.Pdf(3_000, 9);
        var (_, file) = await alice.UploadAsync(conv, bytes, "report.pdf", "application/pdf");
        var id = file.Str("id");

        await using var hub = await HubClient.ConnectAsync(node.BaseAddress, node.Jwt.Issue(Tenant, "alice"));
        var sent = await hub.Ok("SendMessage", new { conversation_id = conv, content = new { type = "file", media_id = id }, message_id = "att-hub-1" });
        Assert.Equal(1, sent.Seq());

        var history = await HistoryAsync(alice, conv);
        AssertShows(history.EnumerateArray().Single().GetProperty("content"), "file", id, null, bytes, "report.pdf", "application/pdf");

        // A caption is text: it counts toward the message limit like text does.
        await hub.Fails("SendMessage", new { conversation_id = conv, content = new { type = "file", media_id = id, caption = new string('c', 4001) } },
            "payload_too_large");
        await hub.Fails("SendMessage", new { conversation_id = conv, content = new { type = "file" } }, "validation_failed");
        Assert.Equal(1, await LastSeqAsync(alice, conv));
    }

    [Fact]
    public async Task A_completed_resumable_upload_is_attached_by_its_upload_id_and_an_unfinished_one_is_a_conflict()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        var bytes = MediaHttp.Pdf(2_000, 11);
        var (started, start) = await alice.ApiPost("/v1/media/upload/chunk",
            new { file_name = "notes.pdf", size = bytes.Length, content_type = "application/pdf", conversation_id = conv });
        Assert.True(started == 201, start.ToString());
        var upload = start.Str("upload_id");

        var (refused, conflict) = await alice.ApiPost("/v1/messages", new { conversation_id = conv, content = Attachment("file", upload) });
        Assert.True(refused == 409, conflict.ToString());
        Assert.Equal("conflict", conflict.Code());
        Assert.Equal(200, (await alice.ChunkAsync(upload, 0, bytes)).Status);
        Assert.Equal(409, (await alice.ApiPost("/v1/messages", new { conversation_id = conv, content = Attachment("file", upload) })).Status);
        Assert.Equal(0, await LastSeqAsync(alice, conv));

        var (completed, file) = await alice.ApiPost($"/v1/media/upload/complete/{upload}", null);
        Assert.True(completed == 201, file.ToString());
        var (status, ack) = await alice.ApiPost("/v1/messages", new { conversation_id = conv, content = Attachment("file", upload, "read me") });
        Assert.True(status == 201, ack.ToString());
        // The message names the file, not the upload.
        AssertShows(ack.GetProperty("content"), "file", file.Str("id"), "read me", bytes, "notes.pdf", "application/pdf");
    }

    [Fact]
    public async Task A_bulk_line_carries_an_attachment_and_bad_lines_are_refused_with_their_codes()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        var other = await alice.CreateGroupAsync();
        var bytes = MediaHttp.Png(2_500, 13);
        var id = (await alice.UploadAsync(conv, bytes, "bulk.png")).Body.Str("id");
        var elsewhere = (await alice.UploadAsync(other, MediaHttp.Png(1_000, 14))).Body.Str("id");

        string Line(string messageId, object content) => JsonSerializer.Serialize(new { conversation_id = conv, sender_id = "alice", message_id = messageId, content });
        var body = string.Join("\n",
            Line("bulk-att-1", Attachment("image", id, "from the archive")),
            Line("bulk-att-2", Attachment("image", elsewhere)),
            Line("bulk-att-3", new { type = "image", media_id = 42 }),
            Line("bulk-att-4", Attachment("video", id))) + "\n";
        using var loader = node.Client(Tenant, "loader", "ingest");
        using var response = await loader.PostAsync("/v1/ingest", new StringContent(body, System.Text.Encoding.UTF8, "application/x-ndjson"));
        Assert.Equal(200, (int)response.StatusCode);
        var answers = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        Assert.Equal(["persisted", "rejected", "rejected", "rejected"], answers.Select(a => a.Str("status")));
        Assert.Equal(["not_found", "validation_failed", "validation_failed"], answers.Skip(1).Select(a => a.Code()));

        var history = await HistoryAsync(alice, conv);
        Assert.Equal(["bulk-att-1"], history.EnumerateArray().Select(m => m.Str("message_id")));
        AssertShows(history[0].GetProperty("content"), "image", id, "from the archive", bytes, "bulk.png", "image/png");
    }

    [Fact]
    public async Task Erasing_the_author_erases_the_caption_and_the_attachment_and_purges_the_file()
    {
        using var bob = node.Client(Tenant, "bob");
        using var alice = node.Client(Tenant, "alice");
        using var admin = node.Client(Tenant, "root", "admin");
        var conv = await alice.CreateGroupAsync("bob");
        var bytes = MediaHttp.Png(1_500, 31);
        var id = (await bob.UploadAsync(conv, bytes, "secret.png")).Body.Str("id");
        var (status, ack) = await bob.ApiPost("/v1/messages",
            new { conversation_id = conv, content = Attachment("image", id, "bob's secret"), message_id = "att-erase-1" });
        Assert.True(status == 201, ack.ToString());
        AssertShows((await HistoryAsync(alice, conv))[0].GetProperty("content"), "image", id, "bob's secret", bytes, "secret.png", "image/png");

        var (erased, report) = await admin.ApiDelete("/v1/admin/users/bob");
        Assert.True(erased == 200, report.ToString());
        Assert.Equal(1, report.GetProperty("files_erased").GetInt32());
        Assert.Equal(404, (await alice.ApiGet($"/v1/media/download/{id}")).Status);
        var content = (await HistoryAsync(alice, conv))[0].GetProperty("content");
        Assert.Equal("erased", content.Str("type"));
        Assert.DoesNotContain("secret", content.ToString());
        Assert.False(content.TryGetProperty("media_id", out _));
        Assert.DoesNotContain("secret", (await alice.ApiGet("/v1/messages/att-erase-1")).Body.ToString());
    }

    [Fact]
    public async Task Files_of_another_conversation_or_tenant_deleted_or_malformed_are_refused_and_change_nothing()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync("bob");
        var other = await alice.CreateGroupAsync();
        var mine = (await alice.UploadAsync(conv, MediaHttp.Png(1_000, 21))).Body.Str("id");
        var otherConversation = (await alice.UploadAsync(other, MediaHttp.Png(1_000, 22))).Body.Str("id");
        using var foreign = node.Client(Tenant + "-other", "alice");
        var foreignConv = await foreign.CreateGroupAsync();
        var otherTenant = (await foreign.UploadAsync(foreignConv, MediaHttp.Png(1_000, 23))).Body.Str("id");
        var deleted = (await alice.UploadAsync(conv, MediaHttp.Png(1_000, 24))).Body.Str("id");
        Assert.Equal(204, (await alice.ApiDelete($"/v1/media/files/{deleted}")).Status);
        await using var hub = await HubClient.ConnectAsync(node.BaseAddress, node.Jwt.Issue(Tenant, "alice"));

        var cases = new (object Content, int Status, string Code)[]
        {
            (Attachment("image", otherConversation), 404, "not_found"),
            (Attachment("image", otherTenant), 404, "not_found"),
            (Attachment("image", deleted), 404, "not_found"),
            (Attachment("image", "f_no_such_file"), 404, "not_found"),
            (Attachment("image", "a b"), 400, "validation_failed"),
            (new { type = "image", caption = "no file" }, 400, "validation_failed"),
            (new { type = "image", media_id = 7 }, 400, "validation_failed"),
            (Attachment("audio", mine), 400, "validation_failed"),
            (Attachment("sticker", mine), 400, "validation_failed"),
        };
        foreach (var (content, expect, code) in cases)
        {
            var (status, problem) = await alice.ApiPost("/v1/messages", new { conversation_id = conv, content });
            Assert.True(status == expect, $"{JsonSerializer.Serialize(content)}: {status} {problem}");
            Assert.Equal(code, problem.Code());
            await hub.Fails("SendMessage", new { conversation_id = conv, content }, code);
        }
        // A member of the file's conversation who is not a member here learns nothing either.
        using var bob = node.Client(Tenant, "bob");
        Assert.Equal(404, (await bob.ApiPost("/v1/messages", new { conversation_id = other, content = Attachment("image", otherConversation) })).Status);

        Assert.Equal(0, await LastSeqAsync(alice, conv));
        Assert.Equal(0, await LastSeqAsync(alice, other));
        Assert.Empty((await HistoryAsync(alice, conv)).EnumerateArray());
        // The files themselves are untouched.
        Assert.Equal(200, (await alice.ApiGet($"/v1/media/files/{mine}")).Status);
        Assert.Equal(200, (await alice.ApiGet($"/v1/media/files/{otherConversation}")).Status);
    }
}
