using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Sharding;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Configuration;
using Akka.Event;
using Akka.Hosting;
using Akka.Persistence;
using Akka.Persistence.Journal;
using System.Collections.Immutable;
using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Actors.Calls;

/// <summary>Call settings (<c>caas.calls</c> in hocon/sharding.conf).</summary>
/// <param name="ConsentTimeout">How long the participants have to consent to a recording (<c>recording-consent-timeout</c>).</param>
/// <param name="QualityCheckpoint">How often at most the active call's quality aggregates are persisted (<c>quality-checkpoint</c>).</param>
/// <param name="LivenessTimeout">A joined participant no hub node has vouched for (<see cref="CallHeartbeat"/>) this long has left (<c>liveness-timeout</c>).</param>
/// <param name="LivenessCheck">How often the active call looks for such participants (<c>liveness-check</c>).</param>
public sealed record CallSettings(TimeSpan RingTimeout, TimeSpan? ConsentTimeout = null, TimeSpan? QualityCheckpoint = null,
    TimeSpan? LivenessTimeout = null, TimeSpan? LivenessCheck = null)
{
    public TimeSpan RecordingConsentTimeout => ConsentTimeout ?? CallDecider.DefaultConsentTimeout;

    public TimeSpan QualityCheckpointEvery => QualityCheckpoint ?? TimeSpan.FromSeconds(30);

    public TimeSpan LivenessTimeoutValue => LivenessTimeout ?? TimeSpan.FromSeconds(65);

    public TimeSpan LivenessCheckEvery => LivenessCheck ?? TimeSpan.FromSeconds(20);

    public static CallSettings From(Config config) =>
        new(config.GetTimeSpan("caas.calls.ring-timeout", TimeSpan.FromSeconds(45)),
            config.GetTimeSpan("caas.calls.recording-consent-timeout", CallDecider.DefaultConsentTimeout),
            config.GetTimeSpan("caas.calls.quality-checkpoint", TimeSpan.FromSeconds(30)),
            config.GetTimeSpan("caas.calls.liveness-timeout", TimeSpan.FromSeconds(65)),
            config.GetTimeSpan("caas.calls.liveness-check", TimeSpan.FromSeconds(20)));

    /// <summary>How often each hub node vouches for its connections in calls (<c>heartbeat-every</c>; under the liveness timeout).</summary>
    public static TimeSpan HeartbeatEvery(Config config) => config.GetTimeSpan("caas.calls.heartbeat-every", TimeSpan.FromSeconds(20));
}

/// <summary>
/// A conversation's calls (<c>calls|tenant|conversation</c>): decides with <see cref="CallDecider"/>, persists, then
/// replies and publishes the hub events (<see cref="CallNotices"/>). It times the ring itself and does not passivate
/// while a call is active, so the ring timeout is never lost to passivation. It also tells the tenant's
/// <see cref="CallPresenceActor"/> who is joined (after each change and every <see cref="CallPresenceActor.Refresh"/>),
/// keeps the active call's quality reports aggregated in memory (stored with <see cref="CallEnded"/>), and posts each
/// finished call's summary into the conversation (<see cref="CallSummaryMessage"/>) until the conversation has it.
/// </summary>
public sealed class CallRoomActor : EntityActor, IWithTimers
{
    public const string KindTag = "call";
    // Asks to the conversation entity (summaries, call changes): answered within this or sent again after ConversationRetry.
    private static readonly TimeSpan ConversationAskTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ConversationRetry = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan PresenceAskTimeout = TimeSpan.FromSeconds(5);
    private readonly EntitySettings _settings;
    private readonly CallSettings _calls;
    private readonly string _tenantId;
    private readonly string _conversationId;
    private CallRoomState _state = CallRoomState.Empty;
    private string? _lastHash;
    private ICancelable? _ringTimer, _consentTimer;
    // The active call's quality reports, per participant: in memory, checkpointed (CallQualityCheckpointed) at the first
    // report and then at most every QualityCheckpointEvery, so a restart mid-call loses at most that much.
    private ImmutableDictionary<string, ParticipantQuality> _quality = ImmutableDictionary<string, ParticipantQuality>.Empty;
    private DateTimeOffset? _checkpointedAt;
    private bool _qualityDirty;
    // When a hub node last vouched for each participant (CallHeartbeat), or they joined; memory only (a recovered
    // call gives every joined participant a fresh liveness timeout).
    private readonly Dictionary<string, DateTimeOffset> _lastSeen = new(StringComparer.Ordinal);
    // Summaries being sent now (one ask at a time per call).
    private readonly HashSet<string> _sending = [];
    // The call's changes still to be recorded in the conversation's journal (CallUpdated), oldest first; sent one at a
    // time, each until the conversation answers. In memory: after a recovery only the last change is sent again (the
    // conversation ignores one it has), so a crash can lose intermediate changes but never the call's latest state.
    private readonly List<RecordCallUpdate> _updates = [];
    private bool _updateSending;
    private CallUpdated? _recoveredUpdate;

