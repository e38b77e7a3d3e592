using System.Buffers;
using System.Security.Cryptography;
using Caas.Actors.Calls;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Media;
using Caas.Streams.Media;
using Caas.Web.Auth;
using Caas.Web.Edge;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Http;
using Prometheus;

namespace Caas.Web.Media;

/// <summary>The upload paths (single and resumable) and the access rules every media route shares.</summary>
public sealed class MediaUploads(MediaSettings settings, IMediaStore store, IUploadSessions sessions, MediaUsage usage, MediaGateway media,
    ClusterGateway conversations, ThumbnailQueue? thumbnails = null, UploadProgressPush? progress = null, RecordingLinks? recordings = null)
{
    private static readonly Counter UploadBytes = Metrics.CreateCounter("caas_media_upload_bytes_total", "Media bytes accepted, by path.", "path");
    private static readonly Counter StoreErrors = Metrics.CreateCounter("caas_media_store_errors_total", "Media store calls that failed (unavailable).");
    private static readonly Gauge ActiveUploads = Metrics.CreateGauge("caas_media_active_uploads", "Upload requests in progress on this node.");

    public MediaSettings Settings => settings;

    public IMediaStore Store => store;

    public static void CountStoreError() => StoreErrors.Inc();

    /// <summary>The caller's access to a conversation: its role, or a rejection (not a member, another tenant: 404).</summary>
    public async Task<object> AccessAsync(Caller caller, string conversationId, CancellationToken ct) =>
        !Ids.IsValid(conversationId)
            ? Rejection.NotFound("conversation")
            : await conversations.AskAsync(new GetReadAccess(caller.TenantId, conversationId, caller.UserId), ct);

    /// <summary>A file the caller may read (owner, or a member of its conversation), or the problem to answer (404).</summary>
    public async Task<(MediaFile? File, Role? Role, IResult? Problem)> ReadableAsync(Caller caller, string fileId, CancellationToken ct)
    {
        if (!Ids.IsValid(fileId)) return (null, null, Problems.NotFound("file"));
        var reply = await media.AskAsync(new GetMedia(caller.TenantId, fileId), ct);
        if (reply is Rejection r) return (null, null, Problems.From(r));
        var file = (MediaFile)reply;
        var access = await AccessAsync(caller, file.ConversationId, ct);
        if (access is ReadAccess a) return (file, a.Role, null);
        if (access is Rejection { Code: not ErrorCodes.NotFound } other) return (null, null, Problems.From(other));
        return file.OwnerId == caller.UserId ? (file, null, null) : (null, null, Problems.NotFound("file"));
    }

    /// <summary>
    /// The tenant's media limits: its settings (README: Media, tenant settings) over the node's defaults. Read through
    /// the gateway's short cache, so a change reaches every node within its TTL.
    /// </summary>
    public async Task<EffectiveMediaLimits> LimitsAsync(string tenantId, CancellationToken ct = default) =>
        EffectiveMediaLimits.Of(settings, (await conversations.TenantSettingsAsync(tenantId, ct)).Media);

    /// <summary>The sniffed type's verdict: null when it may be stored.</summary>
    public IResult? CheckType(string? declared, string sniffed, IReadOnlyList<string> allowed)
    {
        if (sniffed == ContentSniffer.Executable)
            return Problems.Of(ErrorCodes.UnsupportedMediaType, "Executables are not accepted.");
        if (!ContentSniffer.Matches(declared, sniffed))
            return Problems.Of(ErrorCodes.UnsupportedMediaType, $"The bytes are {sniffed}, not the declared {ContentSniffer.Normalize(declared)}.");
        if (!ContentSniffer.Allowed(sniffed, allowed))
            return Problems.Of(ErrorCodes.UnsupportedMediaType, $"{sniffed} is not an allowed type here.");
        return null;
    }

    public static IResult Quota(QuotaExceeded q) => new QuotaProblem(q);

    /// <summary>
    /// POST /v1/media/upload: a multipart body with the field <c>conversation_id</c> (before the file, or as a query
    /// parameter) and the part <c>file</c>. The file streams to the store while it is hashed and counted; nothing of
    /// it is held whole.
    /// </summary>
    public async Task<IResult> SingleAsync(HttpContext http, Caller caller)
    {
        var ct = http.RequestAborted;
        if (http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            limit.MaxRequestBodySize = settings.MaxSingleBytes + 64 * 1024; // the file plus the multipart framing
        var boundary = Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(http.Request.ContentType, out var type)
                       && type.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)
            ? Microsoft.Net.Http.Headers.HeaderUtilities.RemoveQuotes(type.Boundary).Value
            : null;
        if (string.IsNullOrEmpty(boundary)) return Problems.Of(ErrorCodes.UnsupportedMediaType, "Send multipart/form-data with a part named file.");
        var reader = new Microsoft.AspNetCore.WebUtilities.MultipartReader(boundary, http.Request.Body);
        string? conversationId = http.Request.Query["conversation_id"];
        ActiveUploads.Inc();
        try
        {
            while (await reader.ReadNextSectionAsync(ct) is { } section)
            {
                if (!Microsoft.Net.Http.Headers.ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)) continue;
                var name = Microsoft.Net.Http.Headers.HeaderUtilities.RemoveQuotes(disposition.Name).Value;
                if (name == "conversation_id" && !disposition.FileName.HasValue && !disposition.FileNameStar.HasValue)
                {
                    using var sr = new StreamReader(section.Body);
                    var value = await sr.ReadToEndAsync(ct);
                    conversationId = value.Length <= 256 ? value.Trim() : null;
                    continue;
                }
                if (name != "file") continue;
                if (string.IsNullOrEmpty(conversationId))
                    return Problems.Invalid("conversation_id", "Give conversation_id before the file part (or as a query parameter).");
                var fileName = Microsoft.Net.Http.Headers.HeaderUtilities.RemoveQuotes(
                    disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).Value;
                return await StoreSingleAsync(caller, conversationId, CleanName(fileName), section.ContentType, section.Body, ct);
            }
            return Problems.Invalid("file", "A part named file is required.");
        }
        finally
        {
            ActiveUploads.Dec();
        }
    }

    private async Task<IResult> StoreSingleAsync(Caller caller, string conversationId, string fileName, string? declared, Stream body, CancellationToken ct)
    {
        if (await AccessAsync(caller, conversationId, ct) is Rejection denied) return Problems.From(denied);
        var limits = await LimitsAsync(caller.TenantId, ct);
        if (await usage.CheckAsync(caller.TenantId, caller.UserId, 0, limits.TenantQuota, limits.UserQuota, ct) is { } early) return Quota(early);

        var head = ArrayPool<byte>.Shared.Rent(ContentSniffer.HeadBytes);
        try
        {
            var n = 0;
            while (n < ContentSniffer.HeadBytes && await body.ReadAsync(head.AsMemory(n, ContentSniffer.HeadBytes - n), ct) is var read and > 0) n += read;
            if (n == 0) return Problems.Invalid("file", "The file is empty: a file has at least one byte.");
            var sniffed = ContentSniffer.Sniff(head.AsSpan(0, n));
            if (CheckType(declared, sniffed, limits.AllowedTypes) is { } refused) return refused;

            var fileId = NewFileId();
            var counted = new HashingStream(new PrefixedStream(head.AsMemory(0, n), body), settings.MaxSingleBytes);
            long size;
            try
            {
                size = await store.PutAsync(caller.TenantId, fileId, counted, ct);
            }
            catch (TooLargeException)
            {
                await store.DeleteAsync(caller.TenantId, fileId, CancellationToken.None);
                return Problems.Of(ErrorCodes.PayloadTooLarge, $"A single upload is at most {settings.MaxSingleBytes} bytes; use the resumable upload.");
            }
            var sha = counted.Sha256Hex();
            return await CommitAsync(caller, fileId, conversationId, fileName, sniffed, size, sha, "single", ct);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(head);
        }
    }

    /// <summary>Takes the quota and registers the stored file; on refusal the bytes are deleted again.</summary>
    private async Task<IResult> CommitAsync(Caller caller, string fileId, string conversationId, string fileName, string contentType, long size,
        string sha, string path, CancellationToken ct)
    {
        var limits = await LimitsAsync(caller.TenantId, ct);
        if (await usage.ReserveAsync(caller.TenantId, caller.UserId, size, limits.TenantQuota, limits.UserQuota, ct) is { } over)
        {
            await store.DeleteAsync(caller.TenantId, fileId, CancellationToken.None);
            return Quota(over);
        }
        var reply = await media.AskAsync(new RegisterMedia(caller.TenantId, fileId, caller.UserId, conversationId, fileName, contentType, size, sha), ct);
        if (reply is not MediaFile file)
        {
            await usage.ReleaseAsync(caller.TenantId, caller.UserId, size, CancellationToken.None);
            await store.DeleteAsync(caller.TenantId, fileId, CancellationToken.None);
            return Problems.From((Rejection)reply);
        }
        await usage.AddOwnerAsync(caller.TenantId, fileId, caller.UserId, size, CancellationToken.None);
        UploadBytes.WithLabels(path).Inc(size);
        thumbnails?.Enqueue(file.TenantId, file.FileId); // off the request path (README: Media, thumbnails)
        return Results.Json(View(file), Json.Options, statusCode: StatusCodes.Status201Created);
    }

    // ---- resumable ----------------------------------------------------------------------------------------------

    /// <param name="RecordingId">A call recording's bytes: only its requester uploads them, into the call's conversation, once something was recorded.</param>
    public sealed record StartBody(string? FileName, long? Size, string? ContentType, string? ConversationId, string? Sha256, string? RecordingId = null);

    public async Task<IResult> StartAsync(Caller caller, StartBody body, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(body.FileName) || body.FileName.Length > 255) errors["file_name"] = ["Between 1 and 255 characters."];
        if (string.IsNullOrWhiteSpace(body.ContentType) || body.ContentType.Length > 255) errors["content_type"] = ["Required."];
        if (string.IsNullOrWhiteSpace(body.ConversationId)) errors["conversation_id"] = ["Required."];
        if (body.Size is <= 0) errors["size"] = ["A file has at least one byte."];
        if (body.Sha256 is { } h && (h.Length != 64 || !h.All(Uri.IsHexDigit))) errors["sha256"] = ["64 hexadecimal digits."];
        if (body.RecordingId is not null && (!RecordingIds.IsValid(body.RecordingId) || recordings is null)) errors["recording_id"] = ["A recording id (rec_…)."];
        if (errors.Count > 0) return Problems.Of(ErrorCodes.ValidationFailed, "The request is not valid.", errors);
        if (body.Size > settings.MaxFileBytes) return Problems.Of(ErrorCodes.PayloadTooLarge, $"A file is at most {settings.MaxFileBytes} bytes.");
        var declared = ContentSniffer.Normalize(body.ContentType);
        var limits = await LimitsAsync(caller.TenantId, ct);
        if (declared == ContentSniffer.Executable || (declared != ContentSniffer.OctetStream && !ContentSniffer.Allowed(declared, limits.AllowedTypes)))
            return Problems.Of(ErrorCodes.UnsupportedMediaType, $"{declared} is not an allowed type here.");
        if (await AccessAsync(caller, body.ConversationId!, ct) is Rejection denied) return Problems.From(denied);
        if (body.RecordingId is { } recording
            && await recordings!.AskAsync(new CheckRecordingUpload(caller.TenantId, body.ConversationId!, caller.UserId, recording), ct) is Rejection notYours)
            return Problems.From(notYours);
        if (await usage.CheckAsync(caller.TenantId, caller.UserId, body.Size ?? 0, limits.TenantQuota, limits.UserQuota, ct) is { } over)
            return Quota(over);

        var fileId = NewFileId();
        var multipart = await store.StartMultipartAsync(caller.TenantId, fileId, ct);
        var now = DateTimeOffset.UtcNow;
        var session = new UploadSession("u_" + Guid.CreateVersion7().ToString("N"), caller.TenantId, caller.UserId, body.ConversationId!, fileId,
            CleanName(body.FileName!), declared, body.Size, body.Sha256?.ToLowerInvariant(), settings.ChunkBytes, multipart, now, now + settings.UploadTtl,
            body.RecordingId);
        try
        {
            await sessions.CreateAsync(session, ct);
        }
        catch
        {
            await store.AbortMultipartAsync(caller.TenantId, fileId, multipart, CancellationToken.None);
            throw;
        }
        return Results.Json(new { upload_id = session.UploadId, chunk_size = session.ChunkSize, expires_at = Api.Views.Utc(session.ExpiresAt) },
            Json.Options, statusCode: StatusCodes.Status201Created);
    }

    /// <summary>The caller's own live session, or the problem (another user's or tenant's, absent, expired: 404).</summary>
    private async Task<(UploadSnapshot? Snapshot, IResult? Problem)> OwnSessionAsync(Caller caller, string uploadId, CancellationToken ct)
    {
        if (!Ids.IsValid(uploadId)) return (null, Problems.NotFound("upload"));
        var snapshot = await sessions.GetAsync(caller.TenantId, uploadId, ct);
        if (snapshot is null || snapshot.Session.UserId != caller.UserId) return (null, Problems.NotFound("upload"));
        return (snapshot, null);
    }

    /// <summary>
    /// Takes one chunk. A refused chunk's body is still read to its end (at most one chunk's worth) before the answer is
    /// sent. Answered early, an HTTP/1.1 client still writing its body had the connection closed under it: Kestrel's own
    /// drain stops at the node's request-body limit (1 MiB by default, smaller than a chunk), so the client saw a broken
    /// pipe instead of the problem. The limit is raised to the chunk size before anything can refuse.
    /// </summary>
    public async Task<IResult> ChunkAsync(HttpContext http, Caller caller, string uploadId, int? index)
    {
        if (http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            limit.MaxRequestBodySize = settings.ChunkBytes;
        var result = await TakeChunkAsync(http, caller, uploadId, index);
        await DiscardBodyAsync(http, Math.Max(settings.ChunkBytes, 1)); // a taken chunk's body is at its end already
        return result;
    }

    /// <summary>Reads and drops what is left of the request body, up to <paramref name="limit"/> bytes; past that the
    /// server closes the connection (Kestrel's own drain), as it should for a client sending more than any chunk.</summary>
    private static async Task DiscardBodyAsync(HttpContext http, int limit)
    {
        if (http.Request.ContentLength is { } declared && declared > limit) return;
        var scratch = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            long seen = 0;
            while (seen <= limit && await http.Request.Body.ReadAsync(scratch, http.RequestAborted) is var read and > 0) seen += read;
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or BadHttpRequestException)
        {
            // The client went away or sent past the body limit: nothing left to keep the connection for.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private async Task<IResult> TakeChunkAsync(HttpContext http, Caller caller, string uploadId, int? index)
    {
        var ct = http.RequestAborted;
        var (snapshot, problem) = await OwnSessionAsync(caller, uploadId, ct);
        if (problem is not null) return problem;
        var s = snapshot!.Session;
        if (snapshot.State == UploadState.Uploading && s.ExpiresAt <= DateTimeOffset.UtcNow) return Problems.NotFound("upload");
        if (snapshot.State != UploadState.Uploading) return Problems.From(Rejection.Conflict($"The upload is {UploadJson(snapshot.State)}."));
        if (index is not { } i || i < 0) return Problems.Invalid("index", "The chunk's index, from 0.");
        if (s.ChunkCount is { } count && i >= count)
            return Problems.Invalid("index", $"Past the declared size: this upload has {count} chunks (0 to {count - 1}).");
        if (i > 100_000) return Problems.Invalid("index", "At most 100000 chunks.");
        long? expected = s.Size is { } size ? (i < s.ChunkCount - 1 ? s.ChunkSize : size - (long)s.ChunkSize * (s.ChunkCount!.Value - 1)) : null;

        if (http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            limit.MaxRequestBodySize = s.ChunkSize;
        if (http.Request.ContentLength is { } declaredLength && declaredLength > s.ChunkSize)
            return Problems.Invalid("body", $"A chunk is at most {s.ChunkSize} bytes.");

        ActiveUploads.Inc();
        byte[]? buffer = null;
        try
        {
            // One chunk (at most chunk_size) is read, hashed, compared and stored; the file as a whole never is.
            buffer = ArrayPool<byte>.Shared.Rent(s.ChunkSize + 1);
            var n = 0;
            while (n <= s.ChunkSize && await http.Request.Body.ReadAsync(buffer.AsMemory(n, s.ChunkSize + 1 - n), ct) is var read and > 0) n += read;
            if (n > s.ChunkSize) return Problems.Invalid("body", $"A chunk is at most {s.ChunkSize} bytes.");
            if (n == 0) return Problems.Invalid("body", "A chunk has at least one byte.");
            if (expected is { } e && n != e)
                return Problems.Invalid("body", n > e ? $"Past the declared size: chunk {i} is {e} bytes." : $"Chunk {i} must be {e} bytes, not {n}.");
            var sha = Convert.ToHexStringLower(SHA256.HashData(buffer.AsSpan(0, n)));

            switch (await sessions.ClaimChunkAsync(caller.TenantId, uploadId, i, ct))
            {
                case ChunkClaim.Received { Chunk: var existing }:
                    return existing.Sha256 == sha
                        ? await ProgressReplyAsync(caller, uploadId, i, ct)
                        : Problems.From(Rejection.Conflict($"Chunk {i} was already received with other bytes."));
                case ChunkClaim.Busy:
                    return Problems.From(Rejection.Conflict($"Chunk {i} is being stored by another request; retry."));
                case ChunkClaim.Gone:
                    return Problems.NotFound("upload");
            }
            var stored = false;
            try
            {
                if (i == 0 && CheckType(s.ContentType, ContentSniffer.Sniff(buffer.AsSpan(0, Math.Min(n, ContentSniffer.HeadBytes))),
                        (await LimitsAsync(caller.TenantId, ct)).AllowedTypes) is { } refused)
                    return refused;
                var tag = await store.PutPartAsync(caller.TenantId, s.FileId, s.MultipartId, i, new MemoryStream(buffer, 0, n, writable: false), n, ct);
                await sessions.RecordChunkAsync(caller.TenantId, uploadId, new UploadChunk(i, n, sha, tag), ct);
                stored = true;
                UploadBytes.WithLabels("chunked").Inc(n);
            }
            finally
            {
                if (!stored) await sessions.ReleaseChunkAsync(caller.TenantId, uploadId, i, CancellationToken.None);
            }
            return await ProgressReplyAsync(caller, uploadId, i, ct);
        }
        finally
        {
            if (buffer is not null) ArrayPool<byte>.Shared.Return(buffer);
            ActiveUploads.Dec();
        }
    }

    private async Task<IResult> ProgressReplyAsync(Caller caller, string uploadId, int index, CancellationToken ct)
    {
        var now = await sessions.GetAsync(caller.TenantId, uploadId, ct);
        if (now is not null) progress?.Push(caller.TenantId, caller.UserId, now, index); // the hub's uploadProgress
        return Results.Json(new { upload_id = uploadId, index, received_bytes = now?.ReceivedBytes ?? 0 }, Json.Options);
    }

    public async Task<IResult> ProgressAsync(Caller caller, string uploadId, CancellationToken ct)
    {
        var (snapshot, problem) = await OwnSessionAsync(caller, uploadId, ct);
        if (problem is not null) return problem;
        var state = snapshot!.State == UploadState.Uploading && snapshot.Session.ExpiresAt <= DateTimeOffset.UtcNow ? "expired" : UploadJson(snapshot.State);
        return Results.Json(new
        {
            upload_id = uploadId,
            received_bytes = snapshot.ReceivedBytes,
            size = snapshot.Session.Size,
            chunks_received = snapshot.Chunks.Count,
            state,
            file_id = snapshot.State == UploadState.Complete ? snapshot.Session.FileId : null,
        }, Json.Options);
    }

    public async Task<IResult> CompleteAsync(Caller caller, string uploadId, CancellationToken ct)
    {
        var (snapshot, problem) = await OwnSessionAsync(caller, uploadId, ct);
        if (problem is not null) return problem;
        var s = snapshot!.Session;
        switch (snapshot.State)
        {
            case UploadState.Complete:
                // Completing again answers the same metadata.
                var again = await media.AskAsync(new GetMedia(caller.TenantId, s.FileId), ct);
                if (again is not MediaFile done) return Problems.From((Rejection)again);
                // A recording's link is made again (the entity answers a repeat with what it has), in case the first answer was lost.
                if (s.RecordingId is { } relink
                    && await recordings!.AskAsync(new AttachRecording(caller.TenantId, s.ConversationId, caller.UserId, relink,
                        new RecordingFile(done.FileId, done.FileName, done.ContentType, done.Size, done.Sha256, StorageOf(caller.TenantId, done.FileId))), ct) is Rejection lost)
                    return Problems.From(lost);
                return Results.Json(View(done), Json.Options);
            case UploadState.Completing:
                return Problems.From(Rejection.Conflict("The upload is being completed by another request; retry."));
            case UploadState.Failed:
                return Problems.From(Rejection.Conflict("The upload failed (its bytes did not match, or the quota ran out while assembling); start a new upload."));
        }
        if (s.ExpiresAt <= DateTimeOffset.UtcNow) return Problems.NotFound("upload");
        if (!await sessions.TransitionAsync(caller.TenantId, uploadId, UploadState.Uploading, UploadState.Completing, ct))
            return Problems.From(Rejection.Conflict("The upload is being completed by another request; retry."));

        var finished = false;
        var assembled = false;
        try
        {
            // Read again after the transition: no chunk can be added from here on.
            snapshot = (await sessions.GetAsync(caller.TenantId, uploadId, ct))!;
            var chunks = snapshot.Chunks;
            var total = snapshot.ReceivedBytes;
            var missing = Enumerable.Range(0, s.ChunkCount ?? (chunks.Count == 0 ? 0 : chunks[^1].Index + 1)).Except(chunks.Select(c => c.Index)).ToList();
            if (chunks.Count == 0) return Problems.Invalid("chunks", "No chunk was received: a file has at least one byte.");
            if (missing.Count > 0 || snapshot.PendingChunks > 0)
                return Problems.Invalid("chunks", missing.Count > 0 ? $"Chunks missing: {string.Join(", ", missing.Take(20))}." : "A chunk is still being stored.");
            if (s.Size is null && chunks.Take(chunks.Count - 1).Any(c => c.Length != s.ChunkSize))
                return Problems.Invalid("chunks", $"Every chunk but the last is {s.ChunkSize} bytes.");
            if (s.Size is { } declaredSize && total != declaredSize)
                return Problems.Of(ErrorCodes.ChecksumMismatch, $"Received {total} bytes, not the declared {declaredSize}.");
            var limits = await LimitsAsync(caller.TenantId, ct);
            if (await usage.CheckAsync(caller.TenantId, caller.UserId, total, limits.TenantQuota, limits.UserQuota, ct) is { } over)
                return Quota(over);

            await store.CompleteMultipartAsync(caller.TenantId, s.FileId, s.MultipartId, chunks.Select(c => c.Tag).ToList(), ct);
            assembled = true;
            // The whole file's SHA-256, read back from the store as it is (chunks may have come in any order).
            string sha;
            await using (var stored = await store.OpenReadAsync(caller.TenantId, s.FileId, 0, null, ct)
                                      ?? throw new InvalidOperationException("The assembled file is not in the store."))
                sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(stored, ct));
            if (s.Sha256 is { } want && want != sha)
            {
                await store.DeleteAsync(caller.TenantId, s.FileId, CancellationToken.None);
                await sessions.TransitionAsync(caller.TenantId, uploadId, UploadState.Completing, UploadState.Failed, CancellationToken.None);
                finished = true;
                return Problems.Of(ErrorCodes.ChecksumMismatch, $"The file's SHA-256 is {sha}, not the declared {want}; nothing was kept.");
            }
            // A recording's upload: still the requester's to store (not deleted or stored meanwhile)? Checked before the quota is taken.
            if (s.RecordingId is { } recordingId
                && await recordings!.AskAsync(new CheckRecordingUpload(caller.TenantId, s.ConversationId, caller.UserId, recordingId), ct) is Rejection gone)
                return Problems.From(gone);
            var contentType = await SniffStoredAsync(caller.TenantId, s, ct);
            var result = await CommitAsync(caller, s.FileId, s.ConversationId, s.FileName, contentType, total, sha, "chunked", ct);
            if (result is IStatusCodeHttpResult { StatusCode: StatusCodes.Status201Created })
            {
                await sessions.TransitionAsync(caller.TenantId, uploadId, UploadState.Completing, UploadState.Complete, CancellationToken.None);
                finished = true;
                if (s.RecordingId is { } linked)
                {
                    // The file is the user's now whatever happens; the recording learns of it (a repeat of this is answered the same).
                    var attached = await recordings!.AskAsync(new AttachRecording(caller.TenantId, s.ConversationId, caller.UserId, linked,
                        new RecordingFile(s.FileId, s.FileName, contentType, total, sha, StorageOf(caller.TenantId, s.FileId))), CancellationToken.None);
                    if (attached is Rejection refused) return Problems.From(refused);
                }
            }
            return result;
        }
        finally
        {
            // Refused before assembling (chunks missing, quota): the session goes back to uploading, so the client can fix and
            // retry. After assembling, the parts are gone: the upload has failed and its bytes are deleted.
            if (!finished && assembled)
            {
                await store.DeleteAsync(caller.TenantId, s.FileId, CancellationToken.None);
                await sessions.TransitionAsync(caller.TenantId, uploadId, UploadState.Completing, UploadState.Failed, CancellationToken.None);
            }
            else if (!finished)
            {
                await sessions.TransitionAsync(caller.TenantId, uploadId, UploadState.Completing, UploadState.Uploading, CancellationToken.None);
            }
        }
    }

    /// <summary>Where a file's bytes are, for a recording's metadata: <c>s3://bucket/tenant/file</c> or <c>file:tenant/file</c> (under the node's media folder).</summary>
    private string StorageOf(string tenantId, string fileId) =>
        store is S3MediaStore s3 ? $"s3://{s3.Bucket}/{tenantId}/{fileId}" : $"file:{tenantId}/{fileId}";

    /// <summary>The stored file's type from its first bytes (chunk 0 was checked against the declared type when it came).</summary>
    private async Task<string> SniffStoredAsync(string tenantId, UploadSession s, CancellationToken ct)
    {
        await using var head = await store.OpenReadAsync(tenantId, s.FileId, 0, ContentSniffer.HeadBytes, ct);
        var buffer = new byte[ContentSniffer.HeadBytes];
        var n = 0;
        while (head is not null && n < buffer.Length && await head.ReadAsync(buffer.AsMemory(n), ct) is var read and > 0) n += read;
        return ContentSniffer.Sniff(buffer.AsSpan(0, n));
    }

    // ---- delete and erasure ---------------------------------------------------------------------------------------

    /// <summary>
    /// Purges a deleted file: its bytes leave the store, its quota is given back and its owner row goes. Idempotent:
    /// the quota is given back only by the call that removed the owner row.
    /// </summary>
    public async Task PurgeAsync(string tenantId, string fileId, string ownerId, long size, CancellationToken ct = default)
    {
        await store.DeleteAsync(tenantId, fileId, ct);
        await store.DeleteAsync(tenantId, ThumbnailKeys.Of(fileId), ct);
        if (await usage.RemoveOwnerAsync(tenantId, fileId, ct)) await usage.ReleaseAsync(tenantId, ownerId, size, ct);
    }

    /// <summary>
    /// After a soft delete: with no retention (the default) the bytes are purged now; else they stay in the store until
    /// the tenant's retention ran out and the retention sweep purges them (downloads answer 404 meanwhile).
    /// </summary>
    public async Task AfterDeleteAsync(MediaFile file, CancellationToken ct = default)
    {
        var retention = (await LimitsAsync(file.TenantId, ct)).Retention;
        if (retention <= TimeSpan.Zero)
        {
            await RecordPurgeAndPurgeAsync(file.TenantId, file.FileId, file.OwnerId, file.Size, ct);
            return;
        }
        await usage.SchedulePurgeAsync(file.TenantId, file.FileId, (DateTimeOffset.UtcNow + retention).ToUnixTimeMilliseconds(), ct);
    }

    /// <summary>
    /// One pass of the retention sweep: purges up to <paramref name="limit"/> deleted files whose retention ran out.
    /// Safe on every node at once: the entity records a file's purge once, and purging twice removes nothing more.
    /// </summary>
    public async Task<int> PurgeDueAsync(int limit, CancellationToken ct = default)
    {
        var purged = 0;
        foreach (var (tenantId, fileId, ownerId, size) in await usage.DuePurgesAsync(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), limit, ct))
            if (await RecordPurgeAndPurgeAsync(tenantId, fileId, ownerId, size, ct)) purged++;
        return purged;
    }

    /// <summary>Records the purge in the file's entity first (so a crash between the two is finished by the next sweep), then purges.</summary>
    private async Task<bool> RecordPurgeAndPurgeAsync(string tenantId, string fileId, string ownerId, long size, CancellationToken ct)
    {
        var reply = await media.AskAsync(new RecordPurge(tenantId, fileId), ct);
        if (reply is Rejection { Code: ErrorCodes.Overloaded }) return false; // the next pass tries again
        if (reply is Rejection { Code: ErrorCodes.Conflict }) return false;   // not deleted: never purge a live file
        await PurgeAsync(tenantId, fileId, ownerId, size, ct);
        return true;
    }

    /// <summary>
    /// Erases a user's files (GDPR): each is soft-deleted in its entity (the event records who erased it) and purged
    /// from the store. Returns how many files had bytes purged. Repeatable: a second call finds nothing left.
    /// </summary>
    public async Task<int> EraseFilesOfAsync(string tenantId, string userId, string actorId, CancellationToken ct = default)
    {
        var erased = 0;
        foreach (var (fileId, size) in await usage.FilesOfAsync(tenantId, userId, ct))
        {
            var reply = await media.AskAsync(new DeleteMedia(tenantId, fileId, actorId, ActorModerates: true, Erasure: true), ct);
            if (reply is Rejection { Code: not ErrorCodes.NotFound } r) throw new InvalidOperationException($"Erasing {fileId}: {r.Code} {r.Message}");
            await PurgeAsync(tenantId, fileId, userId, size, ct);
            erased++;
        }
        return erased;
    }

    // ---- shared ---------------------------------------------------------------------------------------------------

    public static object View(MediaFile f) => new
    {
        id = f.FileId,
        conversation_id = f.ConversationId,
        owner_id = f.OwnerId,
        file_name = f.FileName,
        content_type = f.ContentType,
        kind = f.Kind,
        size = f.Size,
        sha256 = f.Sha256,
        width = f.Width,
        height = f.Height,
        duration_ms = f.DurationMs,
        state = f.State,
        created_at = Api.Views.Utc(f.CreatedAt),
        thumbnail_url = f.Thumbnail is null ? null : ThumbnailUrl(f.FileId),
    };

    /// <summary>Where a file's thumbnail is served (same access rules as the file).</summary>
    public static string ThumbnailUrl(string fileId) => $"/v1/media/files/{fileId}/thumbnail";

    private static string UploadJson(UploadState s) => s.ToString().ToLowerInvariant();

    private static string NewFileId() => "f_" + Guid.CreateVersion7().ToString("N");

    /// <summary>The name without any path, control characters or quotes; at most 255 characters.</summary>
    public static string CleanName(string? name)
    {
        var bare = Path.GetFileName((name ?? string.Empty).Replace('\\', '/'));
        var clean = new string(bare.Where(c => !char.IsControl(c) && c is not '"').ToArray()).Trim();
        if (clean.Length > 255) clean = clean[..255];
        return clean.Length == 0 ? "file" : clean;
    }

    private sealed class QuotaProblem(QuotaExceeded q) : IResult
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            http.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
            http.Response.ContentType = "application/problem+json";
            await System.Text.Json.JsonSerializer.SerializeAsync(http.Response.Body, new Dictionary<string, object?>
            {
                ["type"] = "https://caas.dev/problems/" + ErrorCodes.QuotaExceeded,
                ["title"] = "Storage quota exceeded.",
                ["status"] = 413,
                ["detail"] = $"The {q.Scope}'s storage quota would be exceeded.",
                ["code"] = ErrorCodes.QuotaExceeded,
                ["instance"] = http.Request.Path.Value,
                ["request_id"] = http.TraceIdentifier,
                ["scope"] = q.Scope,
                ["used_bytes"] = q.UsedBytes,
                ["limit_bytes"] = q.LimitBytes,
                ["used_files"] = q.UsedFiles,
                ["limit_files"] = q.LimitFiles,
            }, Json.Options, http.RequestAborted);
        }
    }
}

