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

namespace Caas.Actors.Conversations;

/// <summary>
/// The conversation entity: decide, persist, reply (only after the journal write), tag, snapshot, passivate.
/// All rules live in <see cref="ConversationDecider"/>; all state changes in <see cref="ConversationState.Apply"/>.
/// </summary>
public sealed class ConversationActor : ReceivePersistentActor
{
    public const string KindTag = "conversation";

    private readonly EntitySettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private ConversationState _state;
    // Live fan-out needs a cluster; the actor also runs without one (unit tests with the local provider).
    private readonly bool _publishes = Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal);
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
        Recover<IConversationEvent>(e => _state = _state.Apply(e));

        Command<IConversationCommand>(Handle);
        Command<SaveSnapshotSuccess>(ok =>
            DeleteSnapshots(new SnapshotSelectionCriteria(ok.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning(f.Cause, "Snapshot of {0} failed", PersistenceId));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning(f.Cause, "Deleting old snapshots of {0} failed", PersistenceId));
        Command<StopEntity>(_ => Context.Stop(Self));
        Command<ReceiveTimeout>(_ => Context.Parent.Tell(new Passivate(StopEntity.Instance)));
    }

    public override string PersistenceId { get; }

    public static string PersistenceIdOf(string entityId) => "conversation|" + entityId;

    public static Props PropsFor(string entityId, EntitySettings settings) =>
        Props.Create(() => new ConversationActor(entityId, settings));

    protected override void PreStart()
    {
        base.PreStart();
        Context.SetReceiveTimeout(_settings.PassivateAfter);
    }

    /// <summary>Replies carry the journal position they reflect, for the readers' progress-mark wait.</summary>
    private object Stamp(object reply) => reply is IJournalStamped s ? s.At(LastSequenceNr) : reply;

    private void Handle(IConversationCommand command)
    {
        var decision = ConversationDecider.Decide(_state, command, DateTimeOffset.UtcNow);
        if (decision.Rejection is { } rejection)
        {
            Sender.Tell(rejection);
            return;
        }
        if (decision.Events.IsEmpty)
        {
            Sender.Tell(Stamp(decision.Immediate ?? new Done(command.GetType().Name)));
            return;
        }

        var replyTo = Sender;
        var tags = ImmutableHashSet.Create(KindTag, Ids.TenantTag(command.TenantId));
        var remaining = decision.Events.Length;
        var serialization = Context.System.Serialization;
        // Content is sealed under its author's data key first, so the hash covers the ciphertext the journal keeps.
        var events = _vault is null ? decision.Events : decision.Events.Select(e => ContentSealing.Seal(e, _vault, command.ConversationId));
        var chained = HashChain.SealAll(events, _state.LastHash, e => serialization.FindSerializerFor(e).ToBinary(e), _auditKey);
        PersistAll(chained.Select(e => new Tagged(e, tags)), tagged =>
        {
            var persisted = (IConversationEvent)tagged.Payload;
            _state = _state.Apply(persisted);
            if (_publishes)
                DistributedPubSub.Get(Context.System).Mediator.Tell(new Publish(RoomTopics.Of(command.TenantId, command.ConversationId),
                    new ConversationEventPublished(command.TenantId, command.ConversationId, LastSequenceNr, persisted)));
            if (--remaining > 0) return;
            replyTo.Tell(Stamp(ConversationDecider.Reply(_state, command, decision.Events)));
            if (LastSequenceNr % _settings.SnapshotEvery < decision.Events.Length) SaveSnapshot(_state);
        });
    }
}
