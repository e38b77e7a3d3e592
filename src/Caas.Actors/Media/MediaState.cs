using Caas.Actors.Common;

namespace Caas.Actors.Media;

/// <summary>
/// A file's metadata: who sent it where, what it is (the sniffed content type, never the client's claim), its size and
/// SHA-256 (of the original bytes, served byte-exact), dimensions or duration where known, and its state.
/// </summary>
public sealed record MediaFile(string FileId, string TenantId, string ConversationId, string OwnerId, string FileName, string ContentType,
    long Size, string Sha256, int? Width, int? Height, long? DurationMs, DateTimeOffset CreatedAt, DateTimeOffset? DeletedAt = null,
    string? DeletedBy = null, MediaThumbnail? Thumbnail = null, string? ThumbnailSkipped = null, DateTimeOffset? PurgedAt = null) : ICaasMessage
{
    public const string Ready = "ready";
    public const string Deleted = "deleted";

    [System.Text.Json.Serialization.JsonIgnore]
    public string State => DeletedAt is null ? Ready : Deleted;

    /// <summary>Whether the thumbnail worker has recorded its outcome (a thumbnail, or why there is none).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool Processed => Thumbnail is not null || ThumbnailSkipped is not null;

    /// <summary>image, video, audio or file: the gallery's filter and a message attachment's type.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string Kind => KindOf(ContentType);

    public static string KindOf(string contentType) => contentType.Split('/')[0] switch
    {
        "image" => "image",
        "video" => "video",
        "audio" => "audio",
        _ => "file",
    };
}

/// <summary>A file's thumbnail (an image's, or a video's poster frame): re-encoded, no metadata, stored beside the original.</summary>
public sealed record MediaThumbnail(string ContentType, int Width, int Height, long Size) : ICaasMessage;

/// <summary>The entity's state: nothing yet, or the file.</summary>
public sealed record MediaState(MediaFile? File) : ICaasMessage
{
    public static MediaState Empty { get; } = new((MediaFile?)null);

    public MediaState Apply(IMediaEvent e) => e switch
    {
        MediaUploaded u => new MediaState(u.File),
        MediaDeleted d when File is not null => new MediaState(File with { DeletedAt = d.Meta.OccurredAt, DeletedBy = d.Meta.ActorId }),
        MediaPurged p when File is not null => new MediaState(File with { PurgedAt = p.Meta.OccurredAt }),
        MediaProcessed p when File is not null => new MediaState(File with
        {
            Thumbnail = p.Thumbnail,
            ThumbnailSkipped = p.Thumbnail is null ? p.Skipped ?? "not_applicable" : null,
            Width = p.Width ?? File.Width,
            Height = p.Height ?? File.Height,
            DurationMs = p.DurationMs ?? File.DurationMs,
        }),
        _ => this,
    };
}

public static class MediaDecider
{
    /// <summary>The event to persist (or none) and the reply.</summary>
    public static (IMediaEvent? Event, object Reply) Decide(MediaState s, IMediaCommand command, DateTimeOffset now)
    {
        switch (command)
        {
            case GetMedia g:
                return s.File is { } f && (f.DeletedAt is null || g.IncludeDeleted) ? (null, f) : (null, Rejection.NotFound("file"));
            case RegisterMedia r:
                if (s.File is { } existing)
                {
                    // Completing an upload again answers the same metadata; another registration under this id is a conflict.
                    return existing.Sha256 == r.Sha256 && existing.Size == r.Size && existing.OwnerId == r.ActorId && existing.DeletedAt is null
                        ? (null, existing)
                        : (null, Rejection.Conflict("This file id is taken."));
                }
                if (r.Size <= 0) return (null, Rejection.Invalid("size", "A file has at least one byte."));
                var file = new MediaFile(r.FileId, r.TenantId, r.ConversationId, r.ActorId, r.FileName, r.ContentType, r.Size, r.Sha256,
                    r.Width, r.Height, r.DurationMs, now);
                return (new MediaUploaded(new EventMeta(r.TenantId, r.ActorId, now), file), file);
            case DeleteMedia d:
                if (s.File is not { DeletedAt: null } current) return (null, Rejection.NotFound("file"));
                if (current.OwnerId != d.ActorId && !d.ActorModerates)
                    return (null, Rejection.Forbidden("Only the file's owner or a moderator of its conversation deletes it."));
                return (new MediaDeleted(new EventMeta(d.TenantId, d.ActorId, now), current.FileId, current.ConversationId, d.Erasure),
                    new Done("deleted"));
            case RecordPurge p:
                if (s.File is not { } gone) return (null, Rejection.NotFound("file"));
                if (gone.DeletedAt is null) return (null, Rejection.Conflict("The file is not deleted."));
                if (gone.PurgedAt is not null) return (null, gone);
                var purged = new MediaPurged(new EventMeta(p.TenantId, "system", now), gone.FileId);
                return (purged, s.Apply(purged).File!);
            case RecordThumbnail t:
                if (s.File is not { DeletedAt: null } live) return (null, Rejection.NotFound("file"));
                if (live.Processed) return (null, live);
                var processed = new MediaProcessed(new EventMeta(t.TenantId, "system", now), live.FileId, t.Thumbnail, t.Width, t.Height,
                    t.DurationMs, t.Thumbnail is null ? t.Skipped ?? "not_applicable" : null);
                return (processed, s.Apply(processed).File!);
            default:
                return (null, Rejection.Invalid("command", "Unknown command."));
        }
    }
}