/// <summary>Thrown by <see cref="HashingStream"/> when more bytes arrive than the limit allows.</summary>
public sealed class TooLargeException() : Exception("The upload is over its size limit.");

/// <summary>Counts and hashes what is read through it, and refuses to read past a limit.</summary>
public sealed class HashingStream(Stream inner, long limit) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public long Count { get; private set; }

    public string Sha256Hex() => Convert.ToHexStringLower(_hash.GetCurrentHash());

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => Count; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Take(buffer.AsSpan(offset, inner.Read(buffer, offset, count)));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        var n = await inner.ReadAsync(buffer, ct);
        return Take(buffer.Span[..n]);
    }

    private int Take(ReadOnlySpan<byte> read)
    {
        Count += read.Length;
        if (Count > limit) throw new TooLargeException();
        _hash.AppendData(read);
        return read.Length;
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _hash.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>Bytes already read (the sniffed head), then the rest of the stream.</summary>
public sealed class PrefixedStream(ReadOnlyMemory<byte> prefix, Stream rest) : Stream
{
    private ReadOnlyMemory<byte> _prefix = prefix;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count)
    {
        if (_prefix.IsEmpty) return rest.Read(buffer, offset, count);
        var n = Math.Min(count, _prefix.Length);
        _prefix.Span[..n].CopyTo(buffer.AsSpan(offset));
        _prefix = _prefix[n..];
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        if (_prefix.IsEmpty) return rest.ReadAsync(buffer, ct);
        var n = Math.Min(buffer.Length, _prefix.Length);
        _prefix.Span[..n].CopyTo(buffer.Span);
        _prefix = _prefix[n..];
        return ValueTask.FromResult(n);
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
