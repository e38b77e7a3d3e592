using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Caas.Streams.Media;

namespace Caas.Web.Media;

/// <summary>
/// The media capability's configuration (environment: <c>CAAS_MEDIA_*</c>, <c>CAAS_S3_*</c>, <c>CAAS_REDIS</c>).
/// Quotas are per tenant and per user, in bytes and files.
/// </summary>
public sealed record MediaSettings
{
    public const long MiB = 1024 * 1024;

    /// <summary>The largest single upload (<c>CAAS_MEDIA_MAX_SINGLE_MB</c>, default 25).</summary>
    public long MaxSingleBytes { get; init; } = 25 * MiB;

    /// <summary>The resumable upload's chunk (<c>CAAS_MEDIA_CHUNK_MB</c>, default 8; at least 5 on S3, its smallest part).</summary>
    public int ChunkBytes { get; init; } = (int)(8 * MiB);

    /// <summary>The largest resumable upload (<c>CAAS_MEDIA_MAX_FILE_MB</c>, default 4096).</summary>
    public long MaxFileBytes { get; init; } = 4096 * MiB;

    /// <summary>How long a resumable upload may take (<c>CAAS_MEDIA_UPLOAD_TTL_SECONDS</c>, default a day).</summary>
    public TimeSpan UploadTtl { get; init; } = TimeSpan.FromDays(1);

    public MediaQuota TenantQuota { get; init; } = new(1024L * 1024 * MiB, 1_000_000);

    public MediaQuota UserQuota { get; init; } = new(10L * 1024 * MiB, 100_000);

    /// <summary>Exact types and <c>family/*</c> wildcards (<c>CAAS_MEDIA_ALLOWED_TYPES</c>, comma-separated). Executables never pass.</summary>
    public IReadOnlyList<string> AllowedTypes { get; init; } =
        ["image/*", "video/*", "audio/*", "application/pdf", ContentSniffer.Docx, "application/zip", "text/plain", "text/html"];

    /// <summary>The HMAC key of signed links (<c>CAAS_MEDIA_LINK_KEY</c>; else derived from the JWT secret).</summary>
    public byte[] LinkKey { get; init; } = RandomNumberGenerator.GetBytes(32);

    public TimeSpan DefaultLinkTtl { get; init; } = TimeSpan.FromSeconds(900);

    public TimeSpan MaxLinkTtl { get; init; } = TimeSpan.FromSeconds(86_400);

    /// <summary>How long a deleted file's bytes stay in the store (<c>CAAS_MEDIA_RETENTION_SECONDS</c>, default 0: purged at once); a tenant may set its own.</summary>
    public TimeSpan Retention { get; init; } = TimeSpan.Zero;

