using System.Data.Common;
using Caas.Streams.Operational;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Media;

/// <summary>A quota: bytes and files, for a tenant or one user.</summary>
public sealed record MediaQuota(long Bytes, long Files);

/// <summary>What a quota check found over its limit (the 413's body).</summary>
public sealed record QuotaExceeded(string Scope, long UsedBytes, long LimitBytes, long UsedFiles, long LimitFiles);

/// <summary>
/// Storage used per tenant and per user (operational table <c>media_usage</c>; the tenant's row has user ''). A
/// completed file reserves its bytes on both rows in one transaction, each only if it stays within its limit, so two
/// uploads racing for the last bytes cannot both pass. A deleted file gives them back.
/// </summary>
public sealed class MediaUsage(OperationalStore store)
{
    private const string TenantRow = "";

    public async Task<(long Bytes, long Files)> UsedAsync(string tenantId, string? userId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "SELECT bytes, files FROM media_usage WHERE tenant_id = @t AND user_id = @u",
            ("t", tenantId), ("u", userId ?? TenantRow));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? (r.GetInt64(0), r.GetInt64(1)) : (0, 0);
    }

    /// <summary>Before accepting bytes: would <paramref name="size"/> more bytes (and one more file) fit? Null when they would.</summary>
    public async Task<QuotaExceeded?> CheckAsync(string tenantId, string userId, long size, MediaQuota tenant, MediaQuota user, CancellationToken ct = default)
    {
        var t = await UsedAsync(tenantId, null, ct);
        if (t.Bytes + size > tenant.Bytes || t.Files + 1 > tenant.Files) return new QuotaExceeded("tenant", t.Bytes, tenant.Bytes, t.Files, tenant.Files);
        var u = await UsedAsync(tenantId, userId, ct);
        if (u.Bytes + size > user.Bytes || u.Files + 1 > user.Files) return new QuotaExceeded("user", u.Bytes, user.Bytes, u.Files, user.Files);
        return null;
    }

    /// <summary>At completion: takes the bytes on both rows, or neither (null when taken).</summary>
    public async Task<QuotaExceeded?> ReserveAsync(string tenantId, string userId, long size, MediaQuota tenant, MediaQuota user, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        using var turn = await store.WriteTurnAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        foreach (var (row, quota, scope) in new[] { (TenantRow, tenant, "tenant"), (userId, user, "user") })
        {
            await using (var ensure = Command(c, tx, "INSERT INTO media_usage (tenant_id, user_id, bytes, files) VALUES (@t, @u, 0, 0) ON CONFLICT DO NOTHING",
                             ("t", tenantId), ("u", row)))
                await ensure.ExecuteNonQueryAsync(ct);
            await using var take = Command(c, tx,
                "UPDATE media_usage SET bytes = bytes + @s, files = files + 1 WHERE tenant_id = @t AND user_id = @u AND bytes + @s <= @lb AND files + 1 <= @lf",
                ("t", tenantId), ("u", row), ("s", size), ("lb", quota.Bytes), ("lf", quota.Files));
            if (await take.ExecuteNonQueryAsync(ct) == 1) continue;
            var used = await ReadAsync(c, tx, tenantId, row, ct);
            await tx.RollbackAsync(ct);
            return new QuotaExceeded(scope, used.Bytes, quota.Bytes, used.Files, quota.Files);
        }
        await tx.CommitAsync(ct);
        return null;
    }

    /// <summary>Records a stored file's owner (for erasure); idempotent.</summary>
    public async Task AddOwnerAsync(string tenantId, string fileId, string ownerId, long size, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "INSERT INTO media_owners (tenant_id, file_id, owner_id, size) VALUES (@t, @f, @o, @s) ON CONFLICT DO NOTHING",
            ("t", tenantId), ("f", fileId), ("o", ownerId), ("s", size));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>The files a user owns whose bytes are still stored.</summary>
    public async Task<IReadOnlyList<(string FileId, long Size)>> FilesOfAsync(string tenantId, string ownerId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "SELECT file_id, size FROM media_owners WHERE tenant_id = @t AND owner_id = @o ORDER BY file_id",
            ("t", tenantId), ("o", ownerId));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        var list = new List<(string, long)>();
        while (await r.ReadAsync(ct)) list.Add((r.GetString(0), r.GetInt64(1)));
        return list;
    }

    /// <summary>Forgets a file's owner once its bytes are gone; false when it was already forgotten.</summary>
    public async Task<bool> RemoveOwnerAsync(string tenantId, string fileId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "DELETE FROM media_owners WHERE tenant_id = @t AND file_id = @f", ("t", tenantId), ("f", fileId));
        return await cmd.ExecuteNonQueryAsync(ct) == 1;
    }

    /// <summary>
    /// Keeps a deleted file's bytes until <paramref name="dueMs"/> (its tenant's retention): the retention sweep purges
    /// it then. Its bytes count toward the quotas until they are purged (they are still stored).
    /// </summary>
    public async Task SchedulePurgeAsync(string tenantId, string fileId, long dueMs, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "UPDATE media_owners SET purge_after = @d WHERE tenant_id = @t AND file_id = @f",
            ("t", tenantId), ("f", fileId), ("d", dueMs));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Deleted files whose retention ran out by <paramref name="nowMs"/>, the earliest first (a bounded batch).</summary>
    public async Task<IReadOnlyList<(string TenantId, string FileId, string OwnerId, long Size)>> DuePurgesAsync(long nowMs, int limit,
        CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT tenant_id, file_id, owner_id, size FROM media_owners WHERE purge_after IS NOT NULL AND purge_after <= @n ORDER BY purge_after LIMIT @l",
            ("n", nowMs), ("l", limit));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        var list = new List<(string, string, string, long)>();
        while (await r.ReadAsync(ct)) list.Add((r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3)));
        return list;
    }

    /// <summary>Gives a deleted file's bytes back on both rows.</summary>
    public async Task ReleaseAsync(string tenantId, string userId, long size, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        using var turn = await store.WriteTurnAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        foreach (var row in new[] { TenantRow, userId })
        {
            await using var give = Command(c, tx,
                "UPDATE media_usage SET bytes = CASE WHEN bytes >= @s THEN bytes - @s ELSE 0 END, files = CASE WHEN files >= 1 THEN files - 1 ELSE 0 END WHERE tenant_id = @t AND user_id = @u",
                ("t", tenantId), ("u", row), ("s", size));
            await give.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
    }

    private static async Task<(long Bytes, long Files)> ReadAsync(DbConnection c, DbTransaction tx, string tenantId, string row, CancellationToken ct)
    {
        await using var cmd = Command(c, tx, "SELECT bytes, files FROM media_usage WHERE tenant_id = @t AND user_id = @u", ("t", tenantId), ("u", row));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? (r.GetInt64(0), r.GetInt64(1)) : (0, 0);
    }
}
