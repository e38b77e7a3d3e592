using System.Net.Http.Headers;
using Caas.Web.Media;

namespace Caas.Web.Tests.Media;

/// <summary>The media routes, one suite run on the file store (operational sessions) and on radosgw (Redis sessions).</summary>
public abstract class MediaApiContract(MediaFileNode node)
{
    private const int Chunk = 5 * 1024 * 1024;

    private string Tenant { get; } = "t-media-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task A_single_upload_comes_back_byte_exact_with_validators_and_a_304()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync("bob");
        var bytes = MediaHttp.Png(300_000);
        var (status, file) = await alice.UploadAsync(conv, bytes, "cat 1.png");
        Assert.True(status == 201, file.ToString());
        Assert.Equal("image/png", file.Str("content_type"));
        Assert.Equal(bytes.Length, file.GetProperty("size").GetInt64());
        Assert.Equal(MediaHttp.Sha(bytes), file.Str("sha256"));
        Assert.Equal("alice", file.Str("owner_id"));
        Assert.Equal(conv, file.Str("conversation_id"));
        Assert.Equal("ready", file.Str("state"));
        Assert.True(file.TryGetProperty("thumbnail_url", out _));
        var id = file.Str("id");

        using var response = await alice.GetAsync($"/v1/media/download/{id}");
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(bytes, await response.Content.ReadAsByteArrayAsync());
        Assert.Equal("\"" + MediaHttp.Sha(bytes) + "\"", response.Headers.ETag!.Tag);
        Assert.NotNull(response.Content.Headers.LastModified);
        Assert.Equal("inline", response.Content.Headers.ContentDisposition!.DispositionType);
        Assert.Equal("image/png", response.Content.Headers.ContentType!.MediaType);

        using var conditional = new HttpRequestMessage(HttpMethod.Get, $"/v1/media/download/{id}");
        conditional.Headers.IfNoneMatch.Add(response.Headers.ETag);
        using var notModified = await alice.SendAsync(conditional);
        Assert.Equal(304, (int)notModified.StatusCode);
        using var since = new HttpRequestMessage(HttpMethod.Get, $"/v1/media/download/{id}");
        since.Headers.IfModifiedSince = response.Content.Headers.LastModified;
        Assert.Equal(304, (int)(await alice.SendAsync(since)).StatusCode);