    /// <summary>How often deleted files past their retention are purged (<c>CAAS_MEDIA_RETENTION_SWEEP_SECONDS</c>, default 60).</summary>
    public TimeSpan RetentionSweepEvery { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How often expired upload sessions are aborted (<c>CAAS_MEDIA_SWEEP_SECONDS</c>, default 30).</summary>
    public TimeSpan SweepEvery { get; init; } = TimeSpan.FromSeconds(30);

    public MediaStoreSettings Store { get; init; } = MediaStoreSettings.FromEnvironment(_ => null);

    /// <summary>Thumbnail work's bounds (<c>CAAS_MEDIA_THUMB_*</c>); see <see cref="ThumbnailLimits"/>.</summary>
    public ThumbnailLimits Thumbnails { get; init; } = new();

    /// <summary>Redis for upload sessions (<c>CAAS_REDIS</c>, a StackExchange.Redis configuration string); null: the operational store.</summary>
    public string? Redis { get; init; }

    public static MediaSettings FromEnvironment(string? jwtSecret, Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        long Long(string name, long fallback) => long.TryParse(env(name), NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;
        var d = new MediaSettings();
        var key = env("CAAS_MEDIA_LINK_KEY") is { Length: > 0 } k
            ? Encoding.UTF8.GetBytes(k)
            : jwtSecret is { Length: > 0 } secret
                ? HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), "caas-media-links"u8)
                : d.LinkKey;
        return new MediaSettings
        {
            MaxSingleBytes = Long("CAAS_MEDIA_MAX_SINGLE_MB", 25) * MiB,
            ChunkBytes = (int)(Math.Min(Long("CAAS_MEDIA_CHUNK_MB", 8), 1024) * MiB),
            MaxFileBytes = Long("CAAS_MEDIA_MAX_FILE_MB", 4096) * MiB,
            UploadTtl = TimeSpan.FromSeconds(Long("CAAS_MEDIA_UPLOAD_TTL_SECONDS", 86_400)),
            TenantQuota = new MediaQuota(Long("CAAS_MEDIA_TENANT_QUOTA_BYTES", d.TenantQuota.Bytes), Long("CAAS_MEDIA_TENANT_QUOTA_FILES", d.TenantQuota.Files)),
            UserQuota = new MediaQuota(Long("CAAS_MEDIA_USER_QUOTA_BYTES", d.UserQuota.Bytes), Long("CAAS_MEDIA_USER_QUOTA_FILES", d.UserQuota.Files)),
            AllowedTypes = env("CAAS_MEDIA_ALLOWED_TYPES") is { Length: > 0 } types
                ? types.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(t => t.ToLowerInvariant()).ToArray()
                : d.AllowedTypes,
            LinkKey = key,
            SweepEvery = TimeSpan.FromSeconds(Long("CAAS_MEDIA_SWEEP_SECONDS", 30)),
            Retention = TimeSpan.FromSeconds(Long("CAAS_MEDIA_RETENTION_SECONDS", 0)),
            RetentionSweepEvery = TimeSpan.FromSeconds(Long("CAAS_MEDIA_RETENTION_SWEEP_SECONDS", 60)),
            Store = MediaStoreSettings.FromEnvironment(env),
            Thumbnails = new ThumbnailLimits
            {
                MaxSide = (int)Math.Min(Long("CAAS_MEDIA_THUMB_SIDE", 320), 2048),
                MaxPixels = Long("CAAS_MEDIA_THUMB_MAX_PIXELS", 40_000_000),
                MaxImageBytes = Long("CAAS_MEDIA_THUMB_MAX_IMAGE_MB", 64) * MiB,
                MaxVideoBytes = Long("CAAS_MEDIA_THUMB_MAX_VIDEO_MB", 1024) * MiB,
                Timeout = TimeSpan.FromSeconds(Long("CAAS_MEDIA_THUMB_TIMEOUT_SECONDS", 60)),
                Concurrency = (int)Math.Min(Long("CAAS_MEDIA_THUMB_CONCURRENCY", 2), 64),
                ScanEvery = TimeSpan.FromSeconds(Long("CAAS_MEDIA_THUMB_SCAN_SECONDS", 300)),
            },
            Redis = env("CAAS_REDIS") is { Length: > 0 } r ? r : null,
        };
    }
}

/// <summary>
/// Time-limited download links: <c>/media/signed/{tenant}/{file}?expires=UNIX&amp;sig=HMAC</c>, the HMAC-SHA256 of
/// tenant, file and expiry under the link key. Served without a token; an altered or expired link is refused.
/// </summary>
public sealed class SignedLinks(MediaSettings settings)
{
    public (string Url, DateTimeOffset ExpiresAt) Create(string tenantId, string fileId, TimeSpan ttl, DateTimeOffset now)
    {
        var expires = now.ToUnixTimeSeconds() + (long)Math.Ceiling(ttl.TotalSeconds);
        return ($"/media/signed/{tenantId}/{fileId}?expires={expires.ToString(CultureInfo.InvariantCulture)}&sig={Sign(tenantId, fileId, expires)}",
            DateTimeOffset.FromUnixTimeSeconds(expires));
    }

    /// <summary>True when the signature is this node's for these values and the link has not expired.</summary>
    public bool Verify(string tenantId, string fileId, string? expires, string? sig, DateTimeOffset now)
    {
        if (!long.TryParse(expires, NumberStyles.None, CultureInfo.InvariantCulture, out var at) || sig is null) return false;
        var expected = Encoding.ASCII.GetBytes(Sign(tenantId, fileId, at));
        var given = Encoding.ASCII.GetBytes(sig);
        return CryptographicOperations.FixedTimeEquals(expected, given) && now.ToUnixTimeSeconds() < at;
    }

    private string Sign(string tenantId, string fileId, long expires)
    {
        var mac = HMACSHA256.HashData(settings.LinkKey, Encoding.UTF8.GetBytes($"{tenantId}\n{fileId}\n{expires.ToString(CultureInfo.InvariantCulture)}"));
        return Convert.ToBase64String(mac).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }
}
