using Caas.Actors.Common;

namespace Caas.Actors.Media;

public interface IMediaEvent : IDomainEvent, ICaasMessage;

/// <summary>A file's bytes are stored and verified: everything known of it.</summary>
public sealed record MediaUploaded(EventMeta Meta, MediaFile File) : IMediaEvent;

/// <summary>Soft-deleted: downloads answer 404 from now on; the bytes are purged from the store.
/// <see cref="Erasure"/>: part of the owner's erasure (absent from the stored form otherwise, as before it existed).</summary>
public sealed record MediaDeleted(EventMeta Meta, string FileId, string ConversationId,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    bool Erasure = false) : IMediaEvent;