        using var bob = node.Client(Tenant, "bob");
        Assert.Equal(bytes, await bob.BytesAsync($"/v1/media/download/{id}"));
        var (metaStatus, meta) = await bob.ApiGet($"/v1/media/files/{id}");
        Assert.Equal(200, metaStatus);
        Assert.Equal(file.Str("sha256"), meta.Str("sha256"));
    }

    [Fact]
    public async Task Another_tenant_and_a_non_member_get_404_everywhere()
    {
        using var alice = node.Client(Tenant, "alice");
        using var stranger = node.Client(Tenant, "stranger");
        using var mallory = node.Client(Tenant + "-other", "alice");
        var conv = await alice.CreateGroupAsync("bob");
        var (_, file) = await alice.UploadAsync(conv, MediaHttp.Png(1000));
        var id = file.Str("id");
        foreach (var client in new[] { stranger, mallory })
        {
            foreach (var path in new[] { $"/v1/media/files/{id}", $"/v1/media/download/{id}", $"/v1/media/stream/{id}", $"/v1/media/download/{id}/signed",
                         $"/v1/conversations/{conv}/media" })
            {
                var (status, body) = await client.ApiGet(path);
                Assert.True(status == 404, $"{path}: {status} {body}");
                Assert.Equal("not_found", body.Code());
            }
            Assert.Equal(404, (await client.ApiDelete($"/v1/media/files/{id}")).Status);
            Assert.Equal(404, (await client.UploadAsync(conv, MediaHttp.Png(1000))).Status);
        }
        Assert.Equal(200, (await alice.ApiGet($"/v1/media/files/{id}")).Status);
    }

    [Fact]
    public async Task Bad_single_uploads_are_refused_with_their_codes()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();

        var (empty, emptyBody) = await alice.UploadAsync(conv, []);
        Assert.Equal(400, empty);
        Assert.Equal("validation_failed", emptyBody.Code());

        var elf = new byte[2000];
        new byte[] { 0x7F, (byte)'E', (byte)'L', (byte)'F' }.CopyTo(elf, 0);
        var (exe, exeBody) = await alice.UploadAsync(conv, elf, "run.png", "image/png");
        Assert.Equal(415, exe);
        Assert.Equal("unsupported_media_type", exeBody.Code());
        Assert.Equal(415, (await alice.UploadAsync(conv, elf, "run", "application/octet-stream")).Status);

        var (mismatch, mismatchBody) = await alice.UploadAsync(conv, MediaHttp.Pdf(1000), "x.png", "image/png");
        Assert.Equal(415, mismatch);
        Assert.Equal("unsupported_media_type", mismatchBody.Code());

        var (tooLarge, tooLargeBody) = await alice.UploadAsync(conv, MediaHttp.Png((int)node.Settings.MaxSingleBytes + 1));
        Assert.Equal(413, tooLarge);
        Assert.Equal("payload_too_large", tooLargeBody.Code());
        Assert.Equal(201, (await alice.UploadAsync(conv, MediaHttp.Png((int)node.Settings.MaxSingleBytes))).Status);

        // The declared type is only a claim: a PDF sent as octet-stream is stored as what it is.
        var (pdf, pdfBody) = await alice.UploadAsync(conv, MediaHttp.Pdf(1000), "doc.bin", "application/octet-stream");
        Assert.Equal(201, pdf);
        Assert.Equal("application/pdf", pdfBody.Str("content_type"));

        // HTML is kept, but served as a sandboxed attachment that is never sniffed.
        var (html, htmlBody) = await alice.UploadAsync(conv, "<!DOCTYPE html><script>alert(1)</script>"u8.ToArray(), "x.html", "text/html");
        Assert.Equal(201, html);
        using var served = await alice.GetAsync($"/v1/media/download/{htmlBody.Str("id")}");
        Assert.Equal("attachment", served.Content.Headers.ContentDisposition!.DispositionType);
        Assert.Contains("sandbox", served.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal("nosniff", served.Headers.GetValues("X-Content-Type-Options").Single());
    }

    [Fact]
    public async Task A_resumable_upload_takes_chunks_in_any_order_idempotently_and_completes_once()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync("bob");
        var bytes = MediaHttp.Pdf(Chunk + 12_345, 5);
        var (started, start) = await alice.ApiPost("/v1/media/upload/chunk",
            new { file_name = "big.pdf", size = bytes.Length, content_type = "application/pdf", conversation_id = conv, sha256 = MediaHttp.Sha(bytes) });
        Assert.True(started == 201, start.ToString());
        var upload = start.Str("upload_id");
        Assert.Equal(Chunk, start.GetProperty("chunk_size").GetInt32());
        Assert.True(start.TryGetProperty("expires_at", out _));

        var last = bytes[Chunk..];
        var (s1, r1) = await alice.ChunkAsync(upload, 1, last);
        Assert.True(s1 == 200, r1.ToString());
        Assert.Equal(last.Length, r1.GetProperty("received_bytes").GetInt64());
        // past the declared size: an index beyond the last chunk, and a last chunk longer than the rest of the file
        var (past, pastBody) = await alice.ChunkAsync(upload, 2, [1, 2, 3]);
        Assert.Equal(400, past);
        Assert.Equal("validation_failed", pastBody.Code());
        Assert.Equal(400, (await alice.ChunkAsync(upload, 1, [.. last, 9])).Status);
        // the same chunk again is fine; other bytes for it are a conflict
        Assert.Equal(200, (await alice.ChunkAsync(upload, 1, last)).Status);
        var other = (byte[])last.Clone();
        other[^1] ^= 0xFF;
        var (conflict, conflictBody) = await alice.ChunkAsync(upload, 1, other);
        Assert.Equal(409, conflict);
        Assert.Equal("conflict", conflictBody.Code());

        var (missingStatus, _) = await alice.ApiPost($"/v1/media/upload/complete/{upload}", null);
        Assert.Equal(400, missingStatus);
        var (p1, progress) = await alice.ApiGet($"/v1/media/upload/{upload}/progress");
        Assert.Equal(200, p1);
        Assert.Equal("uploading", progress.Str("state"));
        Assert.Equal(1, progress.GetProperty("chunks_received").GetInt32());
        Assert.Equal(bytes.Length, progress.GetProperty("size").GetInt64());

        Assert.Equal(200, (await alice.ChunkAsync(upload, 0, bytes[..Chunk])).Status);
        var (done, file) = await alice.ApiPost($"/v1/media/upload/complete/{upload}", null);
        Assert.True(done == 201, file.ToString());
        Assert.Equal(MediaHttp.Sha(bytes), file.Str("sha256"));
        Assert.Equal("application/pdf", file.Str("content_type"));
        var (again, same) = await alice.ApiPost($"/v1/media/upload/complete/{upload}", null);
        Assert.Equal(200, again);
        Assert.Equal(file.ToString(), same.ToString());
        Assert.Equal("complete", (await alice.ApiGet($"/v1/media/upload/{upload}/progress")).Body.Str("state"));
        Assert.Equal(409, (await alice.ChunkAsync(upload, 0, bytes[..Chunk])).Status);

        using var bob = node.Client(Tenant, "bob");
        Assert.Equal(bytes, await bob.BytesAsync($"/v1/media/download/{file.Str("id")}"));
    }

    [Fact]
    public async Task A_refused_chunk_is_answered_only_after_its_body_is_read_and_the_connection_stays_open()
    {
        // The failure this pins: a chunk refused before its body was read (here: the upload is complete) was answered
        // at once, and a client still writing its 5 MiB body met a closed connection (a broken pipe, not the 409).
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        var small = MediaHttp.Png(1_000);
        var (_, start) = await alice.ApiPost("/v1/media/upload/chunk",
            new { file_name = "a.png", size = small.Length, content_type = "image/png", conversation_id = conv });
        var upload = start.Str("upload_id");
        Assert.Equal(200, (await alice.ChunkAsync(upload, 0, small)).Status);
        Assert.Equal(201, (await alice.ApiPost($"/v1/media/upload/complete/{upload}", null)).Status);

        var body = new byte[Chunk];
        using var raw = await RawHttp.ConnectAsync(alice);
        await raw.SendHeadAsync("POST", $"/v1/media/upload/chunk/{upload}?index=0", body.Length, "application/octet-stream");
        await raw.SendAsync(body.AsMemory(0, 64 * 1024));
        // Nothing may come back while the body is still arriving: wait a while for an early answer, then send the rest.
        Assert.False(await raw.AnswerArrivesWithinAsync(TimeSpan.FromSeconds(2)), $"the server answered before the chunk's body was complete: {raw.Received}");
        await raw.SendAsync(body.AsMemory(64 * 1024));
        var (status, text) = await raw.ReadResponseAsync();
        Assert.Equal(409, status);
        Assert.Equal("conflict", System.Text.Json.JsonDocument.Parse(text).RootElement.Code());

        // The same connection takes the next request.
        await raw.SendHeadAsync("GET", $"/v1/media/upload/{upload}/progress", null, null);
        var (progress, state) = await raw.ReadResponseAsync();
        Assert.Equal(200, progress);
        Assert.Equal("complete", System.Text.Json.JsonDocument.Parse(state).RootElement.Str("state"));
    }

    [Fact]
    public async Task A_wrong_checksum_is_refused_and_nothing_is_kept()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        var bytes = MediaHttp.Png(10_000);
        var (_, start) = await alice.ApiPost("/v1/media/upload/chunk",
            new { file_name = "a.png", size = bytes.Length, content_type = "image/png", conversation_id = conv, sha256 = new string('0', 64) });
        var upload = start.Str("upload_id");
        Assert.Equal(200, (await alice.ChunkAsync(upload, 0, bytes)).Status);
        var (status, body) = await alice.ApiPost($"/v1/media/upload/complete/{upload}", null);
        Assert.Equal(400, status);
        Assert.Equal("checksum_mismatch", body.Code());
        Assert.Equal(409, (await alice.ApiPost($"/v1/media/upload/complete/{upload}", null)).Status);
        Assert.Empty((await alice.ApiGet($"/v1/conversations/{conv}/media")).Body.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task An_open_ended_upload_ends_with_its_short_chunk()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        var bytes = new byte[Chunk + 100];
        new Random(9).NextBytes(bytes);
        "OggS"u8.CopyTo(bytes);
        var (_, start) = await alice.ApiPost("/v1/media/upload/chunk", new { file_name = "voice.ogg", content_type = "audio/ogg", conversation_id = conv });
        var upload = start.Str("upload_id");
        Assert.Equal(200, (await alice.ChunkAsync(upload, 0, bytes[..Chunk])).Status);
        Assert.Equal(200, (await alice.ChunkAsync(upload, 1, bytes[Chunk..])).Status);
        var (status, file) = await alice.ApiPost($"/v1/media/upload/complete/{upload}", null);
        Assert.True(status == 201, file.ToString());
        Assert.Equal(bytes.Length, file.GetProperty("size").GetInt64());
        Assert.Equal("audio/ogg", file.Str("content_type"));
    }

    [Fact]
    public async Task Bad_resumable_starts_and_chunks_are_refused()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        Assert.Equal(400, (await alice.ApiPost("/v1/media/upload/chunk", new { file_name = "a", size = 0, content_type = "image/png", conversation_id = conv })).Status);
        Assert.Equal(400, (await alice.ApiPost("/v1/media/upload/chunk", new { file_name = "a", content_type = "image/png", conversation_id = conv, sha256 = "xyz" })).Status);
        Assert.Equal(415, (await alice.ApiPost("/v1/media/upload/chunk", new { file_name = "a", content_type = "application/x-executable", conversation_id = conv })).Status);
        Assert.Equal(404, (await alice.ApiPost("/v1/media/upload/chunk", new { file_name = "a", content_type = "image/png", conversation_id = "c_nope" })).Status);

        // The first chunk's bytes must be what was declared.
        var (_, start) = await alice.ApiPost("/v1/media/upload/chunk", new { file_name = "a.png", content_type = "image/png", conversation_id = conv });
        var upload = start.Str("upload_id");
        var (wrong, wrongBody) = await alice.ChunkAsync(upload, 0, MediaHttp.Pdf(100));
        Assert.Equal(415, wrong);
        Assert.Equal("unsupported_media_type", wrongBody.Code());
        Assert.Equal(200, (await alice.ChunkAsync(upload, 0, MediaHttp.Png(100))).Status);
        Assert.Equal(400, (await alice.ChunkAsync(upload, -1, [1])).Status);
        Assert.Equal(400, (await alice.ChunkAsync(upload, 1, [])).Status);
    }

    [Fact]
    public async Task An_upload_id_of_another_user_or_tenant_is_404()
    {
        using var alice = node.Client(Tenant, "alice");
        using var bob = node.Client(Tenant, "bob");
        using var mallory = node.Client(Tenant + "-other", "alice");
        var conv = await alice.CreateGroupAsync("bob");
        var (_, start) = await alice.ApiPost("/v1/media/upload/chunk", new { file_name = "a.png", content_type = "image/png", conversation_id = conv });
        var upload = start.Str("upload_id");
        foreach (var other in new[] { bob, mallory })
        {
            Assert.Equal(404, (await other.ChunkAsync(upload, 0, MediaHttp.Png(100))).Status);
            Assert.Equal(404, (await other.ApiPost($"/v1/media/upload/complete/{upload}", null)).Status);
            Assert.Equal(404, (await other.ApiGet($"/v1/media/upload/{upload}/progress")).Status);
        }
        Assert.Equal(0, (await alice.ApiGet($"/v1/media/upload/{upload}/progress")).Body.GetProperty("chunks_received").GetInt32());
    }

    [Fact]
    public async Task Ranges_are_206_out_of_range_416_and_malformed_ones_ignored()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        var bytes = MediaHttp.Png(50_000);
        var (_, file) = await alice.UploadAsync(conv, bytes);
        var path = $"/v1/media/stream/{file.Str("id")}";

        async Task<HttpResponseMessage> Get(string range)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.TryAddWithoutValidation("Range", range);
            return await alice.SendAsync(request);
        }

        using var part = await Get("bytes=100-199");
        Assert.Equal(206, (int)part.StatusCode);
        Assert.Equal(bytes[100..200], await part.Content.ReadAsByteArrayAsync());
        Assert.Equal("bytes 100-199/50000", part.Content.Headers.ContentRange!.ToString());
        using var suffix = await Get("bytes=-10");
        Assert.Equal(bytes[^10..], await suffix.Content.ReadAsByteArrayAsync());
        using var open = await Get("bytes=49990-");
        Assert.Equal(bytes[49_990..], await open.Content.ReadAsByteArrayAsync());
        using var beyond = await Get("bytes=50000-50010");
        Assert.Equal(416, (int)beyond.StatusCode);
        Assert.Equal("bytes */50000", beyond.Content.Headers.ContentRange!.ToString());
        foreach (var malformed in new[] { "bytes=abc", "lines=1-2", "bytes=20-10", "bytes=1-2,5-6" })
        {
            using var whole = await Get(malformed);
            Assert.Equal(200, (int)whole.StatusCode);
            Assert.Equal(bytes, await whole.Content.ReadAsByteArrayAsync());
        }
    }

    [Fact]
    public async Task Signed_links_serve_without_a_token_until_they_expire_and_refuse_forgery()
    {
        using var alice = node.Client(Tenant, "alice");
        using var anonymous = node.WithToken(null);
        var conv = await alice.CreateGroupAsync();
        var bytes = MediaHttp.Png(5000);
        var (_, file) = await alice.UploadAsync(conv, bytes);
        var id = file.Str("id");

        var (over, overBody) = await alice.ApiGet($"/v1/media/download/{id}/signed?ttl=86401");
        Assert.Equal(400, over);
        Assert.Equal("validation_failed", overBody.Code());
        Assert.Equal(400, (await alice.ApiGet($"/v1/media/download/{id}/signed?ttl=0")).Status);
        var (ok, link) = await alice.ApiGet($"/v1/media/download/{id}/signed?ttl=600");
        Assert.Equal(200, ok);
        Assert.True(DateTimeOffset.Parse(link.Str("expires_at"), System.Globalization.CultureInfo.InvariantCulture) > DateTimeOffset.UtcNow.AddSeconds(500));
        var url = link.Str("url");
        Assert.Equal(bytes, await anonymous.BytesAsync(url));
        Assert.Equal(200, (await alice.ApiGet($"/v1/media/download/{id}/signed")).Status); // default ttl

        var forged = url[..^2] + (url[^2] == 'A' ? "B" : "A") + url[^1];
        Assert.Equal("forbidden", (await anonymous.ApiGet(forged)).Body.Code());
        Assert.Equal(403, (await anonymous.ApiGet(url.Replace("expires=", "expires=9", StringComparison.Ordinal))).Status);
        Assert.Equal(403, (await anonymous.ApiGet(url.Replace(Tenant, Tenant + "x", StringComparison.Ordinal))).Status);
        // A link made an hour ago for one second has expired (made with the node's key, at a time in the past).
        var (expired, _) = new SignedLinks(node.Settings).Create(Tenant, id, TimeSpan.FromSeconds(1), DateTimeOffset.UtcNow.AddHours(-1));
        var (status, body) = await anonymous.ApiGet(expired);
        Assert.Equal(403, status);
        Assert.Equal("forbidden", body.Code());
    }

    [Fact]
    public async Task The_owner_or_a_moderator_deletes_and_then_the_file_is_gone()
    {
        using var alice = node.Client(Tenant, "alice");
        using var bob = node.Client(Tenant, "bob");
        var conv = await alice.CreateGroupAsync("bob", "mod");
        Assert.Equal(200, (await alice.ApiPut($"/v1/conversations/{conv}/members/mod/role", new { role = "moderator" })).Status);
        using var mod = node.Client(Tenant, "mod");
        var (_, a) = await alice.UploadAsync(conv, MediaHttp.Png(2000, 1));
        var (_, b) = await alice.UploadAsync(conv, MediaHttp.Png(2000, 2));

        var (forbidden, forbiddenBody) = await bob.ApiDelete($"/v1/media/files/{a.Str("id")}");
        Assert.Equal(403, forbidden);
        Assert.Equal("forbidden", forbiddenBody.Code());
        Assert.Equal(204, (await alice.ApiDelete($"/v1/media/files/{a.Str("id")}")).Status);
        Assert.Equal(204, (await mod.ApiDelete($"/v1/media/files/{b.Str("id")}")).Status);
        foreach (var id in new[] { a.Str("id"), b.Str("id") })
        {
            Assert.Equal(404, (await alice.ApiGet($"/v1/media/download/{id}")).Status);
            Assert.Equal(404, (await alice.ApiGet($"/v1/media/files/{id}")).Status);
            Assert.Equal(404, (await alice.ApiDelete($"/v1/media/files/{id}")).Status);
        }
    }

    [Fact]
    public async Task Erasing_a_user_purges_their_files_from_the_store_and_says_how_many()
    {
        using var alice = node.Client(Tenant, "alice");
        using var bob = node.Client(Tenant, "bob");
        using var admin = node.Client(Tenant, "root", "admin");
        var conv = await alice.CreateGroupAsync("bob");
        var (_, b1) = await bob.UploadAsync(conv, MediaHttp.Png(3000, 1));
        var (_, b2) = await bob.UploadAsync(conv, MediaHttp.Pdf(3000, 2), "b.pdf", "application/pdf");
        var (_, a1) = await alice.UploadAsync(conv, MediaHttp.Png(3000, 3));
        foreach (var f in new[] { b1, b2 }) Assert.NotNull(await node.MediaStore.SizeAsync(Tenant, f.Str("id")));

        var (status, report) = await admin.ApiDelete("/v1/admin/users/bob");
        Assert.True(status == 200, report.ToString());
        Assert.Equal(2, report.GetProperty("files_erased").GetInt32());
        foreach (var f in new[] { b1, b2 })
        {
            Assert.Null(await node.MediaStore.SizeAsync(Tenant, f.Str("id"))); // the bytes are gone from the store
            Assert.Equal(404, (await alice.ApiGet($"/v1/media/download/{f.Str("id")}")).Status);
        }
        Assert.Equal(3000, (await alice.BytesAsync($"/v1/media/download/{a1.Str("id")}")).Length);
        Assert.Equal(0, (await admin.ApiDelete("/v1/admin/users/bob")).Body.GetProperty("files_erased").GetInt32());
    }

    [Fact]
    public async Task The_gallery_lists_a_conversations_files_newest_first_by_type()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        var (_, image) = await alice.UploadAsync(conv, MediaHttp.Png(1000));
        var (_, pdf) = await alice.UploadAsync(conv, MediaHttp.Pdf(1000), "doc.pdf", "application/pdf");
        var (_, gone) = await alice.UploadAsync(conv, MediaHttp.Png(1000, 3));
        Assert.Equal(204, (await alice.ApiDelete($"/v1/media/files/{gone.Str("id")}")).Status);

        // The gallery is a projection: polled until it has caught up (bounded, generous).
        string[] ids = [];
        for (var i = 0; i < 600; i++)
        {
            ids = (await alice.ApiGet($"/v1/conversations/{conv}/media")).Body.GetProperty("items").EnumerateArray().Select(x => x.Str("id")).ToArray();
            if (ids.Length == 2 && !ids.Contains(gone.Str("id"))) break;
            await Task.Delay(100);
        }
        Assert.Equal([pdf.Str("id"), image.Str("id")], ids);
        var images = (await alice.ApiGet($"/v1/conversations/{conv}/media?type=image")).Body.GetProperty("items").EnumerateArray().ToArray();
        Assert.Equal([image.Str("id")], images.Select(x => x.Str("id")));
        Assert.Equal("image", images[0].Str("kind"));

        var (_, page) = await alice.ApiGet($"/v1/conversations/{conv}/media?limit=1");
        Assert.Equal([pdf.Str("id")], page.GetProperty("items").EnumerateArray().Select(x => x.Str("id")));
        var (_, next) = await alice.ApiGet($"/v1/conversations/{conv}/media?limit=1&cursor={page.Str("next_cursor")}");
        Assert.Equal([image.Str("id")], next.GetProperty("items").EnumerateArray().Select(x => x.Str("id")));
        Assert.Equal(400, (await alice.ApiGet($"/v1/conversations/{conv}/media?type=exe")).Status);
        Assert.Equal(400, (await alice.ApiGet($"/v1/conversations/{conv}/media?cursor=nope")).Status);
    }
    [Fact]
    public async Task Tenant_media_settings_set_by_an_admin_apply_to_the_next_upload()
    {
        using var admin = node.Client(Tenant, "root", "admin");
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        var route = $"/v1/admin/tenants/{Tenant}/media";

        var (status, set) = await admin.ApiPut(route, new { user_quota_bytes = 1000, allowed_types = new[] { "image/*" } });
        Assert.True(status == 200, set.ToString());
        Assert.Equal(1000, set.GetProperty("user_quota_bytes").GetInt64());
        Assert.Equal(1000, set.GetProperty("effective").GetProperty("user_quota_bytes").GetInt64());
        Assert.Equal(node.Settings.TenantQuota.Bytes, set.GetProperty("effective").GetProperty("tenant_quota_bytes").GetInt64());

        // The allowlist: a PDF is now refused, on both paths; a PNG passes.
        var (pdfStatus, pdf) = await alice.UploadAsync(conv, MediaHttp.Pdf(100), "a.pdf", "application/pdf");
        Assert.Equal(415, pdfStatus);
        Assert.Equal("unsupported_media_type", pdf.Code());
        Assert.Equal(415, (await alice.ApiPost("/v1/media/upload/chunk",
            new { file_name = "a.pdf", content_type = "application/pdf", conversation_id = conv, size = 100 })).Status);

        // The quota: exactly at the limit is accepted, ten bytes over is 413 with the tenant's figures.
        Assert.Equal(201, (await alice.UploadAsync(conv, MediaHttp.Png(600))).Status);
        Assert.Equal(201, (await alice.UploadAsync(conv, MediaHttp.Png(400))).Status);
        var (overStatus, over) = await alice.UploadAsync(conv, MediaHttp.Png(10));
        Assert.Equal(413, overStatus);
        Assert.Equal("quota_exceeded", over.Code());
        Assert.Equal(1000, over.GetProperty("used_bytes").GetInt64());
        Assert.Equal(1000, over.GetProperty("limit_bytes").GetInt64());
        Assert.Equal(2, over.GetProperty("used_files").GetInt64());

        // A PUT replaces the set: back to the node's defaults.
        var (resetStatus, reset) = await admin.ApiPut(route, new { });
        Assert.Equal(200, resetStatus);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, reset.GetProperty("user_quota_bytes").ValueKind);
        Assert.Equal(201, (await alice.UploadAsync(conv, MediaHttp.Png(10))).Status);
        Assert.Equal(201, (await alice.UploadAsync(conv, MediaHttp.Pdf(100), "a.pdf", "application/pdf")).Status);
    }

    [Fact]
    public async Task A_deleted_files_bytes_stay_for_the_tenants_retention_then_the_sweep_purges_them_once()
    {
        using var admin = node.Client(Tenant, "root", "admin");
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        Assert.Equal(200, (await admin.ApiPut($"/v1/admin/tenants/{Tenant}/media", new { retention_seconds = 15 })).Status);
        var (_, file) = await alice.UploadAsync(conv, MediaHttp.Png(4000));
        var id = file.Str("id");

        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(204, (await alice.ApiDelete($"/v1/media/files/{id}")).Status);
        Assert.Equal(404, (await alice.ApiGet($"/v1/media/download/{id}")).Status); // gone for users at once
        var stored = await node.MediaStore.SizeAsync(Tenant, id);
        var (_, before) = await admin.ApiGet($"/v1/admin/tenants/{Tenant}/media/files/{id}");
        if (clock.Elapsed < TimeSpan.FromSeconds(14)) // still inside the retention (a slow machine only skips this check)
        {
            Assert.Equal(4000, stored); // the bytes are still in the store
            Assert.Equal(System.Text.Json.JsonValueKind.Null, before.GetProperty("purged_at").ValueKind);
        }
        Assert.Equal("deleted", before.GetProperty("file").Str("state"));

        // The sweep purges it after the retention: polled, up to two minutes.
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (await node.MediaStore.SizeAsync(Tenant, id) is not null && DateTime.UtcNow < deadline) await Task.Delay(250);
        Assert.Null(await node.MediaStore.SizeAsync(Tenant, id));
        var (_, after) = await admin.ApiGet($"/v1/admin/tenants/{Tenant}/media/files/{id}");
        Assert.Equal(System.Text.Json.JsonValueKind.String, after.GetProperty("purged_at").ValueKind);
        Assert.Equal("alice", after.GetProperty("deleted_by").GetString());
        Assert.Equal(404, (await alice.ApiGet($"/v1/media/download/{id}")).Status);
        Assert.Equal(403, (await alice.ApiGet($"/v1/admin/tenants/{Tenant}/media/files/{id}")).Status);

        // Erasure does not wait for the retention: a retained file of the user is purged at once.
        Assert.Equal(200, (await admin.ApiPut($"/v1/admin/tenants/{Tenant}/media", new { retention_seconds = 86_400 })).Status);
        var (_, kept) = await alice.UploadAsync(conv, MediaHttp.Png(2000, 9));
        Assert.Equal(204, (await alice.ApiDelete($"/v1/media/files/{kept.Str("id")}")).Status);
        Assert.Equal(2000, await node.MediaStore.SizeAsync(Tenant, kept.Str("id")));
        var (_, report) = await admin.ApiDelete("/v1/admin/users/alice");
        Assert.Equal(1, report.GetProperty("files_erased").GetInt32());
        Assert.Null(await node.MediaStore.SizeAsync(Tenant, kept.Str("id")));
    }

    [Fact]
    public async Task Bad_tenant_media_settings_are_400_and_only_admins_or_operators_change_them()
    {
        using var admin = node.Client(Tenant, "root", "admin");
        var route = $"/v1/admin/tenants/{Tenant}/media";
        Assert.Equal(200, (await admin.ApiPut(route, new { tenant_quota_files = 50 })).Status);
        foreach (var bad in new object[]
                 {
                     new { user_quota_bytes = -1 }, new { tenant_quota_files = -5 },
                     new { allowed_types = new[] { "not a type" } }, new { allowed_types = new[] { "image/png", "/x" } },
                     new { user_quota_files = "many" }, new { retention_seconds = -1 },
                 })
        {
            var (status, problem) = await admin.ApiPut(route, bad);
            Assert.True(status == 400, $"{bad}: {status} {problem}");
            Assert.Equal("validation_failed", problem.Code());
        }
        var (_, unchanged) = await admin.ApiGet(route);
        Assert.Equal(50, unchanged.GetProperty("tenant_quota_files").GetInt64());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, unchanged.GetProperty("allowed_types").ValueKind);

        using var member = node.Client(Tenant, "alice");
        Assert.Equal(403, (await member.ApiPut(route, new { user_quota_bytes = 1 })).Status);
        Assert.Equal(403, (await member.ApiGet(route)).Status);
        using var otherAdmin = node.Client(Tenant + "-other", "root", "admin");
        Assert.Equal(403, (await otherAdmin.ApiPut(route, new { user_quota_bytes = 1 })).Status);
        using var operatorUser = node.Client(Tenant + "-ops", "ops", "operator");
        var (opStatus, opView) = await operatorUser.ApiPut(route, new { user_quota_files = 7 });
        Assert.Equal(200, opStatus);
        Assert.Equal(7, opView.GetProperty("user_quota_files").GetInt64());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, opView.GetProperty("tenant_quota_files").ValueKind); // replaced as a whole
    }
}

