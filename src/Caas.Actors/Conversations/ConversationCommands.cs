using System.Collections.Immutable;
using Caas.Actors.Common;

namespace Caas.Actors.Conversations;

public static class ConversationTypes
{
    public const string Direct = "direct";
    public const string Group = "group";
    public const string Channel = "channel";

    public static bool IsKnown(string? type) => type is Direct or Group or Channel;
}

/// <summary>
/// A message body: <c>text</c>, or an attachment (<c>image</c>, <c>file</c>, <c>audio</c>, <c>video</c>) whose
/// <see cref="Text"/> is its optional caption and whose <see cref="Attachment"/> names the file (and, once the pipeline
/// resolved it, carries the file's metadata). The whole body, caption and attachment included, is sealed under the
/// author's data key like text.
/// </summary>
public sealed record MessageContent(string Type, string? Text)
{
    /// <summary>The file of an attachment message; null for text (and then not written, so text bodies read as before).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public MessageAttachment? Attachment { get; init; }

    public const string TextType = "text";

    /// <summary>The content types that carry a file.</summary>
    public static bool IsAttachmentType(string? type) => type is "image" or "file" or "audio" or "video";

    /// <summary>An attachment message (its type names a file kind).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool IsAttachment => IsAttachmentType(Type);
}

/// <summary>The file a message carries: its media id and (once resolved from the Media entity) its metadata.</summary>
public sealed record MessageAttachment(string MediaId, AttachedMedia? Media = null);

/// <summary>A file's metadata as the message shows it, copied from the Media entity when the message was sent.</summary>
public sealed record AttachedMedia(string FileName, string ContentType, long Size, string Sha256, int? Width, int? Height, long? DurationMs,
    string? ThumbnailUrl);

public sealed record InitialMember(string UserId, Role Role);

/// <summary>One enricher's result on a message, named and versioned so history can be re-enriched later.</summary>
public sealed record EnricherOutput(string Name, string Version, System.Text.Json.JsonElement Data);

/// <summary>
/// What the pipeline's enrich stage found, stored with the message event. <see cref="Degraded"/> names the enrichers
/// that were skipped (breaker open, over the time budget, failed): the message went on without them.
/// </summary>
public sealed record MessageEnrichment(ImmutableArray<EnricherOutput> Results, ImmutableArray<string> Degraded)
{
    /// <summary>
    /// True on a message stored above the pipeline's high-water mark, before any enricher ran: its results come later
    /// (<see cref="MessageEnriched"/>).
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public bool Deferred { get; init; }

    /// <summary>What a message stored with its enrichment deferred carries until its results are recorded.</summary>
    public static MessageEnrichment DeferredForLater { get; } = new([], []) { Deferred = true };
}

/// <summary>
/// A read whose answer is advisory, so the entity may give it out of turn: while a write is in flight it is answered at
/// once from the state the journal holds, instead of after that write and the commands queued behind it
/// (<see cref="AdmitMessage"/>: the entity decides again when the message is written). Other reads keep their turn, so
/// their answer reflects every command sent to the entity before them.
/// </summary>
public interface IAdvisoryRead : IConversationCommand;

/// <summary>Every conversation command names its tenant, its conversation and the acting user.</summary>
public interface IConversationCommand : IEntityMessage, ICaasMessage
{
    string TenantId { get; }
    string ConversationId { get; }
    string ActorId { get; }
}

public abstract record ConversationCommand(string TenantId, string ConversationId, string ActorId) : IConversationCommand
{
    [System.Text.Json.Serialization.JsonIgnore]
    public string EntityId => Ids.EntityId(TenantId, ConversationId);
}

public sealed record CreateConversation(string TenantId, string ConversationId, string ActorId, string Type, string? Title,
    ImmutableArray<InitialMember> Members) : ConversationCommand(TenantId, ConversationId, ActorId);

public sealed record UpdateConversation(string TenantId, string ConversationId, string ActorId, string? Title,
    ImmutableDictionary<string, string>? Metadata) : ConversationCommand(TenantId, ConversationId, ActorId);

public sealed record DeleteConversation(string TenantId, string ConversationId, string ActorId)
    : ConversationCommand(TenantId, ConversationId, ActorId);

public sealed record AddMember(string TenantId, string ConversationId, string ActorId, string UserId, Role Role)
    : ConversationCommand(TenantId, ConversationId, ActorId);

/// <summary>Removes a member; when the actor is the member, it is leaving.</summary>
public sealed record RemoveMember(string TenantId, string ConversationId, string ActorId, string UserId)
    : ConversationCommand(TenantId, ConversationId, ActorId);

public sealed record ChangeRole(string TenantId, string ConversationId, string ActorId, string UserId, Role Role)
    : ConversationCommand(TenantId, ConversationId, ActorId);

