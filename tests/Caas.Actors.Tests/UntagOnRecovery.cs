using Akka.Persistence.Journal;

namespace Caas.Actors.Tests;

/// <summary>
/// For the in-memory test journal, which keeps a tagged event as written: on recovery the entity gets the event
/// itself, as the SQL journals (which store the tags apart) give it.
/// </summary>
public sealed class UntagOnRecovery : IEventAdapter
{
    public string Manifest(object evt) => string.Empty;

    public object ToJournal(object evt) => evt;

    public IEventSequence FromJournal(object evt, string manifest) =>
        EventSequence.Single(evt is Tagged t ? t.Payload : evt);
}
