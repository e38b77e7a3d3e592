using StackExchange.Redis;

namespace Caas.Streams.Media;

/// <summary>
/// Upload sessions in Redis (<c>CAAS_REDIS</c>), so any node takes the next chunk of an upload another node started.
/// Per session: a hash <c>caas:upload:{tenant}:{id}</c> (session JSON, state) and a hash of chunks (index → chunk JSON,
/// or "pending" while a request stores it: claimed with HSETNX). A sorted set by expiry finds the sessions the sweep
/// must abort; each key also expires a day after its session, in case the sweep never runs. Redis unreachable surfaces
/// as <see cref="RedisException"/> (the API answers 503).
/// </summary>
public sealed class RedisUploadSessions(IConnectionMultiplexer redis, string prefix = "caas") : IUploadSessions
{
    private const string Pending = "pending";
    private static readonly TimeSpan KeepAfterExpiry = TimeSpan.FromDays(1);

    private IDatabase Db => redis.GetDatabase();

    public string Kind => "redis";

    private RedisKey SessionKey(string tenantId, string uploadId) => $"{prefix}:upload:{tenantId}:{uploadId}";

    private RedisKey ChunksKey(string tenantId, string uploadId) => $"{prefix}:upload:{tenantId}:{uploadId}:chunks";

    private RedisKey ExpiryKey => $"{prefix}:uploads:expiry";

    private static string Member(string tenantId, string uploadId) => tenantId + "|" + uploadId;

    public async Task CreateAsync(UploadSession session, CancellationToken ct = default)
    {
        var key = SessionKey(session.TenantId, session.UploadId);
        var tx = Db.CreateTransaction();
        _ = tx.HashSetAsync(key, [new("session", UploadJson.Write(session)), new("state", UploadJson.Name(UploadState.Uploading))]);
        _ = tx.KeyExpireAsync(key, session.ExpiresAt.UtcDateTime + KeepAfterExpiry);
        _ = tx.SortedSetAddAsync(ExpiryKey, Member(session.TenantId, session.UploadId), session.ExpiresAt.ToUnixTimeMilliseconds());
        await tx.ExecuteAsync();
    }

    public async Task<UploadSnapshot?> GetAsync(string tenantId, string uploadId, CancellationToken ct = default)
    {
        var fields = await Db.HashGetAsync(SessionKey(tenantId, uploadId), ["session", "state"]);
        if (fields[0].IsNullOrEmpty || fields[1].IsNullOrEmpty) return null;
        var session = UploadJson.Read<UploadSession>(fields[0]!);
        var chunks = new List<UploadChunk>();
        var pending = 0;
        foreach (var entry in await Db.HashGetAllAsync(ChunksKey(tenantId, uploadId)))
        {
            if (entry.Value == Pending) pending++;
            else chunks.Add(UploadJson.Read<UploadChunk>(entry.Value!));
        }
        chunks.Sort((a, b) => a.Index.CompareTo(b.Index));
        return new UploadSnapshot(session, UploadJson.Parse(fields[1]!), chunks, pending);
    }

    public async Task<ChunkClaim> ClaimChunkAsync(string tenantId, string uploadId, int index, CancellationToken ct = default)
    {
        var state = await Db.HashGetAsync(SessionKey(tenantId, uploadId), "state");
        if (state.IsNullOrEmpty || UploadJson.Parse(state!) != UploadState.Uploading) return new ChunkClaim.Gone();
        var chunks = ChunksKey(tenantId, uploadId);
        var field = index.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (await Db.HashSetAsync(chunks, field, Pending, When.NotExists))
        {
            // The chunks go when their session goes.
            if (await Db.KeyTimeToLiveAsync(SessionKey(tenantId, uploadId)) is { } ttl) await Db.KeyExpireAsync(chunks, ttl);
            return new ChunkClaim.Claimed();
        }
        var existing = await Db.HashGetAsync(chunks, field);
        if (existing.IsNullOrEmpty || existing == Pending) return new ChunkClaim.Busy();
        return new ChunkClaim.Received(UploadJson.Read<UploadChunk>(existing!));
    }

    public Task RecordChunkAsync(string tenantId, string uploadId, UploadChunk chunk, CancellationToken ct = default) =>
        Db.HashSetAsync(ChunksKey(tenantId, uploadId), chunk.Index.ToString(System.Globalization.CultureInfo.InvariantCulture), UploadJson.Write(chunk));

    public async Task ReleaseChunkAsync(string tenantId, string uploadId, int index, CancellationToken ct = default)
    {
        // Only a pending claim is given back, never a received chunk (a compare-and-delete in one script).
        await Db.ScriptEvaluateAsync("if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0",
            [ChunksKey(tenantId, uploadId)], [index.ToString(System.Globalization.CultureInfo.InvariantCulture), Pending]);
    }

    public async Task<bool> TransitionAsync(string tenantId, string uploadId, UploadState from, UploadState to, CancellationToken ct = default)
    {
        var result = await Db.ScriptEvaluateAsync(
            "if redis.call('HGET', KEYS[1], 'state') == ARGV[1] then redis.call('HSET', KEYS[1], 'state', ARGV[2]) return 1 end return 0",
            [SessionKey(tenantId, uploadId)], [UploadJson.Name(from), UploadJson.Name(to)]);
        return (int)result == 1;
    }

    public async Task<IReadOnlyList<UploadSession>> ExpiredAsync(DateTimeOffset now, int limit, CancellationToken ct = default)
    {
        var members = await Db.SortedSetRangeByScoreAsync(ExpiryKey, double.NegativeInfinity, now.ToUnixTimeMilliseconds(), take: limit);
        var list = new List<UploadSession>();
        foreach (var member in members)
        {
            var parts = member.ToString().Split('|', 2);
            var snapshot = await GetAsync(parts[0], parts[1], ct);
            if (snapshot is null || snapshot.State is UploadState.Complete or UploadState.Completing)
            {
                // Finished (or gone): nothing to abort; finished sessions leave the expiry set here.
                if (snapshot is null || snapshot.State == UploadState.Complete) await Db.SortedSetRemoveAsync(ExpiryKey, member);
                continue;
            }
            list.Add(snapshot.Session);
        }
        return list;
    }

    public async Task DeleteAsync(string tenantId, string uploadId, CancellationToken ct = default)
    {
        var tx = Db.CreateTransaction();
        _ = tx.KeyDeleteAsync([SessionKey(tenantId, uploadId), ChunksKey(tenantId, uploadId)]);
        _ = tx.SortedSetRemoveAsync(ExpiryKey, Member(tenantId, uploadId));
        await tx.ExecuteAsync();
    }
}
