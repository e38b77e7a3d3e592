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

    /// <summary>Ingest: a retry of a recently acknowledged message is answered at once from the dedupe window.</summary>
    public Flow<Submission, Submission, NotUsed> Recall() => Decide("recall", s =>
    {
        if (s.Message.MessageId is { } id && window.TryGet(s.Message.TenantId, id, out var ack) && ack.ConversationId == s.Message.ConversationId)
            s.Complete(new Persisted(ack with { Repeat = true }));
        return Task.CompletedTask;
    });

    /// <summary>Validate: structure and size against the tenant's settings.</summary>
    public Flow<Submission, Submission, NotUsed> Validate() => Decide("validate", async s =>
    {
        s.Tenant = await tenantSettings(s.Message.TenantId, CancellationToken.None);
        if (Validation.Check(s.Message, s.Tenant) is { } invalid) s.Complete(new Rejected(invalid));
    });

    /// <summary>
    /// Dedupe: a client's message_id is claimed tenant-wide; one owned by another conversation is a conflict, one
    /// already in the read model is answered here (a retry takes no rate slot); the entity decides the rest.
    /// </summary>
    public Flow<Submission, Submission, NotUsed> Dedupe() => Decide("dedupe", async s =>
    {
        if (s.Message.MessageId is null) return;
        var owner = await claims.ClaimAsync(s.Message.TenantId, s.MessageId, s.Message.ConversationId);
        if (owner != s.Message.ConversationId)
            s.Complete(new Rejected(new Rejection(ErrorCodes.MessageIdConflict, "This message_id is already used in another conversation.")));
        else if (await queries.MessageByIdAsync(s.Message.TenantId, s.MessageId) is { } known)
            s.Complete(Repeat(s, known));
    });

    /// <summary>
    /// A message id the read model already holds: within the idempotency horizon, and from the same sender, a retry
    /// answered with the original acknowledgement; otherwise the id cannot be used again. This also covers messages
    /// older than the entity's bounded window of recent ids.
    /// </summary>
    private static IngestOutcome Repeat(Submission s, MessageRow known)
    {
        if (known.SenderId != s.Message.SenderId || known.CreatedAt + s.Tenant.IdempotencyHorizon < DateTimeOffset.UtcNow)
            return new Rejected(new Rejection(ErrorCodes.MessageIdConflict, "This message_id was already used for another message."));
        var content = known.Deleted ? null : new MessageContent(known.ContentType ?? "text", known.Text);
        return new Persisted(new MessageAck(known.MessageId, known.ConversationId, known.Seq, known.SenderId, content, known.CreatedAt, Repeat: true));
    }

    /// <summary>Rate: the sender's sliding window lives in its UserSession entity. Bulk and Kafka are exempt.</summary>
    public Flow<Submission, Submission, NotUsed> RateLimit() => Decide("rate", async s =>
    {
        if (s.Message.ExemptFromRateLimit) return;
        var granted = await AskAsync(sessions, new AcquireMessageSlot(s.Message.TenantId, s.Message.SenderId, s.Tenant.MessageRatePerMinute));
        if (granted is Rejection limited) s.Complete(new Rejected(limited));
        else s.RateSlot = ((MessageSlotGranted)granted).SlotTicks;
    });

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
        if (s.RateSlot is { } slot && reply is not MessageAck { Repeat: false })
            sessions.Tell(new ReleaseMessageSlot(m.TenantId, m.SenderId, slot));
        switch (reply)
        {
            case MessageAck { Repeat: true } repeat:
                s.Complete(new Persisted(repeat with { Content = await OriginalContentAsync(s) }));
                break;
            case MessageAck ack:
                window.Remember(m.TenantId, ack);
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
