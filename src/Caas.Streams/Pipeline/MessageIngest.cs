using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Streams.Pipeline;

/// <summary>Where a message entered CAAS. Bulk and Kafka are trusted operator paths, exempt from the per-user rate.</summary>
public enum IngestSource
{
    Rest,
    Hub,
    Bulk,
    Kafka,
}

/// <summary>A message as it enters the pipeline, from any source; tenant and sender are already authenticated.</summary>
public sealed record IngestMessage(string TenantId, string ConversationId, string SenderId, string? MessageId,
    MessageContent Content, IngestSource Source)
{
    public bool ExemptFromRateLimit => Source is IngestSource.Bulk or IngestSource.Kafka;

    /// <summary>Stored only after this message id of the same conversation (<see cref="PostMessage.AfterMessageId"/>; Kafka's lanes).</summary>
    public string? AfterMessageId { get; init; }
}

/// <summary>What became of a message: persisted (with its acknowledgement; a repeat answers the original) or rejected.</summary>
public abstract record IngestOutcome;

public sealed record Persisted(MessageAck Ack) : IngestOutcome;

public sealed record Rejected(Rejection Rejection) : IngestOutcome;

/// <summary>
/// The one way into the message pipeline: REST, the hub, bulk NDJSON and Kafka all submit here, and get an outcome
/// only once the message is in the journal (or refused with a code).
/// </summary>
public interface IMessageIngest
{
    Task<IngestOutcome> SubmitAsync(IngestMessage message, CancellationToken ct = default);
}
