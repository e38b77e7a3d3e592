using System.Data.Common;
using Akka.Persistence.Query;
using Caas.Streams.ReadModel;

namespace Caas.Streams.Kafka;

/// <summary>The parts every outbound projection (chat.events, media.events, webrtc.recording.events) shares.</summary>
public static class OutboundProjection
{
    /// <summary>
    /// The projection's ordered writer (<see cref="OrderedWriter"/>): planned against the marks in the read-model store,
    /// holes read from the journal by persistence id, published through <paramref name="sink"/> (retried until
    /// acknowledged), then marks and offset saved together; and a sweep over the entities whose persistence ids start
    /// with <paramref name="persistenceIdPrefix"/> when <paramref name="openJournal"/> is given (PostgreSQL) and
    /// <see cref="ProjectionSettings.LateCommitSweep"/> is on.
    /// </summary>
    public static OrderedWriter Create(string name, string persistenceIdPrefix, Akka.Actor.ActorSystem system, Akka.Streams.IMaterializer materializer,
        ProjectionOffsetStore offsets, KafkaSink sink, Func<IReadOnlyList<EventEnvelope>, Task<IReadOnlyList<KafkaPublisher.OutboundRecord>>> records,
        ProjectionSettings settings, Func<CancellationToken, Task<DbConnection>>? openJournal, Akka.Event.ILoggingAdapter log)
    {
        var sweep = openJournal is not null && settings.LateCommitSweep > TimeSpan.Zero
            ? new LateCommitSweep(openJournal, settings.LateCommitWindow, persistenceIdPrefix)
            : null;
        return new OrderedWriter(new OutboundOrder(offsets.Store, name, ProjectionRunner.ByPersistenceId(system, materializer)), sweep, table: false,
            async (events, _) => await sink.PublishAsync(await records(events)), log);
    }
}
