using Akka.Actor;
using Akka.Persistence.Query;
using Caas.Actors.Media;
using Caas.Streams.ReadModel;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Media;

/// <summary>A gallery row: a file of a conversation, as the read model holds it.</summary>
public sealed record MediaRow(string FileId, string ConversationId, string OwnerId, string FileName, string ContentType, string Kind, long Size,
    string Sha256, int? Width, int? Height, long? DurationMs, DateTimeOffset CreatedAt, bool HasThumbnail = false);

/// <summary>
/// The media read model: <c>rm_media_files</c>, one row per file, written by <see cref="MediaProjection"/> from the
/// media entities' events (tag <c>media</c>) with its offset in the same transaction; a deleted file's row keeps its
/// deletion time and leaves the gallery. Rebuilt from the journal like the rest.
/// </summary>
public sealed class MediaReadModel(ReadModelStore store)
{
    public const string ProjectionName = "media";

    private static readonly string[] Schema =
    [
        """
        CREATE TABLE IF NOT EXISTS rm_media_files (
            tenant_id TEXT NOT NULL, file_id TEXT NOT NULL, conversation_id TEXT NOT NULL, owner_id TEXT NOT NULL, file_name TEXT NOT NULL,
            content_type TEXT NOT NULL, kind TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL, width INTEGER NULL, height INTEGER NULL,
            duration_ms BIGINT NULL, created_at BIGINT NOT NULL, deleted_at BIGINT NULL, PRIMARY KEY (tenant_id, file_id))
        """,
        "CREATE INDEX IF NOT EXISTS rm_media_files_gallery ON rm_media_files (tenant_id, conversation_id, created_at, file_id)",
        // The thumbnail worker's outcome per file (a thumbnail, or why none): its own table, so the files' table stays as it was.
        """
        CREATE TABLE IF NOT EXISTS rm_media_thumbnails (
            tenant_id TEXT NOT NULL, file_id TEXT NOT NULL, content_type TEXT NULL, width INTEGER NULL, height INTEGER NULL, skipped TEXT NULL,
            PRIMARY KEY (tenant_id, file_id))
        """,
    ];

    public async Task EnsureSchemaAsync(CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        foreach (var sql in Schema) await ReadModelStore.ExecuteAsync(c, sql, ct);
    }

