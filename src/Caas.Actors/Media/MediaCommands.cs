using System.Text.Json.Serialization;
using Caas.Actors.Common;

namespace Caas.Actors.Media;

/// <summary>A command for one file's entity (<c>tenant|file id</c>).</summary>
public interface IMediaCommand : IEntityMessage, ICaasMessage
{
    string TenantId { get; }

    string FileId { get; }
}

public abstract record MediaCommand(string TenantId, string FileId) : IMediaCommand
{
    [JsonIgnore]
    public string EntityId => Ids.EntityId(TenantId, FileId);
}

/// <summary>Records a file whose bytes are stored and verified (a single upload, or a completed resumable one).</summary>
public sealed record RegisterMedia(string TenantId, string FileId, string ActorId, string ConversationId, string FileName, string ContentType,
    long Size, string Sha256, int? Width = null, int? Height = null, long? DurationMs = null) : MediaCommand(TenantId, FileId);

/// <summary>A soft delete by the owner, or by a moderator (or above) of the file's conversation.
/// <see cref="Erasure"/>: the owner's erasure (GDPR), carried to the event so media.events tells it apart.</summary>
public sealed record DeleteMedia(string TenantId, string FileId, string ActorId, bool ActorModerates, bool Erasure = false)
    : MediaCommand(TenantId, FileId);

/// <summary>Records what the thumbnail worker made of a file (once: a file already processed answers its metadata).</summary>
public sealed record RecordThumbnail(string TenantId, string FileId, MediaThumbnail? Thumbnail, int? Width, int? Height, long? DurationMs,
    string? Skipped) : MediaCommand(TenantId, FileId);

/// <summary>Records that a deleted file's bytes are purged (once; a file not deleted is a conflict).</summary>
public sealed record RecordPurge(string TenantId, string FileId) : MediaCommand(TenantId, FileId);

/// <summary>The file's metadata; a deleted file is not found unless <see cref="IncludeDeleted"/>.</summary>
public sealed record GetMedia(string TenantId, string FileId, bool IncludeDeleted = false) : MediaCommand(TenantId, FileId);