    public CallRoomActor(string entityId, EntitySettings settings, CallSettings calls)
    {
        _settings = settings;
        _calls = calls;
        var bar = entityId.IndexOf('|');
        _tenantId = entityId[..bar];
        _conversationId = entityId[(bar + 1)..];
        PersistenceId = "calls|" + entityId;
        Recover<ICallEvent>(e =>
        {
            var before = _state;
            _state = _state.Apply(e);
            _lastHash = e.Meta.Hash ?? _lastHash;
            if (CallUpdates.Of(e, before, _state, LastSequenceNr) is { } update) _recoveredUpdate = update;
        });
        Recover<RecoveryCompleted>(_ =>
        {
            // The quality reports of an active call come back from its last checkpoint.
            _quality = (_state.Active?.Quality ?? []).ToImmutableDictionary(q => q.UserId);
            _checkpointedAt = _state.Active?.Quality is null ? null : DateTimeOffset.UtcNow;
            foreach (var user in _state.Active?.Joined ?? []) _lastSeen[user] = DateTimeOffset.UtcNow;
            if (_recoveredUpdate is { } last) _updates.Add(new RecordCallUpdate(_tenantId, _conversationId, last.Meta.ActorId, last));
            _recoveredUpdate = null;
            AfterChange();
            TellPresence();
            SendUpdates();
        });
        Command<ReportCallQuality>(HandleQuality);
        Command<CallHeartbeat>(h =>
        {
            if (_state.Active is { } call && call.CallId == h.CallId)
                foreach (var user in h.Users) _lastSeen[user] = DateTimeOffset.UtcNow;
        });
        Command<CheckLiveness>(_ => LeaveTheSilent());
        // Answers to the leave commands this entity sends itself (LeaveTheSilent).
        Command<CallReply>(_ => { });
        Command<Rejection>(_ => { });
        Command<CheckpointQuality>(_ => CheckpointQualityNow(null, null));
        Command<ICallCommand>(Handle);
        Command<RefreshPresence>(_ => TellPresence());
        Command<SendSummaries>(_ => SendPendingSummaries());
        Command<SummaryAnswer>(OnSummaryAnswer);
        Command<SendCallUpdates>(_ => SendUpdates());
        Command<UpdateAnswer>(OnUpdateAnswer);
        Command<StopEntity>(_ => Context.Stop(Self));
        Command<ReceiveTimeout>(_ =>
        {
            if (_state.Active is null && _state.SummariesPending.IsEmpty && _updates.Count == 0) Context.Parent.Tell(new Passivate(StopEntity.Instance));
        });
    }

    public override string PersistenceId { get; }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props PropsFor(string entityId, EntitySettings settings, CallSettings calls) =>
        Props.Create(() => new CallRoomActor(entityId, settings, calls));

    private void HandleQuality(ReportCallQuality r)
    {
        var now = DateTimeOffset.UtcNow;
        var decision = CallDecider.Decide(_state, r, now, _calls.RecordingConsentTimeout);
        if (decision.Reply is not Done)
        {
            Sender.Tell(decision.Reply);
            return;
        }
        _quality = _quality.SetItem(r.UserId, CallQuality.Add(_quality.GetValueOrDefault(r.UserId), r.UserId, r.Sample));
        _qualityDirty = true;
        // The call's first report is checkpointed before it is answered; later ones within the interval wait for the timer.
        if (_checkpointedAt is null || now - _checkpointedAt >= _calls.QualityCheckpointEvery) CheckpointQualityNow(Sender, decision.Reply);
        else
        {
            if (!Timers.IsTimerActive("quality"))
                Timers.StartSingleTimer("quality", CheckpointQuality.Instance, _checkpointedAt.Value + _calls.QualityCheckpointEvery - now);
            Sender.Tell(decision.Reply);
        }
    }

