using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Caas.Actors.Common;
using Caas.Actors.Privacy;
using Caas.Actors.Rooms;
using Caas.Actors.Serialization;

namespace Caas.Actors.Conversations;

/// <summary>
/// The conversation entity: decide, persist, reply (only after the journal write), tag, snapshot, passivate.
/// All rules live in <see cref="ConversationDecider"/>; all state changes in <see cref="ConversationState.Apply"/>.
/// Commands that arrive while a write is in flight are decided in order once it completes and written together in
/// one write (one atomic write, one publish), each answered only after that write.
/// </summary>
public sealed class ConversationActor : EntityActor, IWithTimers
{
    public const string KindTag = "conversation";

    /// <summary>The entity's timers (Akka sets this before the constructor runs).</summary>
    public ITimerScheduler Timers { get; set; } = null!;

    // When the entity last got a command; the idle check passivates it once passivate-after has gone by since.
    private long _lastCommandAt = System.Diagnostics.Stopwatch.GetTimestamp();

    private readonly EntitySettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private ConversationState _state;
    private ConversationState.Replay? _replay;
    // Live fan-out needs a cluster; the actor also runs without one (unit tests with the local provider).
    private readonly bool _publishes = Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal);
    private readonly RoomTopicRouter _topics = RoomTopicRouter.Get(Context.System);
    // The node's content vault; none (unit tests, a node without one) stores content in the clear.
    private readonly IContentVault? _vault = ContentVaultSetup.Of(Context.System);
    private readonly AuditKey? _auditKey = AuditKeySetup.Of(Context.System);

    public ConversationActor(string entityId, EntitySettings settings)
    {
        _settings = settings;
        _state = ConversationState.Empty(settings.MessageWindow);
        PersistenceId = PersistenceIdOf(entityId);

        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is ConversationState s) _state = s with { MessageWindow = settings.MessageWindow };
        });
        // Events replay into ConversationState.Replay (hash maps); the state is built once, when the replay is complete.
        Recover<IConversationEvent>(e => (_replay ??= new ConversationState.Replay(_state)).Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            if (_replay is not null) _state = _replay.State;
            _replay = null;
            // Idle is looked at a few times per passivate-after, from recovery on, rather than by a receive timeout:
            // that one is cancelled and scheduled again for every message the entity gets (each command, its write's
            // replies, the nudge to write what queued), which on a busy node cost a timer registration, a cancelable and
            // a token source per message.
            _lastCommandAt = System.Diagnostics.Stopwatch.GetTimestamp();
            if (IdleCheckEvery(_settings.PassivateAfter) is { } every) Timers.StartPeriodicTimer(IdleCheck.Key, IdleCheck.Instance, every);
        });

        Command<IConversationCommand>(Handle);
        Command<WriteQueued>(_ => WriteNext());
        Command<SaveSnapshotSuccess>(ok =>
            DeleteSnapshots(new SnapshotSelectionCriteria(ok.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning(f.Cause, "Snapshot of {0} failed", PersistenceId));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning(f.Cause, "Deleting old snapshots of {0} failed", PersistenceId));
        Command<StopEntity>(_ => OnStop());
        Command<IdleCheck>(_ =>
        {
            // Idle means nothing in flight either: a slow write must not passivate the entity under its own commands.
            if (_inFlight is not null || _queued.Count > 0
                || System.Diagnostics.Stopwatch.GetElapsedTime(_lastCommandAt) < _settings.PassivateAfter) return;
            Timers.Cancel(IdleCheck.Key);
            Context.Parent.Tell(new Passivate(StopEntity.Instance));
        });
    }

    /// <summary>How often idleness is looked at: a quarter of <paramref name="passivateAfter"/> (so an idle entity goes
    /// within 1.25 times it), at least every 10 ms; null when passivation is off (zero or infinite).</summary>
    internal static TimeSpan? IdleCheckEvery(TimeSpan passivateAfter) =>
        passivateAfter <= TimeSpan.Zero || passivateAfter == Timeout.InfiniteTimeSpan || passivateAfter >= TimeSpan.FromDays(3650)
            ? null
            : TimeSpan.FromTicks(Math.Max(passivateAfter.Ticks / 4, TimeSpan.FromMilliseconds(10).Ticks));

    /// <summary>The periodic look at whether the entity is idle.</summary>
    private sealed class IdleCheck
    {
        public const string Key = "idle";
        public static readonly IdleCheck Instance = new();
    }

    public override string PersistenceId { get; }

    public static string PersistenceIdOf(string entityId) => "conversation|" + entityId;

    public static Props PropsFor(string entityId, EntitySettings settings) =>
        Props.Create(() => new ConversationActor(entityId, settings));

    /// <summary>Replies carry the journal position they reflect, for the readers' progress-mark wait.</summary>
    private static object Stamp(object reply, long journalSeq) => reply is IJournalStamped s ? s.At(journalSeq) : reply;

    /// <summary>A command waiting for its turn, and who asked.</summary>
    private sealed record Waiting(IConversationCommand Command, IActorRef ReplyTo);

    /// <summary>An answer decided in a batch, sent once the batch's write is done; <see cref="EventsBefore"/> positions its stamp.</summary>
    private sealed record Held(Waiting Of, object Reply, int EventsBefore, bool Writes);

    /// <summary>The write in flight: its payloads (to recognise the journal's answer), the state after it, its answers.</summary>
    private sealed record InFlight(IReadOnlyList<Tagged> Payloads, ConversationState After, IReadOnlyList<Held> Answers,
        ImmutableArray<ConversationEventPublished>.Builder Published, long WrittenSeq);

    // Commands that arrived while a write was in flight: decided and written together, in order, once it completes
    // (one journal write for all of them instead of one each).
    private readonly List<Waiting> _queued = [];
    private InFlight? _inFlight;
    // After the journal rejected a batch, its commands are written one per write, so only the culprit is refused.
    private int _writeSingly;
    private bool _stopWhenIdle;

    private void Handle(IConversationCommand command)
    {
        _lastCommandAt = System.Diagnostics.Stopwatch.GetTimestamp();
        if (_inFlight is { } flight && command is IAdvisoryRead)
        {
            // Not behind the write in flight nor the commands queued for the next one: answered now from the state the
            // journal holds, stamped with that state's position. Whatever its asker has been told is in that state
            // (answers go out only once written), and nothing it says can be undone by that write failing.
            var decision = ConversationDecider.Decide(_state, command, DateTimeOffset.UtcNow);
            if (decision.Events.IsEmpty)
            {
                Sender.Tell(Stamp(decision.Rejection ?? decision.Immediate ?? new Done(command.GetType().Name), flight.WrittenSeq));
                return;
            }
        }
        _queued.Add(new Waiting(command, Sender));
        if (_inFlight is null) WriteNext();
    }

    private void OnStop()
    {
        // A hand-off or passivation waits for the write in flight and for what is queued behind it.
        if (_inFlight is null && _queued.Count == 0) Context.Stop(Self);
        else _stopWhenIdle = true;
    }

    /// <summary>Decides the queued commands in order, each on the state the ones before it leave, and writes their events at once.</summary>
    private void WriteNext()
    {
        while (_inFlight is null && _queued.Count > 0)
        {
            var take = Math.Min(_queued.Count, _writeSingly > 0 ? 1 : _settings.MaxWriteBatch);
            var batch = _queued.GetRange(0, take);
            _queued.RemoveRange(0, take);
            if (_writeSingly > 0) _writeSingly--;
            Write(batch);
        }
        if (_inFlight is null && _stopWhenIdle) Context.Stop(Self);
    }

    private void Write(List<Waiting> batch)
    {
        var now = DateTimeOffset.UtcNow;
        var state = _state;
        var events = new List<IConversationEvent>();
        var held = new List<Held>();
        foreach (var waiting in batch)
        {
            var command = waiting.Command;
            var decision = ConversationDecider.Decide(state, command, now);
            object reply;
            var writes = false;
            if (decision.Rejection is { } rejection) reply = rejection;
            else if (decision.Events.IsEmpty) reply = decision.Immediate ?? new Done(command.GetType().Name);
            else if (Link(decision.Events, state.LastHash, command.ConversationId) is { } linked)
            {
                foreach (var e in linked) state = state.Apply(e);
                events.AddRange(linked);
                // Answered from the state right after its own events, not after the whole batch.
                reply = ConversationDecider.Reply(state, command, decision.Events);
                writes = true;
            }
            else reply = new Rejection(ErrorCodes.Unavailable, "The message could not be sealed now; retry with the same message_id.",
                RetryAfterSeconds: 2);

            // Nothing before it in this batch writes: its answer reflects the journal as it is, so it goes now.
            if (events.Count == 0) waiting.ReplyTo.Tell(Stamp(reply, LastSequenceNr));
            else held.Add(new Held(waiting, reply, events.Count, writes));
        }
        if (events.Count == 0) return;

        var tags = ImmutableHashSet.Create(KindTag, Ids.TenantTag(events[0].Meta.TenantId));
        // A message stored with its enrichment deferred is also tagged for the enrichment projection, which reads only those.
        var deferredTags = tags.Add(EnrichmentTags.Deferred);
        var payloads = events.Select(e => new Tagged(e, e is MessagePosted { EnrichmentDeferred: true } ? deferredTags : tags)).ToList();
        var flight = _inFlight = new InFlight(payloads, state, held, ImmutableArray.CreateBuilder<ConversationEventPublished>(events.Count),
            LastSequenceNr);
        var remaining = payloads.Count;
        var (tenantId, conversationId) = (batch[0].Command.TenantId, batch[0].Command.ConversationId);
        PersistAllAsync(payloads, tagged =>
        {
            if (_publishes)
                flight.Published.Add(new ConversationEventPublished(tenantId, conversationId, LastSequenceNr, (IConversationEvent)tagged.Payload));
            if (--remaining > 0) return;
            Completed(flight, tenantId, conversationId);
        });
    }

    /// <summary>The batch is in the journal: the state moves on, one publish carries its events, every command is answered.</summary>
    private void Completed(InFlight flight, string tenantId, string conversationId)
    {
        _inFlight = null;
        _state = flight.After;
        var written = flight.Payloads.Count;
        var before = LastSequenceNr - written;
        if (_publishes)
            _topics.Publish(tenantId, conversationId, new ConversationEventsPublished(flight.Published.MoveToImmutable()));
        foreach (var answer in flight.Answers) answer.Of.ReplyTo.Tell(Stamp(answer.Reply, before + answer.EventsBefore));
        if ((before + written) / _settings.SnapshotEvery > before / _settings.SnapshotEvery) SaveSnapshot(_state);
        WriteNext();
    }

    /// <summary>
    /// The command's events sealed (content under its author's key), linked onto the hash chain, and serialized once:
    /// the link is taken over the stored bytes, and the journal is handed those same bytes. Null when the content could
    /// not be sealed (its key could not be loaded): that command is refused, the rest of the batch goes on.
    /// </summary>
    private List<IConversationEvent>? Link(ImmutableArray<IConversationEvent> events, string? prevHash, string conversationId)
    {
        var linked = new List<IConversationEvent>(events.Length);
        foreach (var e in events)
        {
            IConversationEvent open;
            byte[] openBytes;
            try
            {
                // Content is sealed first, so the hash covers the ciphertext the journal keeps.
                var sealedEvent = _vault is null ? e : ContentSealing.Seal(e, _vault, conversationId);
                open = sealedEvent.WithMeta(sealedEvent.Meta with { PrevHash = prevHash, Hash = null });
                openBytes = CaasSerializer.StoredBytes(open);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                _log.Warning(ex, "Could not seal an event of {0}; the command is refused and may be retried", PersistenceId);
                return null;
            }
            var hash = HashChain.Link(prevHash, openBytes, _auditKey);
            var final = open.WithMeta(open.Meta with { Hash = hash });
            CaasSerializer.Prepare(final, HashChain.WithHash(openBytes, hash));
            linked.Add(final);
            prevHash = hash;
        }
        return linked;
    }

    /// <summary>
    /// The journal refused the batch (it was not written; the entity goes on; a collision with another incarnation's
    /// write is a failure instead, see <see cref="EntityActor"/>). A batch of one command is refused; a larger one is
    /// retried one command per write, so the others are written and only the culprit is refused.
    /// </summary>
    protected override void OnRejected(Exception cause, object @event, long sequenceNr)
    {
        base.OnRejected(cause, @event, sequenceNr);
        var payload = @event is Tagged tagged ? tagged.Payload : @event;
        if (_inFlight is not { } flight || !flight.Payloads.Any(p => ReferenceEquals(p.Payload, payload))) return;
        _inFlight = null;
        var retried = flight.Answers.Count(a => a.Writes) > 1 ? flight.Answers.Select(a => a.Of).ToList() : [];
        if (retried.Count > 0)
        {
            _queued.InsertRange(0, retried);
            _writeSingly += retried.Count;
        }
        else
            foreach (var answer in flight.Answers)
                answer.Of.ReplyTo.Tell(answer.Writes
                    ? new Rejection("internal_error", "The journal refused the change; it was not written.")
                    : Unwritten);
        // Not from here: Akka flushes what is persisted inside this callback only after the next command, so the
        // next write starts from a message of its own.
        Self.Tell(WriteQueued.Instance);
    }

    /// <summary>Tells the entity to write what is queued (after a refused write).</summary>
    private sealed class WriteQueued : INoSerializationVerificationNeeded
    {
        public static readonly WriteQueued Instance = new();
    }

    /// <summary>
    /// The journal write failed (it may or may not have happened; the entity stops and recovers on its next command):
    /// every command of the batch and every one queued behind it is told to retry; none is acknowledged.
    /// </summary>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        foreach (var answer in _inFlight?.Answers ?? []) answer.Of.ReplyTo.Tell(Unwritten);
        foreach (var waiting in _queued) waiting.ReplyTo.Tell(Unwritten);
        _inFlight = null;
        _queued.Clear();
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    private static readonly Rejection Unwritten = new(ErrorCodes.Unavailable,
        "The journal could not be written; retry shortly (a repeated message_id is safe).", RetryAfterSeconds: 2);
}