/// <summary>
/// Posts a message. <see cref="IdempotencyHorizon"/> comes from the tenant's settings: a repeat of a
/// <see cref="MessageId"/> inside it is answered with the original acknowledgement.
/// </summary>
public sealed record PostMessage(string TenantId, string ConversationId, string ActorId, string MessageId,
    MessageContent Content, TimeSpan IdempotencyHorizon, MessageEnrichment? Enrichment = null)
    : ConversationCommand(TenantId, ConversationId, ActorId)
{
    /// <summary>
    /// <see cref="Content"/> and <see cref="Enrichment"/> already sealed (the pipeline's seal stage,
    /// <see cref="Privacy.ContentSealing.SealPostAsync"/>): the entity stores this ciphertext and touches no key. Null
    /// (no vault, or a sender that does not seal) leaves the sealing to the entity.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public Privacy.SealedContent? Sealed { get; init; }

    /// <summary>
    /// Kafka's pipelined ingest: the message id of the record before this one in its conversation's lane. The entity
    /// stores this message only once that one is stored (in its window of ids), and otherwise refuses it, retryably and
    /// writing nothing, with <see cref="OutOfOrder"/>; so records of a conversation can travel together and still be
    /// stored in their order when one before them is refused and retried. Null (every other source): no precondition.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? AfterMessageId { get; init; }

    /// <summary>
    /// The refusal of a post whose <see cref="AfterMessageId"/> is not stored yet. Internal to the Kafka ingest, which
    /// then waits for that record and submits this one again without the precondition: never a client's answer.
    /// </summary>
    public const string OutOfOrder = "out_of_order";
}

/// <summary>
/// Asks, before a message costs anything (enrichment, an id claim), whether <see cref="ActorId"/> may post it here
/// now: answered <see cref="MessageAdmitted"/>, the original acknowledgement of the sender's own repeat, or the
/// rejection <see cref="PostMessage"/> would get. The entity decides again when the message is persisted.
/// </summary>
public sealed record AdmitMessage(string TenantId, string ConversationId, string ActorId, string? MessageId, TimeSpan IdempotencyHorizon)
    : ConversationCommand(TenantId, ConversationId, ActorId), IAdvisoryRead;

/// <summary>
/// Records the enrichment of a message stored with its enrichment deferred (sent by the enrichment projection;
/// <see cref="ConversationCommand.ActorId"/> is the message's author, whose key seals it). Idempotent: a message whose
/// enrichment is already recorded, or that was deleted, is answered <see cref="Done"/> without a write.
/// </summary>
public sealed record RecordEnrichment(string TenantId, string ConversationId, string ActorId, long Seq, string MessageId,
    MessageEnrichment Enrichment) : ConversationCommand(TenantId, ConversationId, ActorId)
{
    /// <summary>
    /// <see cref="Enrichment"/> already sealed by the sender (<see cref="Privacy.ContentSealing.SealEnrichmentAsync"/>);
    /// null leaves the sealing to the entity.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public Privacy.SealedContent? Sealed { get; init; }
}

public sealed record EditMessage(string TenantId, string ConversationId, string ActorId, long Seq, MessageContent Content)
    : ConversationCommand(TenantId, ConversationId, ActorId);

public sealed record DeleteMessage(string TenantId, string ConversationId, string ActorId, long Seq)
    : ConversationCommand(TenantId, ConversationId, ActorId);

public sealed record AddReaction(string TenantId, string ConversationId, string ActorId, long Seq, string Reaction)
    : ConversationCommand(TenantId, ConversationId, ActorId);

public sealed record RemoveReaction(string TenantId, string ConversationId, string ActorId, long Seq, string Reaction)
    : ConversationCommand(TenantId, ConversationId, ActorId);

[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<ModerationAction>))]
public enum ModerationAction
{
    Ban,
    Unban,
    Mute,
    Unmute,
    Kick,
}

public sealed record Moderate(string TenantId, string ConversationId, string ActorId, ModerationAction Action, string UserId,
    TimeSpan? Duration, string? Reason) : ConversationCommand(TenantId, ConversationId, ActorId);

/// <summary>Reads the conversation as the actor may see it (members only).</summary>
public sealed record GetConversation(string TenantId, string ConversationId, string ActorId)
    : ConversationCommand(TenantId, ConversationId, ActorId);

/// <summary>
/// Checks whether the actor may read and answers the last assigned sequence number, so the edge can wait
/// for the read model to catch up (read-your-writes).
/// </summary>
public sealed record GetReadAccess(string TenantId, string ConversationId, string ActorId)
    : ConversationCommand(TenantId, ConversationId, ActorId);

/// <summary>
/// The sequence number of a message the actor wrote, by its id (answered <see cref="OwnMessage"/>), while the entity
/// still remembers it: read-your-writes waits only for the caller's own messages. Anything else is not_found.
/// </summary>
public sealed record GetOwnMessage(string TenantId, string ConversationId, string ActorId, string MessageId)
    : ConversationCommand(TenantId, ConversationId, ActorId);