    /// <summary>
    /// Joined participants no hub node has vouched for within the liveness timeout leave (reason <c>disconnected</c>),
    /// as if their connection had closed; the last one out ends the call. This is what ends a call whose participants'
    /// node died (its connections never said goodbye).
    /// </summary>
    private void LeaveTheSilent()
    {
        if (_state.Active is not { } call) return;
        var now = DateTimeOffset.UtcNow;
        foreach (var user in call.Joined)
            if (!_lastSeen.TryGetValue(user, out var seen) || now - seen > _calls.LivenessTimeoutValue)
                Self.Tell(new LeaveCall(_tenantId, _conversationId, user, call.CallId, CallReasons.Disconnected));
    }

    /// <summary>Persists the active call's quality aggregates if reports came since the last checkpoint; then answers <paramref name="replyTo"/>.</summary>
    private void CheckpointQualityNow(IActorRef? replyTo, object? reply)
    {
        if (_state.Active is not { } call || !_qualityDirty)
        {
            replyTo?.Tell(reply);
            return;
        }
        _qualityDirty = false;
        _checkpointedAt = DateTimeOffset.UtcNow;
        Timers.Cancel("quality");
        var checkpoint = HashChain.SealAll([new CallQualityCheckpointed(new EventMeta(_tenantId, "system", _checkpointedAt.Value), call.CallId,
            CallQuality.Ordered(_quality))], _lastHash, o => Context.System.Serialization.FindSerializerFor(o).ToBinary(o), AuditKeySetup.Of(Context.System));
        Persist(new Tagged(checkpoint[0], [KindTag, Ids.TenantTag(_tenantId)]), tagged =>
        {
            var e = (ICallEvent)tagged.Payload;
            _state = _state.Apply(e);
            _lastHash = e.Meta.Hash;
            replyTo?.Tell(reply);
        });
    }

    private void Handle(ICallCommand command)
    {
        var decision = CallDecider.Decide(_state, command, DateTimeOffset.UtcNow, _calls.RecordingConsentTimeout);
        if (decision.Events.Count == 0)
        {
            Sender.Tell(decision.Reply is CallHistory h && _state.Active is not null
                ? h with { ActiveQuality = CallQuality.Ordered(_quality) }
                : decision.Reply);
            return;
        }
        var replyTo = Sender;
        var toBytes = (Func<object, byte[]>)(o => Context.System.Serialization.FindSerializerFor(o).ToBinary(o));
        // The quality reports go with the end of the call (the decider knows nothing of them).
        var events = decision.Events.Select(e => e is CallEnded x && !_quality.IsEmpty ? x with { Quality = CallQuality.Ordered(_quality) } : e).ToList();
        var chained = HashChain.SealAll(events, _lastHash, toBytes, AuditKeySetup.Of(Context.System));
        var tags = new[] { KindTag, Ids.TenantTag(_tenantId) };
        var connection = (command as AcceptCall)?.ConnectionId;
        var remaining = chained.Count;
        var presence = new List<Task>();
        PersistAll(chained.Select(e => new Tagged(e, tags)), tagged =>
        {
            var e = (ICallEvent)tagged.Payload;
            var before = _state;
            _state = _state.Apply(e);
            _lastHash = e.Meta.Hash;
            if (e is CallStarted startedNow) _lastSeen[startedNow.StartedBy] = DateTimeOffset.UtcNow;
            if (e is CallParticipantJoined joinedNow) _lastSeen[joinedNow.UserId] = DateTimeOffset.UtcNow;
            if (e is CallEnded) _lastSeen.Clear();
            if (e is CallStarted or CallEnded)
            {
                _quality = ImmutableDictionary<string, ParticipantQuality>.Empty;
                _checkpointedAt = null;
                _qualityDirty = false;
                Timers.Cancel("quality");
            }
            var mediator = DistributedPubSub.Get(Context.System).Mediator;
            foreach (var notice in CallNotices.For(e, before, _conversationId, connection))
                if (notice.Recipients.Count > 0) mediator.Tell(new Publish(CallNotices.Topic, notice));
            if (Presence(e, before) is { } update) presence.Add(update);
            if (CallUpdates.Of(e, before, _state, LastSequenceNr) is { } change)
                _updates.Add(new RecordCallUpdate(_tenantId, _conversationId, change.Meta.ActorId, change));
            if (--remaining == 0)
            {
                // Answered once the presence index has the change (or could not be reached in time): a call started
                // after this answer finds the joined participant busy, whichever node it starts on.
                if (presence.Count == 0) replyTo.Tell(decision.Reply);
                else
                {
                    var reply = decision.Reply;
                    Task.WhenAll(presence).ContinueWith(_ => reply, TaskScheduler.Default).PipeTo(replyTo);
                }
                AfterChange();
                SendUpdates();
                if (e is CallEnded) SendPendingSummaries();
            }
        });
    }

