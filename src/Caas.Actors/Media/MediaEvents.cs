using Caas.Actors.Common;

namespace Caas.Actors.Media;

public interface IMediaEvent : IDomainEvent, ICaasMessage;

/// <summary>A file's bytes are stored and verified: everything known of it.</summary>
public sealed record MediaUploaded(EventMeta Meta, MediaFile File) : IMediaEvent;

/// <summary>Soft-deleted: downloads answer 404 from now on; the bytes are purged from the store.
/// <see cref="Erasure"/>: part of the owner's erasure (events stored before it existed read as false).</summary>
public sealed record MediaDeleted(EventMeta Meta, string FileId, string ConversationId, bool Erasure = false) : IMediaEvent;

/// <summary>
/// A deleted file's bytes (and thumbnail) were purged from the store: at once, or after the tenant's retention period.
/// Recorded once; a second purge of the same file records nothing.
/// </summary>
public sealed record MediaPurged(EventMeta Meta, string FileId) : IMediaEvent;

/// <summary>
/// The file was looked at off the request path: its thumbnail (null when none could be made, with <see cref="Skipped"/>
/// saying why: <c>too_many_pixels</c>, <c>too_large</c>, <c>undecodable</c>, <c>no_ffmpeg</c>, <c>timeout</c>,
/// <c>not_applicable</c>), and the original's dimensions (as displayed, EXIF orientation applied) and duration where known.
/// </summary>
public sealed record MediaProcessed(EventMeta Meta, string FileId, MediaThumbnail? Thumbnail, int? Width, int? Height, long? DurationMs,
    string? Skipped) : IMediaEvent;
