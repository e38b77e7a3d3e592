using System.Text.Json;
using System.Text.Json.Serialization;

namespace Caas.Streams.Media;

/// <summary>
/// A resumable upload: who started it, for which conversation, what it declared (size and SHA-256 are optional: a
/// recorder streams without knowing them), the store's multipart upload behind it, and when it expires.
/// <see cref="FileId"/> is chosen at the start, so the store's multipart upload is already the file's object.
/// <see cref="RecordingId"/>: the call recording whose bytes these are (linked to it on completion); null for any other file.
/// </summary>
public sealed record UploadSession(
    string UploadId, string TenantId, string UserId, string ConversationId, string FileId, string FileName, string ContentType,
    long? Size, string? Sha256, int ChunkSize, string MultipartId, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt, string? RecordingId = null)
{
    /// <summary>How many chunks a declared size makes (the last may be short); null while the size is open.</summary>
    [JsonIgnore]
    public int? ChunkCount => Size is { } s ? (int)((s + ChunkSize - 1) / ChunkSize) : null;
}

/// <summary>A received chunk: its length, SHA-256 (so the same chunk again is recognised) and the store's tag for it.</summary>
public sealed record UploadChunk(int Index, long Length, string Sha256, string Tag);

public enum UploadState
{
    Uploading,
    /// <summary>One request is assembling it; others wait or answer conflict.</summary>
    Completing,
    Complete,
    /// <summary>Its bytes did not match the declared SHA-256 or size; the parts were dropped.</summary>
    Failed,
}

/// <summary>A session with its chunks and state, as read.</summary>
public sealed record UploadSnapshot(UploadSession Session, UploadState State, IReadOnlyList<UploadChunk> Chunks, int PendingChunks)
{
    public long ReceivedBytes => Chunks.Sum(c => c.Length);
}

/// <summary>What claiming a chunk index found.</summary>
public abstract record ChunkClaim
{
    /// <summary>The index is this caller's to store.</summary>
    public sealed record Claimed : ChunkClaim;

    /// <summary>Already stored: the same bytes again are fine, other bytes are a conflict.</summary>
    public sealed record Received(UploadChunk Chunk) : ChunkClaim;

    /// <summary>Another request is storing this index right now.</summary>
    public sealed record Busy : ChunkClaim;

    /// <summary>No such session (absent, another tenant's, or gone), or it is no longer uploading.</summary>
    public sealed record Gone : ChunkClaim;
}

/// <summary>
/// Where upload sessions and their progress live: Redis when <c>CAAS_REDIS</c> is set (any node takes the next
/// chunk of an upload started on another), otherwise the operational store. Every call is scoped by tenant.
/// </summary>
public interface IUploadSessions
{
    string Kind { get; }

    Task CreateAsync(UploadSession session, CancellationToken ct = default);

    Task<UploadSnapshot?> GetAsync(string tenantId, string uploadId, CancellationToken ct = default);

    /// <summary>Reserves an index for the caller (atomically: of two requests for one index, one claims it).</summary>
    Task<ChunkClaim> ClaimChunkAsync(string tenantId, string uploadId, int index, CancellationToken ct = default);

    /// <summary>Records the claimed index as received.</summary>
    Task RecordChunkAsync(string tenantId, string uploadId, UploadChunk chunk, CancellationToken ct = default);

    /// <summary>Gives a claimed index back (its bytes did not arrive in full).</summary>
    Task ReleaseChunkAsync(string tenantId, string uploadId, int index, CancellationToken ct = default);

    /// <summary>Moves the state from <paramref name="from"/> to <paramref name="to"/>; false when it was not <paramref name="from"/>.</summary>
    Task<bool> TransitionAsync(string tenantId, string uploadId, UploadState from, UploadState to, CancellationToken ct = default);

    /// <summary>Sessions past their expiry that never completed (the sweep aborts their multipart uploads).</summary>
    Task<IReadOnlyList<UploadSession>> ExpiredAsync(DateTimeOffset now, int limit, CancellationToken ct = default);

    /// <summary>Forgets a session and its chunks.</summary>
    Task DeleteAsync(string tenantId, string uploadId, CancellationToken ct = default);
}

internal static class UploadJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);

    public static string Write<T>(T value) => JsonSerializer.Serialize(value, Options);

    public static T Read<T>(string json) => JsonSerializer.Deserialize<T>(json, Options)!;

    public static string Name(UploadState s) => s.ToString().ToLowerInvariant();

    public static UploadState Parse(string s) => Enum.Parse<UploadState>(s, ignoreCase: true);
}