    /// <summary>Tells the tenant's presence index what this event changed of who is joined; the task ends when it has it (or in 5 s).</summary>
    private Task? Presence(ICallEvent e, CallRoomState before)
    {
        CallPresenceUpdate? update = e switch
        {
            CallStarted s => new CallPresenceUpdate(_tenantId, s.CallId, [s.StartedBy], []),
            CallParticipantJoined j => new CallPresenceUpdate(_tenantId, j.CallId, [j.UserId], []),
            CallParticipantLeft l => new CallPresenceUpdate(_tenantId, l.CallId, [], [l.UserId]),
            CallEnded x => new CallPresenceUpdate(_tenantId, x.CallId, [], [.. before.Active?.Participants.Keys ?? []]),
            _ => null,
        };
        return update is null ? null : ClusterSharding.Get(Context.System).ShardRegion(CallSharding.TypeName).Ask<Done>(update, PresenceAskTimeout);
    }

    /// <summary>The active call's joined participants, again (refreshes their entries in the presence index).</summary>
    private void TellPresence()
    {
        if (_state.Active is not { } a) return;
        ClusterSharding.Get(Context.System).ShardRegion(CallSharding.TypeName)
            .Tell(new CallPresenceUpdate(_tenantId, a.CallId, [.. a.Joined], []), ActorRefs.NoSender);
    }

    /// <summary>Sends the oldest change not yet recorded in the conversation (one at a time, so they are recorded in order).</summary>
    private void SendUpdates()
    {
        if (_updateSending || _updates.Count == 0) return;
        _updateSending = true;
        var update = _updates[0];
        ClusterSharding.Get(Context.System).ShardRegion(ConversationSharding.TypeName).Ask<object>(update, ConversationAskTimeout)
            .ContinueWith(t => new UpdateAnswer(update.Update.CallSeq, t.IsCompletedSuccessfully ? t.Result : null), TaskScheduler.Default)
            .PipeTo(Self);
    }

    private void OnUpdateAnswer(UpdateAnswer a)
    {
        _updateSending = false;
        var retry = a.Reply is null or Rejection { Code: ErrorCodes.Unavailable };
        if (retry)
        {
            // Not written (a timeout, the journal down): again shortly, the same change first.
            Timers.StartSingleTimer("updates", SendCallUpdates.Instance, ConversationRetry);
            return;
        }
        // Recorded (Done), already there (Done), or never to be (the conversation is gone, or refused it for good).
        if (a.Reply is Rejection { Code: not ErrorCodes.NotFound } r)
            Context.GetLogger().Warning("The conversation {0} refused change {1} of its call: {2}", _conversationId, a.CallSeq, r.Code);
        if (_updates.Count > 0 && _updates[0].Update.CallSeq == a.CallSeq) _updates.RemoveAt(0);
        if (_updates.Count > 0) SendUpdates();
        // The end of a call is in the conversation before its summary is posted.
        else SendPendingSummaries();
    }

    /// <summary>Sends every pending summary not already on its way to the conversation entity (after the call's changes).</summary>
    private void SendPendingSummaries()
    {
        if (_updates.Count > 0) return;
        var conversations = ClusterSharding.Get(Context.System).ShardRegion(ConversationSharding.TypeName);
        foreach (var callId in _state.SummariesPending)
        {
            if (!_sending.Add(callId)) continue;
            var summary = _state.History.FirstOrDefault(h => h.CallId == callId);
            if (summary is null) continue;
            var messageId = CallSummaryMessage.MessageIdOf(callId);
            conversations.Ask<object>(new PostCallSummary(_tenantId, _conversationId, summary.StartedBy, messageId, CallSummaryMessage.Content(summary)),
                    ConversationAskTimeout)
                .ContinueWith(t => new SummaryAnswer(callId, messageId, t.IsCompletedSuccessfully ? t.Result : null), TaskScheduler.Default)
                .PipeTo(Self);
        }
    }

