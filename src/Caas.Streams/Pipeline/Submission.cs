using System.Diagnostics;
using Caas.Actors.Conversations;
using Caas.Actors.Tenants;

namespace Caas.Streams.Pipeline;

/// <summary>
/// A message travelling the graph with what the stages learned about it. A stage that decides the outcome (a
/// rejection, a repeat) completes it, and the graph drops it from the flow.
/// </summary>
public sealed class Submission(IngestMessage message)
{
    private readonly TaskCompletionSource<IngestOutcome> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The message; the attach stage replaces its content with the resolved attachment.</summary>
    public IngestMessage Message { get; set; } = message;
    public long StartedAt { get; } = Stopwatch.GetTimestamp();
    public string MessageId { get; set; } = message.MessageId ?? Caas.Actors.Common.Ids.NewMessageId();
    public TenantSettingsState Tenant { get; set; } = TenantSettingsState.Default;
    public MessageEnrichment? Enrichment { get; set; }

    /// <summary>The content and enrichment sealed by the seal stage, carried to the entity on the post (null without a vault).</summary>
    public Caas.Actors.Privacy.SealedContent? Sealed { get; set; }

    /// <summary>The entity's acknowledgement of a new message, answered once its id is recorded as taken.</summary>
    public MessageAck? Ack { get; set; }

    public Task<IngestOutcome> Outcome => _outcome.Task;
    public bool IsDone => _outcome.Task.IsCompleted;

    public void Complete(IngestOutcome outcome) => _outcome.TrySetResult(outcome);

    public TimeSpan Elapsed => Stopwatch.GetElapsedTime(StartedAt);
}
