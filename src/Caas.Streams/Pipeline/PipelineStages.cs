using Akka;
using Akka.Actor;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Sessions;
using Caas.Actors.Tenants;
using Caas.Streams.ReadModel;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Caas.Streams.Pipeline;

/// <summary>
/// The stages of the message graph, each a small named <see cref="Flow"/>. A stage that decides a message's fate
/// (rejection, repeat) completes its <see cref="Submission"/>, and the message leaves the flow there.
/// </summary>
public sealed class PipelineStages(
    IActorRef conversations,
    IActorRef sessions,
    Func<string, CancellationToken, Task<TenantSettingsState>> tenantSettings,
    MessageIdClaims claims,
    ReadModelQueries queries,
    EnrichStage enrich,
    DedupeWindow window,
    PipelineSettings settings,
    ILogger logger)
{
    private static readonly Counter Stage = Metrics.CreateCounter("caas_pipeline_messages_total",
        "Messages leaving a pipeline stage, by outcome.", "stage", "outcome");
    private static readonly Histogram Latency = Metrics.CreateHistogram("caas_pipeline_ingest_to_persisted_seconds",
        "From ingest to the entity's acknowledgement.", new HistogramConfiguration
        {
            LabelNames = ["source"],
            Buckets = Histogram.ExponentialBuckets(0.001, 2, 14),
        });

    /// <summary>
    /// Recall: the sender's own retry of a message acknowledged within the dedupe window (same tenant, conversation
    /// and content) is answered at once. Anyone else's use of the id goes the full way.
    /// </summary>
    public Flow<Submission, Submission, NotUsed> Recall() => Decide("recall", s =>
    {
        if (window.TryRecall(s.Message, out var ack)) s.Complete(new Persisted(ack));
        return Task.CompletedTask;
    });

    /// <summary>Validate: structure and size against the tenant's settings.</summary>
    public Flow<Submission, Submission, NotUsed> Validate() => Decide("validate", async s =>
    {
        s.Tenant = await tenantSettings(s.Message.TenantId, CancellationToken.None);
        if (Validation.Check(s.Message, s.Tenant) is { } invalid) await RefuseAsync(s, invalid);
    });

    /// <summary>
    /// Admit: the conversation entity says whether the sender may post here now (exists, member, not banned or muted;
    /// the id not another's), before the message costs a claim, a rate slot or enrichment. The sender's own repeat is
    /// answered with the original acknowledgement, even once banned or gone. The entity decides again at persist.
    /// </summary>
    public Flow<Submission, Submission, NotUsed> Admit() => Decide("admit", async s =>
    {
        var m = s.Message;
        var reply = await AskAsync(conversations, new AdmitMessage(m.TenantId, m.ConversationId, m.SenderId, m.MessageId, s.Tenant.IdempotencyHorizon));
        switch (reply)
        {
            case MessageAdmitted:
                return;
            case MessageAck { Repeat: true } repeat:
                s.Complete(new Persisted(repeat with { Content = await OriginalContentAsync(s) }));
                return;
            case Rejection { Code: ErrorCodes.Overloaded } r:
                s.Complete(new Rejected(r));
                return;
            case Rejection r:
                // Beyond the entity's window of recent ids only the permanent claim knows the sender's own message
                // (a banned or removed author's; anyone else is refused without it).
                if (m.MessageId is not null && r.Code is ErrorCodes.Banned or ErrorCodes.NotFound
                    && await claims.FindAsync(m.TenantId, m.MessageId) is { Persisted: true } claim
                    && OwnRepeat(s, claim))
                    s.Complete(await RepeatOfClaimAsync(s, claim));
                else
                    await RefuseAsync(s, r);
                return;
            default:
                s.Complete(new Rejected(new Rejection(ErrorCodes.Overloaded, "No answer from the conversation; retry with the same message_id.",
                    RetryAfterSeconds: 1)));
                return;
        }
    });

    /// <summary>
    /// Claim: an admitted message's client id is claimed tenant-wide. An id held by another conversation, or by a
    /// stored message of another sender or past the horizon, is a conflict; the sender's own stored message is
    /// answered with its acknowledgement (a retry takes no rate slot); the entity decides the rest.
    /// </summary>
    public Flow<Submission, Submission, NotUsed> Claim() => Decide("claim", async s =>
    {
        if (s.Message.MessageId is null) return;
        var (claim, fresh) = await claims.ClaimAsync(s.Message.TenantId, s.MessageId, s.Message.ConversationId);
        if (fresh) return;
        if (claim.ConversationId != s.Message.ConversationId)
            await RefuseAsync(s, new Rejection(ErrorCodes.MessageIdConflict, "This message_id is already used in another conversation."));
        else if (claim.Persisted)
        {
            if (OwnRepeat(s, claim)) s.Complete(await RepeatOfClaimAsync(s, claim));
            else await RefuseAsync(s, UsedConflict);
        }
        else if (await queries.MessageByIdAsync(s.Message.TenantId, s.MessageId) is { } known)
        {
            // A pending claim whose message is stored (its claim predates permanent rows, or a crash came in between).
            await RecordAsync(s.Message.TenantId, known.MessageId, known.ConversationId, known.Seq, known.SenderId, known.CreatedAt);
            var outcome = Repeat(s, known);
            if (outcome is Rejected { Rejection: var conflict }) await RefuseAsync(s, conflict);
            else s.Complete(outcome);
        }
    });

    private static readonly Rejection UsedConflict = new(ErrorCodes.MessageIdConflict, "This message_id was already used for another message.");

    private static bool OwnRepeat(Submission s, MessageIdClaim claim) =>
        claim.ConversationId == s.Message.ConversationId && claim.SenderId == s.Message.SenderId
        && claim.CreatedAt + s.Tenant.IdempotencyHorizon >= DateTimeOffset.UtcNow;

    private async Task<IngestOutcome> RepeatOfClaimAsync(Submission s, MessageIdClaim claim) =>
        new Persisted(new MessageAck(s.MessageId, claim.ConversationId, claim.Seq!.Value, claim.SenderId!, await OriginalContentAsync(s),
            claim.CreatedAt!.Value, Repeat: true));

    /// <summary>
    /// A message id the read model already holds: within the idempotency horizon, and from the same sender, a retry
    /// answered with the original acknowledgement; otherwise the id cannot be used again.
    /// </summary>
    private static IngestOutcome Repeat(Submission s, MessageRow known)
    {
        if (known.SenderId != s.Message.SenderId || known.ConversationId != s.Message.ConversationId
            || known.CreatedAt + s.Tenant.IdempotencyHorizon < DateTimeOffset.UtcNow)
            return new Rejected(UsedConflict);
        var content = known.Deleted ? null : new MessageContent(known.ContentType ?? "text", known.Text);
        return new Persisted(new MessageAck(known.MessageId, known.ConversationId, known.Seq, known.SenderId, content, known.CreatedAt, Repeat: true));
    }

    /// <summary>
    /// A refused attempt counts against the sender's own budget of rejected attempts (apart from the message rate);
    /// past it the answer is 429 instead. Bulk and Kafka, trusted operator paths, are exempt.
    /// </summary>
    private async Task RefuseAsync(Submission s, Rejection rejection)
    {
        if (!s.Message.ExemptFromRateLimit && Ids.IsValid(s.Message.SenderId)
            && await AskAsync(sessions, new CountRejectedAttempt(s.Message.TenantId, s.Message.SenderId, s.Tenant.RejectedAttemptsPerMinute))
                is Rejection { Code: ErrorCodes.RateLimited } limited)
        {
            s.Complete(new Rejected(limited));
            return;
        }
        s.Complete(new Rejected(rejection));
    }

    /// <summary>The pipeline's leases of its senders' message slots (see <see cref="RateLeases"/>).</summary>
    public required RateLeases Rates { private get; init; }

    /// <summary>
    /// Rate: the sender's sliding minute and hour windows live in its UserSession entity, which leases slots to this
    /// pipeline in blocks; a message not accepted gives its slot back. Bulk and Kafka are exempt.
    /// </summary>
    public Flow<Submission, Submission, NotUsed> RateLimit() => Decide("rate", async s =>
    {
        if (s.Message.ExemptFromRateLimit) return;
        if (await Rates.TakeAsync(s) is { } limited) s.Complete(new Rejected(limited));
    });

    /// <summary>Records a stored message's id as permanently taken; a failure is logged, and the purge repairs it later.</summary>
    private async Task RecordAsync(string tenantId, string messageId, string conversationId, long seq, string senderId, DateTimeOffset createdAt)
    {
        try
        {
            if (!await claims.RecordAsync(tenantId, messageId, conversationId, seq, senderId, createdAt))
                logger.LogError("Message id {MessageId} of {Tenant} was stored in {Conversation} while another conversation holds its claim",
                    messageId, tenantId, conversationId);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Recording the claim of message {MessageId} of {Tenant} failed; the claims purge repairs it", messageId, tenantId);
        }
    }

    /// <summary>
    /// Purges, for every tenant, the message-id claims older than its idempotency horizon that never led to a message.
    /// </summary>
    public async Task<int> PurgeStaleClaimsAsync(CancellationToken ct = default)
    {
        var purged = 0;
        try
        {
            foreach (var tenant in await claims.TenantsWithPendingClaimsAsync(ct))
            {
                var horizon = (await tenantSettings(tenant, ct)).IdempotencyHorizon;
                purged += await claims.PurgeAsync(tenant, horizon, ct);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning(e, "Purging stale message-id claims failed; the next round tries again");
        }
        return purged;
    }

    /// <summary>
    /// Enrich: every enricher at once under the time budget; a missing one marks the message degraded. Dates resolve
    /// in the sender's time zone (their profile), phone numbers in the tenant's default region.
    /// </summary>
    public Flow<Submission, Submission, NotUsed> Enrich() => Decide("enrich", async s =>
    {
        if (enrich.Names.Count == 0) return;
        var zone = await TimeZoneOfAsync(s.Message.TenantId, s.Message.SenderId);
        s.Enrichment = await enrich.EnrichAsync(s.Message, zone, s.Tenant.DefaultPhoneRegion);
    });

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string Zone, long Until)> _zones = new();

    /// <summary>The sender's time zone, cached for a minute (a profile change applies within that).</summary>
    private async Task<string> TimeZoneOfAsync(string tenant, string user)
    {
        var key = tenant + "|" + user;
        if (_zones.TryGetValue(key, out var cached) && cached.Until > Environment.TickCount64) return cached.Zone;
        var zone = await AskAsync(sessions, new GetProfile(tenant, user)) is ProfileView p ? p.Profile.TimeZone : "UTC";
        if (_zones.Count > 100_000) _zones.Clear();
        _zones[key] = (zone, Environment.TickCount64 + 60_000);
        return zone;
    }

    /// <summary>
    /// Order and persist: conversations hash into a fixed number of lanes; a lane hands its messages to the
    /// entities in arrival order, so each conversation is FIFO while many proceed in parallel. The entity persists,
    /// assigns the next sequence number and only then acknowledges.
    /// </summary>
    public Flow<Submission, Submission, NotUsed> OrderAndPersist() => Flow.FromGraph(GraphDsl.Create(b =>
    {
        var lanes = settings.Lanes;
        var partition = b.Add(new Partition<Submission>(lanes, s => Lane(s.Message, lanes)));
        var merge = b.Add(new Merge<Submission>(lanes));
        for (var i = 0; i < lanes; i++)
            b.From(partition.Out(i)).Via(Decide("persist", PersistAsync, settings.PerLaneInFlight)).To(merge.In(i));
        return new FlowShape<Submission, Submission>(partition.In, merge.Out);
    }));

    public static int Lane(IngestMessage m, int lanes) =>
        (int)((uint)StringComparer.Ordinal.GetHashCode(m.TenantId + "|" + m.ConversationId) % (uint)lanes);

    private async Task PersistAsync(Submission s)
    {
        var m = s.Message;
        var reply = await AskAsync(conversations,
            new PostMessage(m.TenantId, m.ConversationId, m.SenderId, s.MessageId, m.Content, s.Tenant.IdempotencyHorizon, s.Enrichment));
        switch (reply)
        {
            case MessageAck { Repeat: true } repeat:
                s.Complete(new Persisted(repeat with { Content = await OriginalContentAsync(s) }));
                break;
            case MessageAck ack:
                window.Remember(m.TenantId, ack, m.Content);
                await RecordAsync(m.TenantId, ack.MessageId, ack.ConversationId, ack.Seq, ack.SenderId, ack.CreatedAt);
                Latency.WithLabels(m.Source.ToString()).Observe(s.Elapsed.TotalSeconds);
                s.Complete(new Persisted(ack));
                break;
            case Rejection r:
                s.Complete(new Rejected(r));
                break;
        }
    }

    /// <summary>A repeat answers with the original message; the entity keeps no content, the read model does.</summary>
    private async Task<MessageContent?> OriginalContentAsync(Submission s)
    {
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(2);
        while (true)
        {
            var row = await queries.MessageByIdAsync(s.Message.TenantId, s.MessageId);
            if (row is not null) return row.Deleted ? null : new MessageContent(row.ContentType ?? "text", row.Text);
            if (DateTimeOffset.UtcNow >= deadline) return s.Message.Content;
            await Task.Delay(25);
        }
    }

    /// <summary>
    /// A stage: runs <paramref name="step"/> on each open submission (order kept), counts outcomes, and lets only
    /// the undecided go on. An unexpected failure decides that one message (overloaded: retry is safe) and never
    /// stops the graph.
    /// </summary>
    private Flow<Submission, Submission, NotUsed> Decide(string name, Func<Submission, Task> step, int? parallelism = null) =>
        Flow.Create<Submission>()
            .SelectAsync(parallelism ?? settings.Parallelism, async s =>
            {
                if (s.IsDone) return s;
                try
                {
                    await step(s);
                }
                catch (Exception e) when (StoreBreaker.IsOutage(e))
                {
                    s.Complete(new Rejected(new Rejection(ErrorCodes.Unavailable, "The database is unavailable; retry with the same message_id.",
                        RetryAfterSeconds: (e as StoreUnavailableException)?.RetryAfter.TotalSeconds ?? 2)));
                }
                catch (Exception e)
                {
                    logger.LogWarning(e, "Pipeline stage {Stage} failed on a message of {Tenant}/{Conversation}; the sender may retry",
                        name, s.Message.TenantId, s.Message.ConversationId);
                    s.Complete(new Rejected(new Rejection(ErrorCodes.Overloaded, "The message could not be processed now; retry with the same message_id.",
                        RetryAfterSeconds: 1)));
                }
                Stage.WithLabels(name, s.IsDone ? OutcomeName(s) : "passed").Inc();
                return s;
            })
            .Where(s => !s.IsDone)
            .Named(name);

    private static string OutcomeName(Submission s) => s.Outcome.Result switch
    {
        Persisted { Ack.Repeat: true } => "repeat",
        Persisted => "persisted",
        Rejected r => r.Rejection.Code,
        _ => "other",
    };

    private async Task<object> AskAsync(IActorRef region, object command)
    {
        try
        {
            return await region.Ask<object>(command, settings.AskTimeout);
        }
        catch (AskTimeoutException)
        {
            return new Rejection(ErrorCodes.Overloaded, "The cluster did not answer in time; retry with the same message_id.", RetryAfterSeconds: 1);
        }
    }
}

/// <summary>Structure and size; the membership and moderation checks are the entity's.</summary>
public static class Validation
{
    public static Rejection? Check(IngestMessage m, TenantSettingsState tenant)
    {
        var errors = new Dictionary<string, string[]>();
        if (!Ids.IsValid(m.ConversationId)) errors["conversation_id"] = ["A valid conversation id is required."];
        if (!Ids.IsValid(m.SenderId)) errors["sender_id"] = ["A valid user id is required."];
        if (m.Content.Type != "text") errors["content.type"] = ["Only \"text\" is supported."];
        else if (string.IsNullOrWhiteSpace(m.Content.Text)) errors["content.text"] = ["Must not be empty."];
        if (m.MessageId is not null && !Ids.IsValid(m.MessageId)) errors["message_id"] = ["1 to 128 of A-Z a-z 0-9 _ . @ -"];
        if (errors.Count > 0) return new Rejection(ErrorCodes.ValidationFailed, "The message is not valid.", errors);
        if (m.Content.Text!.Length > tenant.MaxMessageChars)
            return new Rejection(ErrorCodes.PayloadTooLarge, $"A message is at most {tenant.MaxMessageChars} characters.");
        return null;
    }
}