    private void OnSummaryAnswer(SummaryAnswer a)
    {
        _sending.Remove(a.CallId);
        if (!_state.SummariesPending.Contains(a.CallId)) return;
        long? seq = a.Reply switch
        {
            MessageAck ack => ack.Seq,
            // The conversation is gone: nothing to post it into.
            Rejection { Code: ErrorCodes.NotFound } => 0,
            _ => null,
        };
        if (seq is null)
        {
            Timers.StartSingleTimer("summaries", SendSummaries.Instance, ConversationRetry);
            return;
        }
        var posted = HashChain.SealAll([new CallSummaryPosted(new EventMeta(_tenantId, "system", DateTimeOffset.UtcNow), a.CallId, a.MessageId, seq.Value)],
            _lastHash, o => Context.System.Serialization.FindSerializerFor(o).ToBinary(o), AuditKeySetup.Of(Context.System));
        Persist(new Tagged(posted[0], [KindTag, Ids.TenantTag(_tenantId)]), tagged =>
        {
            var e = (ICallEvent)tagged.Payload;
            _state = _state.Apply(e);
            _lastHash = e.Meta.Hash;
            AfterChange();
        });
    }

    /// <summary>
    /// Times the ring of an active call (again after recovery) and the presence refresh; idles out only with no call
    /// active and every summary posted; sends the summaries still pending after a recovery.
    /// </summary>
    private void AfterChange()
    {
        _ringTimer?.Cancel();
        _ringTimer = null;
        if (_state.Active is { } a && a.Ringing.Any())
        {
            var due = a.StartedAt + _calls.RingTimeout - DateTimeOffset.UtcNow;
            _ringTimer = Context.System.Scheduler.ScheduleTellOnceCancelable(due < TimeSpan.Zero ? TimeSpan.Zero : due, Self,
                new RingTimedOut(_tenantId, _conversationId, "system", a.CallId), Self);
        }
        // The recording's consent timeout (again after a recovery).
        _consentTimer?.Cancel();
        _consentTimer = null;
        if (_state.Active is { Recording: { Phase: not RecordingPhase.Recording, Awaiting.Count: > 0 } r } call)
        {
            var due = r.Deadline - DateTimeOffset.UtcNow;
            _consentTimer = Context.System.Scheduler.ScheduleTellOnceCancelable(due < TimeSpan.Zero ? TimeSpan.Zero : due, Self,
                new RecordingConsentTimedOut(_tenantId, _conversationId, "system", call.CallId, r.RecordingId), Self);
        }
        if (_state.Active is null)
        {
            Timers.Cancel("presence");
            Timers.Cancel("liveness");
        }
        else
        {
            if (!Timers.IsTimerActive("presence")) Timers.StartPeriodicTimer("presence", RefreshPresence.Instance, CallPresenceActor.Refresh);
            if (!Timers.IsTimerActive("liveness")) Timers.StartPeriodicTimer("liveness", CheckLiveness.Instance, _calls.LivenessCheckEvery);
        }
        if (!_state.SummariesPending.IsEmpty && _sending.Count == 0) Self.Tell(SendSummaries.Instance);
        Context.SetReceiveTimeout(_state.Active is null && _state.SummariesPending.IsEmpty ? _settings.PassivateAfter : null);
    }

    protected override void PostStop()
    {
        _ringTimer?.Cancel();
        _consentTimer?.Cancel();
        base.PostStop();
    }

    private sealed class RefreshPresence : INoSerializationVerificationNeeded
    {
        public static readonly RefreshPresence Instance = new();
    }

    private sealed class CheckLiveness : INoSerializationVerificationNeeded
    {
        public static readonly CheckLiveness Instance = new();
    }

    private sealed class CheckpointQuality : INoSerializationVerificationNeeded
    {
        public static readonly CheckpointQuality Instance = new();
    }

    private sealed class SendSummaries : INoSerializationVerificationNeeded
    {
        public static readonly SendSummaries Instance = new();
    }

    private sealed record SummaryAnswer(string CallId, string MessageId, object? Reply) : INoSerializationVerificationNeeded;

    private sealed class SendCallUpdates : INoSerializationVerificationNeeded
    {
        public static readonly SendCallUpdates Instance = new();
    }

    private sealed record UpdateAnswer(long CallSeq, object? Reply) : INoSerializationVerificationNeeded;
}

public sealed class CallRoomRegion;

public static class CallSharding
{
    public const string TypeName = "call-room";

    public static AkkaConfigurationBuilder AddCallRoomSharding(this AkkaConfigurationBuilder builder, string? role, int maxShards = 100) =>
        builder.WithShardRegion<CallRoomRegion>(TypeName,
            (system, _) =>
            {
                var settings = EntitySettings.From(system.Settings.Config);
                var calls = CallSettings.From(system.Settings.Config);
                // The tenant's presence index (busy) lives in this region too, under an id no conversation can have.
                return id => CallPresenceIds.Is(id) ? CallPresenceActor.PropsFor() : CallRoomActor.PropsFor(id, settings, calls);
            },
            new EntityMessageExtractor(maxShards), EntitySharding.Options(role));
}
