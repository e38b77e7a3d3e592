using Akka.Actor;
using Akka.Persistence;
using Caas.Actors.EventJournal;

namespace Caas.Actors.Common;

/// <summary>
/// A CAAS event-sourced entity. A write whose sequence numbers another incarnation of the same entity took first (a
/// node downed while it still ran, whose shards had already moved) is not an ordinary rejection: this incarnation's
/// state is stale and each write it tried would collide again, so it is handled as a failed write and the entity stops;
/// its next command recovers it with the other incarnation's events.
/// </summary>
public abstract class EntityActor : ReceivePersistentActor
{
    protected sealed override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        if (cause is not DuplicateJournalRowException)
        {
            OnRejected(cause, @event, sequenceNr);
            return;
        }
        OnPersistFailure(cause, @event, sequenceNr);
        Context.Stop(Self);
    }

    /// <summary>The journal refused a write for any other reason (not written; the entity goes on).</summary>
    protected virtual void OnRejected(Exception cause, object @event, long sequenceNr) => base.OnPersistRejected(cause, @event, sequenceNr);
}

/// <summary>
/// <see cref="EntityActor"/>'s handling of writes on <see cref="UntypedPersistentActor"/>, for entities there are many
/// of: a receive actor builds its handler table (a delegate per message type, the matchers) per instance, about 2 KB,
/// while an untyped one dispatches with a switch in its class. Used by the user-session entity, one per connected user.
/// </summary>
public abstract class UntypedEntityActor : UntypedPersistentActor
{
    protected sealed override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        if (cause is not DuplicateJournalRowException)
        {
            base.OnPersistRejected(cause, @event, sequenceNr);
            return;
        }
        OnPersistFailure(cause, @event, sequenceNr);
        Context.Stop(Self);
    }
}
