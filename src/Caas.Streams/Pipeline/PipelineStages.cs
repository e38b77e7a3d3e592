using System.Diagnostics;
using Akka;
using Akka.Actor;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Privacy;
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
    private static readonly Histogram BatchSize = Metrics.CreateHistogram("caas_pipeline_batch_size",
        "Messages sharing one database statement, by stage.", new HistogramConfiguration
        {
            LabelNames = ["stage"],
            Buckets = Histogram.ExponentialBuckets(1, 2, 10),
        });
    private static readonly Histogram StepTime = Metrics.CreateHistogram("caas_pipeline_step_seconds",
        "Time a stage's work took for one message (one batch for the batched stages, the entity's answer for persist), " +
        "without the wait for the stage: where a message's time in the graph goes.", new HistogramConfiguration
        {
            LabelNames = ["stage"],
            Buckets = Histogram.ExponentialBuckets(0.0005, 2, 14),
        });
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

    /// <summary>Resolves attachments (<see cref="AttachmentResolver"/>); null on a host without media: attachments are refused.</summary>
    public AttachmentResolver? Attachments { private get; init; }

    /// <summary>
    /// The attachment enrichers (OCR, document text, speech) fed from the media store. With them a message with an
    /// attachment is always stored deferred: the enrichment projection reads its file and enriches it off the
    /// acknowledgement path (a voice note never holds a chat message back).
    /// </summary>
    public AttachmentEnrichment? AttachmentEnrichers { private get; init; }

    /// <summary>
    /// Attach: an admitted attachment message's file must be this tenant's and this conversation's and complete; its
    /// metadata is copied into the content (another conversation's or tenant's file 404, an upload not yet complete 409).
    /// Text passes untouched. After admit, so a non-member learns nothing about files.
    /// </summary>
    public Flow<Submission, Submission, NotUsed> Attach() => Decide("attach", async s =>
    {
        if (!s.Message.Content.IsAttachment) return;
        if (Attachments is null)
        {
            await RefuseAsync(s, Rejection.Invalid("content.type", "Attachments are not served by this node."));
            return;
        }
        switch (await Attachments.ResolveAsync(s.Message))
        {
            case MessageContent resolved:
                s.Message = s.Message with { Content = resolved };
                return;
            case Rejection r:
                await RefuseAsync(s, r);
                return;
        }
    });

    /// <summary>
    /// Claim: an admitted message's client id is claimed tenant-wide. An id held by another conversation, or by a
    /// stored message of another sender or past the horizon, is a conflict; the sender's own stored message is
    /// answered with its acknowledgement (a retry takes no rate slot); the entity decides the rest.
    /// </summary>
    /// <remarks>
    /// The claims of many messages are one statement (<see cref="MessageIdClaims.ClaimManyAsync"/>): a batch forms
    /// while the previous statements run, so under load many messages share a commit and alone one waits for nothing.
    /// </remarks>
    public Flow<Submission, Submission, NotUsed> Claim() => DecideInBatches("claim", async open =>
    {
        var claiming = open.Where(s => s.Message.MessageId is not null).ToList();
        if (claiming.Count == 0) return;
        var answers = await claims.ClaimManyAsync(
            claiming.Select(s => new ClaimRequest(s.Message.TenantId, s.MessageId, s.Message.ConversationId)).ToList());
        await Task.WhenAll(claiming.Select((s, i) => GuardAsync("claim", s, _ => AfterClaimAsync(s, answers[i]))));
    });

    private async Task AfterClaimAsync(Submission s, (MessageIdClaim? Claim, bool Fresh) answer)
    {
        if (answer.Fresh) return;
        var claim = answer.Claim ?? throw new InvalidOperationException($"The claim on {s.MessageId} vanished while it was read; retry.");
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
            await RecordAsync([new ClaimRecord(s.Message.TenantId, known.MessageId, known.ConversationId, known.Seq, known.SenderId, known.CreatedAt)]);
            var outcome = Repeat(s, known);
            if (outcome is Rejected { Rejection: var conflict }) await RefuseAsync(s, conflict);
            else s.Complete(outcome);
        }
    }

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
        var content = known.Content;
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

    /// <summary>Records stored messages' ids as permanently taken; a failure is logged, and the purge repairs it later.</summary>
    private async Task RecordAsync(IReadOnlyList<ClaimRecord> records)
    {
        try
        {
            var recorded = await claims.RecordManyAsync(records);
            for (var i = 0; i < records.Count; i++)
                if (!recorded[i])
                    logger.LogError("Message id {MessageId} of {Tenant} was stored in {Conversation} while another conversation holds its claim",
                        records[i].MessageId, records[i].TenantId, records[i].ConversationId);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Recording the claims of {Count} stored messages (the first {MessageId} of {Tenant}) failed; the claims purge repairs them",
                records.Count, records[0].MessageId, records[0].TenantId);
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
    /// <remarks>
    /// Above the high-water mark (<see cref="PipelineSettings.EnrichHighWater"/> messages inside the graph) no enricher
    /// runs: the message is stored with <c>enrichment.deferred</c> and acknowledged at once, and the enrichment
    /// projection (<see cref="EnrichmentProjection"/>) enriches it afterwards, so enrichment never caps ingest.
    /// </remarks>
    public Flow<Submission, Submission, NotUsed> Enrich() => Decide("enrich", async s =>
    {
        if (s.Message.Content.IsAttachment && AttachmentEnrichers is { Any: true })
        {
            s.Enrichment = MessageEnrichment.DeferredForLater;
            EnrichmentProjection.Deferred.Inc();
            return;
        }
        if (enrich.Names.Count == 0 || s.Message.Content.Text is null) return;
        if (settings.EnrichHighWater >= 0 && Volatile.Read(ref _inGraph) > settings.EnrichHighWater)
        {
            s.Enrichment = MessageEnrichment.DeferredForLater;
            EnrichmentProjection.Deferred.Inc();
            return;
        }
        var zone = await TimeZoneOfAsync(s.Message.TenantId, s.Message.SenderId);
        s.Enrichment = await enrich.EnrichAsync(s.Message, zone, s.Tenant.DefaultPhoneRegion);
    });

    /// <summary>The node's content vault; null (a test host, a node without one) leaves content to the entity, unsealed.</summary>
    public IContentVault? Vault { private get; init; }

    /// <summary>
    /// Seal: the message's content and inline enrichment sealed under the sender's data key, with the associated data the
    /// entity would bind (<see cref="ContentSealing.SealPostAsync"/>), and carried on the post, so the entity does no key
    /// I/O and no AES on its thread. A key not cached is loaded asynchronously; a few messages at once, order kept. A
    /// key that cannot be loaded answers that message 503 (nothing stored; the same message_id may be retried).
    /// </summary>
    public Flow<Submission, Submission, NotUsed> Seal() =>
        Vault is not { } vault
            ? Flow.Create<Submission>().Named("seal")
            : Decide("seal", async s =>
            {
                var m = s.Message;
                try
                {
                    s.Sealed = await ContentSealing.SealPostAsync(vault, m.TenantId, m.ConversationId, m.SenderId, s.MessageId, m.Content, s.Enrichment);
                }
                catch (Exception e) when (!StoreBreaker.IsOutage(e))
                {
                    logger.LogWarning(e, "Sealing a message of {Tenant}/{Conversation} failed; the sender may retry", m.TenantId, m.ConversationId);
                    s.Complete(new Rejected(CouldNotSeal));
                }
            }, settings.SealParallelism);

    private static readonly Rejection CouldNotSeal = new(ErrorCodes.Unavailable,
        "The message could not be sealed now; retry with the same message_id.", RetryAfterSeconds: 2);

    private int _inGraph;

    /// <summary>Messages inside this node's graph now (ingested, not yet answered): the measure of the high-water mark.</summary>
    public int InGraph => Volatile.Read(ref _inGraph);

    /// <summary>
    /// The graph is in a burst (above a positive high-water mark): deferred enrichment on this node should yield the
    /// cores (<see cref="PipelineSettings.EnrichYieldMax"/>).
    /// </summary>
    public bool Bursting => IsBursting(settings, Volatile.Read(ref _inGraph));

    /// <summary>A graph holding <paramref name="inGraph"/> messages is in a burst: above a positive high-water mark.</summary>
    public static bool IsBursting(PipelineSettings settings, int inGraph) => settings.EnrichHighWater > 0 && inGraph > settings.EnrichHighWater;

    internal void Entered() => Interlocked.Increment(ref _inGraph);

    internal void Left() => Interlocked.Decrement(ref _inGraph);

    /// <summary>
    /// A stored message's enrichment, run later by the enrichment projection: the same enrichers, budget and breakers as
    /// inline, the sender's time zone and the tenant's phone region, dates relative to when the message was posted.
    /// </summary>
    public async Task<MessageEnrichment?> EnrichLaterAsync(string tenantId, string conversationId, string senderId, MessageContent content,
        DateTimeOffset postedAt)
    {
        if (content.IsAttachment && content.Attachment is { } file && AttachmentEnrichers is { Any: true } attachments)
        {
            // The file's text first, then the text enrichers over caption + that text, all in the one result.
            var (results, degraded, extracted) = await attachments.EnrichAsync(tenantId, conversationId, senderId, file, postedAt);
            var text = string.Join("\n", new[] { content.Text, extracted }.Where(t => !string.IsNullOrWhiteSpace(t)));
            var ofText = text.Length == 0 ? null : await EnrichTextLaterAsync(tenantId, conversationId, senderId, content with { Text = text }, postedAt);
            return new MessageEnrichment(results.AddRange(ofText?.Results ?? []), degraded.AddRange(ofText?.Degraded ?? []));
        }
        return await EnrichTextLaterAsync(tenantId, conversationId, senderId, content, postedAt);
    }

    private async Task<MessageEnrichment?> EnrichTextLaterAsync(string tenantId, string conversationId, string senderId, MessageContent content,
        DateTimeOffset postedAt)
    {
        if (enrich.Names.Count == 0 || content.Text is null) return null;
        var tenant = await tenantSettings(tenantId, CancellationToken.None);
        var zone = await TimeZoneOfAsync(tenantId, senderId);
        return await enrich.EnrichAsync(new IngestMessage(tenantId, conversationId, senderId, null, content, IngestSource.Bulk), zone,
            tenant.DefaultPhoneRegion, postedAt);
    }

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
    /// Order and persist: each conversation's messages go to its entity in arrival order, at most
    /// <see cref="PipelineSettings.PerConversationInFlight"/> at once, while many conversations proceed side by side; a
    /// slow conversation holds back only its own messages (<see cref="FifoPerConversation{T}"/>). The entity persists,
    /// assigns the next sequence number and only then acknowledges.
    /// </summary>
    public Flow<Submission, Submission, NotUsed> OrderAndPersist() =>
        Flow.FromGraph(new FifoPerConversation<Submission>(s => s.Message.TenantId + "\u001f" + s.Message.ConversationId,
                s => s.IsDone ? Task.CompletedTask : PersistAsync(s), (s, e) => Fail("persist", s, e),
                settings.PerConversationInFlight, settings.PersistInFlight, settings.PersistWaiting))
            .Select(s =>
            {
                Count("persist", s);
                return s;
            })
            .Where(s => !s.IsDone)
            .Named("persist");

    private async Task PersistAsync(Submission s)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await PersistOnceAsync(s);
        }
        finally
        {
            StepTime.WithLabels("persist").Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    private async Task PersistOnceAsync(Submission s)
    {
        var m = s.Message;
        var reply = await AskAsync(conversations,
            new PostMessage(m.TenantId, m.ConversationId, m.SenderId, s.MessageId, m.Content, s.Tenant.IdempotencyHorizon, s.Enrichment)
            {
                Sealed = s.Sealed,
                AfterMessageId = m.AfterMessageId,
            });
        switch (reply)
        {
            case MessageAck { Repeat: true } repeat:
                s.Complete(new Persisted(repeat with { Content = await OriginalContentAsync(s) }));
                break;
            case MessageAck ack:
                window.Remember(m.TenantId, ack, m.Content);
                s.Ack = ack;
                break;
            case Rejection r:
                s.Complete(new Rejected(r));
                break;
        }
    }

    /// <summary>
    /// Record: a stored message's id becomes permanently taken (one statement for many messages, batched like the
    /// claims), and only then has its sender the acknowledgement, so an acknowledged id stays taken for good however
    /// old it gets. The conversation's next messages do not wait for this.
    /// </summary>
    public Flow<Submission, Submission, NotUsed> RecordClaims() => DecideInBatches("record", async open =>
    {
        var stored = open.Where(s => s.Ack is not null).ToList();
        if (stored.Count == 0) return;
        await RecordAsync(stored.Select(s => new ClaimRecord(s.Message.TenantId, s.Ack!.MessageId, s.Ack.ConversationId, s.Ack.Seq,
            s.Ack.SenderId, s.Ack.CreatedAt)).ToList());
        foreach (var s in stored)
        {
            Latency.WithLabels(s.Message.Source.ToString()).Observe(s.Elapsed.TotalSeconds);
            s.Complete(new Persisted(s.Ack!));
        }
    });

    /// <summary>A repeat answers with the original message; the entity keeps no content, the read model does.</summary>
    private async Task<MessageContent?> OriginalContentAsync(Submission s)
    {
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(2);
        while (true)
        {
            var row = await queries.MessageByIdAsync(s.Message.TenantId, s.MessageId);
            if (row is not null) return row.Content;
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
                await GuardAsync(name, s, step);
                Count(name, s);
                return s;
            })
            .Where(s => !s.IsDone)
            .Named(name);

    /// <summary>
    /// <see cref="Decide"/> for a step that takes many open submissions at once (one database statement for all,
    /// <see cref="Batches.InBatches{T}"/>). A failure of the whole step decides each message it left open.
    /// </summary>
    private Flow<Submission, Submission, NotUsed> DecideInBatches(string name, Func<IReadOnlyList<Submission>, Task> step) =>
        Batches.InBatches<Submission>(settings.ClaimBatchMax, settings.ClaimBatchParallelism, async batch =>
            {
                var open = batch.Where(s => !s.IsDone).ToList();
                if (open.Count == 0) return;
                BatchSize.WithLabels(name).Observe(open.Count);
                var started = Stopwatch.GetTimestamp();
                try
                {
                    await step(open);
                }
                catch (Exception e)
                {
                    foreach (var s in open) Fail(name, s, e);
                }
                StepTime.WithLabels(name).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
                foreach (var s in open) Count(name, s);
            },
            (batch, e) => logger.LogError(e, "Pipeline stage {Stage} failed on a batch of {Count}", name, batch.Count))
            .Where(s => !s.IsDone)
            .Named(name);

    private async Task GuardAsync(string name, Submission s, Func<Submission, Task> step)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await step(s);
        }
        catch (Exception e)
        {
            Fail(name, s, e);
        }
        StepTime.WithLabels(name).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>Decides a message whose step failed unexpectedly: a store outage is 503, anything else a safe retry.</summary>
    private void Fail(string name, Submission s, Exception e)
    {
        if (s.IsDone) return;
        if (StoreBreaker.IsOutage(e))
        {
            s.Complete(new Rejected(new Rejection(ErrorCodes.Unavailable, "The database is unavailable; retry with the same message_id.",
                RetryAfterSeconds: (e as StoreUnavailableException)?.RetryAfter.TotalSeconds ?? 2)));
            return;
        }
        logger.LogWarning(e, "Pipeline stage {Stage} failed on a message of {Tenant}/{Conversation}; the sender may retry",
            name, s.Message.TenantId, s.Message.ConversationId);
        s.Complete(new Rejected(new Rejection(ErrorCodes.Overloaded, "The message could not be processed now; retry with the same message_id.",
            RetryAfterSeconds: 1)));
    }

    private static void Count(string name, Submission s) => Stage.WithLabels(name, s.IsDone ? OutcomeName(s) : "passed").Inc();

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
        if (m.Content.IsAttachment)
        {
            if (!Ids.IsValid(m.Content.Attachment?.MediaId)) errors["content.media_id"] = ["The id of an uploaded file (1 to 128 of A-Z a-z 0-9 _ . @ -)."];
        }
        else if (m.Content.Type != "text") errors["content.type"] = ["One of text, image, file, audio, video."];
        else if (string.IsNullOrWhiteSpace(m.Content.Text)) errors["content.text"] = ["Must not be empty."];
        if (m.MessageId is not null && !Ids.IsValid(m.MessageId)) errors["message_id"] = ["1 to 128 of A-Z a-z 0-9 _ . @ -"];
        if (errors.Count > 0) return new Rejection(ErrorCodes.ValidationFailed, "The message is not valid.", errors);
        // A caption counts toward the same limit as text.
        if (m.Content.Text?.Length > tenant.MaxMessageChars)
            return new Rejection(ErrorCodes.PayloadTooLarge, $"A message is at most {tenant.MaxMessageChars} characters.");
        return null;
    }
}
