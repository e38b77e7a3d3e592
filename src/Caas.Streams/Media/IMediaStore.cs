using Caas.Actors.Common;

namespace Caas.Streams.Media;

/// <summary>
/// Where media bytes live: one object per file, under its tenant (<c>{tenant}/{file id}</c>), never shared between
/// users or tenants (a shared object would reveal that a file exists elsewhere and would survive an erasure). Two
/// implementations behave the same: <see cref="FileMediaStore"/> (the embedded default, <c>{data}/media</c>) and
/// <see cref="S3MediaStore"/> (any S3 server, path-style). Bytes are streamed through, never held whole.
/// A resumable upload is a multipart upload: parts by index (from 0), assembled in index order on completion.
/// </summary>
public interface IMediaStore
{
    /// <summary>"file" or "s3": for logs, metrics and the health check.</summary>
    string Kind { get; }

    /// <summary>Creates what the store needs (the folder, the bucket); idempotent.</summary>
    Task EnsureReadyAsync(CancellationToken ct = default);

    /// <summary>Streams <paramref name="content"/> to the end into the file's object (replacing any); returns its size.</summary>
    Task<long> PutAsync(string tenantId, string fileId, Stream content, CancellationToken ct = default);

    /// <summary>The object's size, or null when it does not exist.</summary>
    Task<long?> SizeAsync(string tenantId, string fileId, CancellationToken ct = default);

    /// <summary>
    /// Reads <paramref name="length"/> bytes (null: to the end) from <paramref name="offset"/>. Null when the object does
    /// not exist. The caller disposes the stream.
    /// </summary>
    Task<Stream?> OpenReadAsync(string tenantId, string fileId, long offset = 0, long? length = null, CancellationToken ct = default);

    /// <summary>Deletes the object; false when there was none.</summary>
    Task<bool> DeleteAsync(string tenantId, string fileId, CancellationToken ct = default);

    /// <summary>Starts a multipart upload of the file's object; returns the store's id for it.</summary>
    Task<string> StartMultipartAsync(string tenantId, string fileId, CancellationToken ct = default);

    /// <summary>Stores part <paramref name="index"/> (exactly <paramref name="length"/> bytes of <paramref name="content"/>); returns its tag.</summary>
    Task<string> PutPartAsync(string tenantId, string fileId, string multipartId, int index, Stream content, long length, CancellationToken ct = default);

    /// <summary>Assembles the parts (every index from 0 to <c>parts.Count - 1</c>, each with the tag its put returned) into the object.</summary>
    Task CompleteMultipartAsync(string tenantId, string fileId, string multipartId, IReadOnlyList<string> partTags, CancellationToken ct = default);

    /// <summary>Drops a multipart upload and its parts (idempotent: an unknown or finished upload is no error).</summary>
    Task AbortMultipartAsync(string tenantId, string fileId, string multipartId, CancellationToken ct = default);
}

/// <summary>A store operation failed because the store is unreachable or refused (maps to 503 <c>unavailable</c>).</summary>
public sealed class MediaStoreUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The media configuration (environment variables <c>CAAS_S3_*</c>, <c>CAAS_MEDIA_*</c>).</summary>
public sealed record MediaStoreSettings(string? S3Endpoint, string? S3Bucket, string? S3AccessKey, string? S3SecretKey, string S3Region)
{
    public bool IsS3 => !string.IsNullOrWhiteSpace(S3Endpoint);

    public static MediaStoreSettings FromEnvironment(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        return new MediaStoreSettings(env("CAAS_S3_ENDPOINT"), env("CAAS_S3_BUCKET") is { Length: > 0 } b ? b : "caas-media",
            env("CAAS_S3_ACCESS_KEY"), env("CAAS_S3_SECRET_KEY"), env("CAAS_S3_REGION") is { Length: > 0 } r ? r : "us-east-1");
    }

    /// <summary>The S3 store when an endpoint is set, else the file store under <c>{dataDir}/media</c>.</summary>
    public IMediaStore Create(string dataDir)
    {
        if (!IsS3) return new FileMediaStore(Path.Combine(dataDir, "media"));
        if (string.IsNullOrWhiteSpace(S3AccessKey) || string.IsNullOrWhiteSpace(S3SecretKey))
            throw new InvalidOperationException("CAAS_S3_ENDPOINT is set: CAAS_S3_ACCESS_KEY and CAAS_S3_SECRET_KEY are required too.");
        return new S3MediaStore(S3Endpoint!, S3Bucket!, S3AccessKey!, S3SecretKey!, S3Region);
    }
}

internal static class MediaKeys
{
    /// <summary>Tenant and file ids are safe ids (no '/', no '..'), so a key or path made of them cannot escape.</summary>
    public static void Check(string tenantId, string fileId)
    {
        if (!Ids.IsValid(tenantId) || tenantId is "." or ".." || !Ids.IsValid(fileId) || fileId is "." or "..")
            throw new ArgumentException("Media keys are made of safe ids only.");
    }

    public static string Of(string tenantId, string fileId)
    {
        Check(tenantId, fileId);
        return tenantId + "/" + fileId;
    }
}
