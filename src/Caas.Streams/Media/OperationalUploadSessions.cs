using Caas.Streams.Operational;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Media;

/// <summary>
/// Upload sessions in the operational store (the embedded default, and clusters without Redis): tables
/// <c>upload_sessions</c> and <c>upload_chunks</c> (migration <see cref="CreateUploadSessionTables"/>). A claim is a
/// chunk row without a SHA-256, inserted with "on conflict do nothing", so of two requests for one index one wins.
/// </summary>
public sealed class OperationalUploadSessions(OperationalStore store) : IUploadSessions
{
    public string Kind => "operational";

    public async Task CreateAsync(UploadSession session, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "INSERT INTO upload_sessions (tenant_id, upload_id, session_json, state, expires_at) VALUES (@t, @u, @j, @s, @e)",
            ("t", session.TenantId), ("u", session.UploadId), ("j", UploadJson.Write(session)), ("s", UploadJson.Name(UploadState.Uploading)),
            ("e", session.ExpiresAt.ToUnixTimeMilliseconds()));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public async Task<UploadSnapshot?> GetAsync(string tenantId, string uploadId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        UploadSession session;
        UploadState state;
        await using (var cmd = Command(c, null, "SELECT session_json, state FROM upload_sessions WHERE tenant_id = @t AND upload_id = @u",
                         ("t", tenantId), ("u", uploadId)))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            if (!await r.ReadAsync(ct)) return null;
            session = UploadJson.Read<UploadSession>(r.GetString(0));
            state = UploadJson.Parse(r.GetString(1));
        }
        var chunks = new List<UploadChunk>();
        var pending = 0;
        await using (var cmd = Command(c, null,
                         "SELECT idx, length, sha256, tag FROM upload_chunks WHERE tenant_id = @t AND upload_id = @u ORDER BY idx",
                         ("t", tenantId), ("u", uploadId)))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            while (await r.ReadAsync(ct))
            {
                if (r.IsDBNull(2)) pending++;
                else chunks.Add(new UploadChunk(r.GetInt32(0), r.GetInt64(1), r.GetString(2), r.GetString(3)));
            }
        }
        return new UploadSnapshot(session, state, chunks, pending);
    }

    public async Task<ChunkClaim> ClaimChunkAsync(string tenantId, string uploadId, int index, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using (var cmd = Command(c, null, "SELECT state FROM upload_sessions WHERE tenant_id = @t AND upload_id = @u", ("t", tenantId), ("u", uploadId)))
            if (await cmd.ExecuteScalarAsync(ct) is not string state || UploadJson.Parse(state) != UploadState.Uploading)
                return new ChunkClaim.Gone();
        await using (var cmd = Command(c, null,
                         "INSERT INTO upload_chunks (tenant_id, upload_id, idx, length, sha256, tag) VALUES (@t, @u, @i, 0, NULL, NULL) ON CONFLICT DO NOTHING",
                         ("t", tenantId), ("u", uploadId), ("i", index)))
            if (await cmd.ExecuteNonQueryAsync(ct) == 1) return new ChunkClaim.Claimed();
        await using (var cmd = Command(c, null, "SELECT length, sha256, tag FROM upload_chunks WHERE tenant_id = @t AND upload_id = @u AND idx = @i",
                         ("t", tenantId), ("u", uploadId), ("i", index)))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            if (!await r.ReadAsync(ct)) return new ChunkClaim.Busy(); // released between the two statements: try again
            return r.IsDBNull(1) ? new ChunkClaim.Busy() : new ChunkClaim.Received(new UploadChunk(index, r.GetInt64(0), r.GetString(1), r.GetString(2)));
        }
    }

    public async Task RecordChunkAsync(string tenantId, string uploadId, UploadChunk chunk, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "UPDATE upload_chunks SET length = @l, sha256 = @h, tag = @g WHERE tenant_id = @t AND upload_id = @u AND idx = @i",
            ("t", tenantId), ("u", uploadId), ("i", chunk.Index), ("l", chunk.Length), ("h", chunk.Sha256), ("g", chunk.Tag));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public async Task ReleaseChunkAsync(string tenantId, string uploadId, int index, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "DELETE FROM upload_chunks WHERE tenant_id = @t AND upload_id = @u AND idx = @i AND sha256 IS NULL",
            ("t", tenantId), ("u", uploadId), ("i", index));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public async Task<bool> TransitionAsync(string tenantId, string uploadId, UploadState from, UploadState to, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "UPDATE upload_sessions SET state = @to WHERE tenant_id = @t AND upload_id = @u AND state = @from",
            ("t", tenantId), ("u", uploadId), ("from", UploadJson.Name(from)), ("to", UploadJson.Name(to)));
        return await cmd.ExecuteNonQueryAsync(ct) == 1;
    }

    public async Task<IReadOnlyList<UploadSession>> ExpiredAsync(DateTimeOffset now, int limit, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT session_json FROM upload_sessions WHERE expires_at <= @now AND state IN (@a, @b) ORDER BY expires_at LIMIT @n",
            ("now", now.ToUnixTimeMilliseconds()), ("a", UploadJson.Name(UploadState.Uploading)), ("b", UploadJson.Name(UploadState.Failed)), ("n", limit));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        var list = new List<UploadSession>();
        while (await r.ReadAsync(ct)) list.Add(UploadJson.Read<UploadSession>(r.GetString(0)));
        return list;
    }

    public async Task DeleteAsync(string tenantId, string uploadId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        await using (var cmd = Command(c, tx, "DELETE FROM upload_chunks WHERE tenant_id = @t AND upload_id = @u", ("t", tenantId), ("u", uploadId)))
            await cmd.ExecuteNonQueryAsync(ct);
        await using (var cmd = Command(c, tx, "DELETE FROM upload_sessions WHERE tenant_id = @t AND upload_id = @u", ("t", tenantId), ("u", uploadId)))
            await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }
}