public sealed class FileStoreMediaApiTests(MediaFileNode node) : MediaApiContract(node), IClassFixture<MediaFileNode>;

public sealed class S3MediaApiTests(MediaS3Node node) : MediaApiContract(node), IClassFixture<MediaS3Node>;

/// <summary>Quotas (exactly at the limit is accepted) and Redis away (503, nothing half-committed).</summary>
public sealed class MediaQuotaTests(MediaQuotaNode node) : IClassFixture<MediaQuotaNode>
{
    [Fact]
    public async Task A_user_quota_accepts_exactly_its_limit_and_refuses_one_byte_more()
    {
        using var alice = node.Client("t-quota-user", "alice");
        var conv = await alice.CreateGroupAsync();
        var (first, big) = await alice.UploadAsync(conv, MediaHttp.Png(600));
        Assert.Equal(201, first);
        Assert.Equal(201, (await alice.UploadAsync(conv, MediaHttp.Png(400))).Status); // 1,000 of 1,000 bytes
        var (status, body) = await alice.UploadAsync(conv, MediaHttp.Png(20));
        Assert.Equal(413, status);
        Assert.Equal("quota_exceeded", body.Code());
        Assert.Equal(1000, body.GetProperty("used_bytes").GetInt64());
        Assert.Equal(1000, body.GetProperty("limit_bytes").GetInt64());
        Assert.Equal(2, body.GetProperty("used_files").GetInt64());
        Assert.Equal(100, body.GetProperty("limit_files").GetInt64());

        // A deleted file gives its bytes back; another user has a quota of their own.
        Assert.Equal(204, (await alice.ApiDelete($"/v1/media/files/{big.Str("id")}")).Status);
        Assert.Equal(201, (await alice.UploadAsync(conv, MediaHttp.Png(600))).Status);
        using var bob = node.Client("t-quota-user", "bob");
        var conv2 = await bob.CreateGroupAsync();
        Assert.Equal(201, (await bob.UploadAsync(conv2, MediaHttp.Png(1000))).Status); // bob's own 1,000
    }

