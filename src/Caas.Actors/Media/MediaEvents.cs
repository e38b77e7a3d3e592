using Caas.Actors.Common;

namespace Caas.Actors.Media;

public interface IMediaEvent : IDomainEvent, ICaasMessage;

/// <summary>A file's bytes are stored and verified: everything known of it.</summary>
public sealed record MediaUploaded(EventMeta Meta, MediaFile File) : IMediaEvent;

/// <summary>Soft-deleted: downloads answer 404 from now on; the bytes are purged from the store.
/// <see cref="Erasure"/>: part of the owner's erasure (events stored before it existed read as false).</summary>
public sealed record MediaDeleted(EventMeta Meta, string FileId, string ConversationId, bool Erasure = false) : IMediaEvent;