    public async Task<long> LoadOffsetAsync(CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "SELECT last_offset FROM rm_projection_offsets WHERE name = @name", ("name", ProjectionName));
        return await cmd.ExecuteScalarAsync(ct) is { } v and not DBNull ? Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }

    /// <summary>Applies a batch and stores its offset in one transaction; idempotent (a replay writes the same rows).</summary>
    public async Task WriteAsync(IReadOnlyList<EventEnvelope> batch, CancellationToken ct = default)
    {
        if (batch.Count == 0) return;
        await using var c = await store.OpenAsync(ct);
        using var turn = await store.WriteTurnAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        foreach (var envelope in batch)
        {
            switch (envelope.Event)
            {
                case MediaUploaded { File: var f }:
                    await using (var cmd = Command(c, tx,
                                     "INSERT INTO rm_media_files (tenant_id, file_id, conversation_id, owner_id, file_name, content_type, kind, size, sha256, width, height, duration_ms, created_at, deleted_at) " +
                                     "VALUES (@t, @f, @c, @o, @n, @ct, @k, @s, @h, CAST(@w AS INTEGER), CAST(@hh AS INTEGER), CAST(@d AS BIGINT), @at, NULL) ON CONFLICT (tenant_id, file_id) DO NOTHING",
                                     ("t", f.TenantId), ("f", f.FileId), ("c", f.ConversationId), ("o", f.OwnerId), ("n", f.FileName), ("ct", f.ContentType),
                                     ("k", f.Kind), ("s", f.Size), ("h", f.Sha256), ("w", f.Width), ("hh", f.Height), ("d", f.DurationMs),
                                     ("at", f.CreatedAt.ToUnixTimeMilliseconds())))
                        await cmd.ExecuteNonQueryAsync(ct);
                    break;
                case MediaProcessed p:
                    await using (var cmd = Command(c, tx,
                                     "INSERT INTO rm_media_thumbnails (tenant_id, file_id, content_type, width, height, skipped) " +
                                     "VALUES (@t, @f, @ct, CAST(@w AS INTEGER), CAST(@h AS INTEGER), @s) ON CONFLICT (tenant_id, file_id) DO NOTHING",
                                     ("t", p.Meta.TenantId), ("f", p.FileId), ("ct", p.Thumbnail?.ContentType), ("w", p.Thumbnail?.Width),
                                     ("h", p.Thumbnail?.Height), ("s", p.Skipped)))
                        await cmd.ExecuteNonQueryAsync(ct);
                    await using (var cmd = Command(c, tx,
                                     "UPDATE rm_media_files SET width = COALESCE(CAST(@w AS INTEGER), width), height = COALESCE(CAST(@h AS INTEGER), height), " +
                                     "duration_ms = COALESCE(CAST(@d AS BIGINT), duration_ms) WHERE tenant_id = @t AND file_id = @f",
                                     ("t", p.Meta.TenantId), ("f", p.FileId), ("w", p.Width), ("h", p.Height), ("d", p.DurationMs)))
                        await cmd.ExecuteNonQueryAsync(ct);
                    break;
                case MediaDeleted d:
                    await using (var cmd = Command(c, tx, "UPDATE rm_media_files SET deleted_at = @at WHERE tenant_id = @t AND file_id = @f",
                                     ("t", d.Meta.TenantId), ("f", d.FileId), ("at", d.Meta.OccurredAt.ToUnixTimeMilliseconds())))
                        await cmd.ExecuteNonQueryAsync(ct);
                    break;
            }
        }
        await using (var cmd = Command(c, tx,
                         "INSERT INTO rm_projection_offsets (name, last_offset) VALUES (@name, @offset) ON CONFLICT (name) DO UPDATE SET last_offset = excluded.last_offset",
                         ("name", ProjectionName), ("offset", ((Sequence)batch[^1].Offset).Value)))
            await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>A conversation's files, newest first, optionally of one kind, after a cursor (created ms, file id).</summary>
    public async Task<IReadOnlyList<MediaRow>> GalleryAsync(string tenantId, string conversationId, string? kind, int limit,
        (long CreatedMs, string FileId)? before, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        var sql = "SELECT m.file_id, m.conversation_id, m.owner_id, m.file_name, m.content_type, m.kind, m.size, m.sha256, m.width, m.height, " +
                  "m.duration_ms, m.created_at, th.content_type " +
                  "FROM rm_media_files m LEFT JOIN rm_media_thumbnails th ON th.tenant_id = m.tenant_id AND th.file_id = m.file_id " +
                  "WHERE m.tenant_id = @t AND m.conversation_id = @c AND m.deleted_at IS NULL" +
                  (kind is null ? "" : " AND m.kind = @k") +
                  (before is null ? "" : " AND (m.created_at < @bt OR (m.created_at = @bt AND m.file_id < @bf))") +
                  " ORDER BY m.created_at DESC, m.file_id DESC LIMIT @n";
        await using var cmd = Command(c, null, sql, ("t", tenantId), ("c", conversationId), ("k", kind), ("bt", before?.CreatedMs ?? 0),
            ("bf", before?.FileId ?? ""), ("n", limit));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        var rows = new List<MediaRow>();
        while (await r.ReadAsync(ct))
            rows.Add(new MediaRow(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetInt64(6),
                r.GetString(7), r.IsDBNull(8) ? null : r.GetInt32(8), r.IsDBNull(9) ? null : r.GetInt32(9), r.IsDBNull(10) ? null : r.GetInt64(10),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(11)), !r.IsDBNull(12)));
        return rows;
    }

    /// <summary>
    /// Ready images, videos and audio files created before <paramref name="createdBefore"/> that have no thumbnail
    /// outcome yet (the worker's restart path), oldest first, across tenants.
    /// </summary>
    public async Task<IReadOnlyList<(string TenantId, string FileId)>> PendingThumbnailsAsync(DateTimeOffset createdBefore, int limit,
        CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT m.tenant_id, m.file_id FROM rm_media_files m LEFT JOIN rm_media_thumbnails th ON th.tenant_id = m.tenant_id AND th.file_id = m.file_id " +
            "WHERE th.file_id IS NULL AND m.deleted_at IS NULL AND m.kind IN ('image', 'video', 'audio') AND m.created_at < @before " +
            "ORDER BY m.created_at LIMIT @n", ("before", createdBefore.ToUnixTimeMilliseconds()), ("n", limit));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        var rows = new List<(string, string)>();
        while (await r.ReadAsync(ct)) rows.Add((r.GetString(0), r.GetString(1)));
        return rows;
    }
}

/// <summary>The media projection (a cluster singleton on a projections node): events tagged <c>media</c> into <see cref="MediaReadModel"/>.</summary>
public static class MediaProjection
{
    /// <param name="repair">Late-commit repair (PostgreSQL; its prefix <c>media|</c>), or none.</param>
    public static Props PropsFor(MediaReadModel model, ProjectionSettings settings, TagRepair? repair = null) =>
        TagProjection.PropsFor(MediaReadModel.ProjectionName, MediaActor.KindTag, settings, () => model.LoadOffsetAsync(), list => model.WriteAsync(list),
            repair);
}