    [Fact]
    public async Task A_tenant_file_quota_accepts_exactly_its_limit()
    {
        using var alice = node.Client("t-quota-files", "alice");
        using var bob = node.Client("t-quota-files", "bob");
        var conv = await alice.CreateGroupAsync("bob");
        Assert.Equal(201, (await alice.UploadAsync(conv, MediaHttp.Png(10))).Status);
        Assert.Equal(201, (await bob.UploadAsync(conv, MediaHttp.Png(10))).Status);
        var (_, third) = await alice.UploadAsync(conv, MediaHttp.Png(10));
        Assert.Equal("ready", third.Str("state")); // 3 of 3 files
        var (status, body) = await bob.UploadAsync(conv, MediaHttp.Png(10));
        Assert.Equal(413, status);
        Assert.Equal(3, body.GetProperty("used_files").GetInt64());
        Assert.Equal(3, body.GetProperty("limit_files").GetInt64());
        Assert.Equal(204, (await alice.ApiDelete($"/v1/media/files/{third.Str("id")}")).Status);
        Assert.Equal(201, (await bob.UploadAsync(conv, MediaHttp.Png(10))).Status);
    }

    [Fact]
    public async Task Redis_away_is_a_clear_503_and_no_session()
    {
        using var alice = node.Client("t-redis-down", "alice");
        var conv = await alice.CreateGroupAsync();
        var (status, body) = await alice.ApiPost("/v1/media/upload/chunk", new { file_name = "a.png", content_type = "image/png", conversation_id = conv });
        Assert.Equal(503, status);
        Assert.Equal("unavailable", body.Code());
        // The multipart upload the start had opened was aborted again.
        var uploads = Path.Combine(node.Root, ".uploads", "t-redis-down");
        Assert.True(!Directory.Exists(uploads) || Directory.GetFileSystemEntries(uploads).Length == 0);
    }
}
