using Akka.Actor;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Akka.Serialization;
using Akka.Util;
using Caas.Actors.Serialization;

namespace Caas.Actors.EventJournal;

/// <summary>
/// One row of the <c>journal</c> table as Akka.Persistence.Sql 1.5.73 writes it with <c>table-mapping = default</c>
/// and <c>tag-write-mode = Csv</c> (its ByteArrayJournalSerializer): the payload's bytes, serializer id and manifest,
/// the tags as <c>;a;b;</c>, <c>created</c> in ticks. Rows written here read back through the plugin's read journal.
/// </summary>
public sealed record JournalRow(string PersistenceId, long SequenceNr, long Created, byte[] Message, string Tags, string Manifest,
    int Identifier, string WriterUuid);

/// <summary>Converts persistent representations to and from journal rows with the actor system's serializers.</summary>
public sealed class JournalRowCodec(ExtendedActorSystem system, string writerUuid, string tagSeparator = ";")
{
    private readonly Akka.Serialization.Serialization _serialization = system.Serialization;
    private readonly string[] _separator = [tagSeparator];
    private CaasSerializer? _caas;

    public string WriterUuid { get; } = writerUuid;

    public JournalRow ToRow(IPersistentRepresentation p, long now)
    {
        var payload = p.Payload;
        var tags = string.Empty;
        if (payload is Tagged tagged)
        {
            payload = tagged.Payload;
            if (tagged.Tags.Count > 0) tags = tagSeparator + string.Join(tagSeparator, tagged.Tags) + tagSeparator;
        }
        var serializer = _serialization.FindSerializerFor(payload);
        // Serialized with the system as transport, as the plugin does, so actor refs inside events resolve.
        var (bytes, manifest) = Akka.Serialization.Serialization.WithTransport(system, (serializer, payload), state =>
        {
            var (s, o) = state;
            var m = s switch
            {
                SerializerWithStringManifest sm => sm.Manifest(o),
                { IncludeManifest: true } => o.GetType().TypeQualifiedName(),
                _ => string.Empty,
            };
            return (s.ToBinary(o), m);
        });
        return new JournalRow(p.PersistenceId, p.SequenceNr, p.Timestamp == 0 ? now : p.Timestamp, bytes, tags, manifest,
            serializer.Identifier, WriterUuid);
    }

    /// <summary>
    /// A stored row back as the representation the persistent actor recovers from (tags are not part of it). CAAS's own
    /// rows are read in place (their events hold no actor references, so no transport is needed); any other serializer
    /// gets a copy of the bytes, with the system as transport, as the plugin does.
    /// </summary>
    public IPersistentRepresentation FromRow(string persistenceId, long sequenceNr, long created, ReadOnlySpan<byte> message, string? manifest,
        int? identifier, string? writerUuid)
    {
        manifest ??= string.Empty;
        var payload = identifier == CaasSerializer.Id && (_caas ??= _serialization.FindSerializerForType(typeof(Conversations.MessagePosted)) as CaasSerializer) is { } caas
            ? caas.FromBytes(message, manifest)
            : Akka.Serialization.Serialization.WithTransport(system, (message.ToArray(), manifest, identifier), state =>
            {
                var (bytes, m, id) = state;
                if (id is { } serializerId) return _serialization.Deserialize(bytes, serializerId, m);
                // Rows from writers that stored no serializer id: the manifest is the type.
                var type = Type.GetType(m, throwOnError: true)!;
                return _serialization.FindSerializerForType(type).FromBinary(bytes, type);
            });
        return new Persistent(payload, sequenceNr, persistenceId, manifest, false, ActorRefs.NoSender, writerUuid, created);
    }

    public string[] SplitTags(string? csv) => csv?.Split(_separator, StringSplitOptions.RemoveEmptyEntries) ?? [];
}

/// <summary>
/// One <see cref="AtomicWrite"/> waiting for a database writer: its rows go in together or not at all. The outcome is
/// null when stored, a <see cref="DuplicateJournalRowException"/> when a row's (persistence id, sequence number) is
/// taken already (nothing of it stored), or the task faults when the database write failed.
/// </summary>
public sealed class PendingWrite(IReadOnlyList<JournalRow> rows)
{
    private readonly TaskCompletionSource<Exception?> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IReadOnlyList<JournalRow> Rows { get; } = rows;
    public Task<Exception?> Outcome => _outcome.Task;

    public void Stored() => _outcome.TrySetResult(null);
    public void Duplicate() => _outcome.TrySetResult(new DuplicateJournalRowException(Rows[0].PersistenceId, Rows[0].SequenceNr, Rows[^1].SequenceNr));
    public void Failed(Exception e) => _outcome.TrySetException(e);
}

/// <summary>Another writer holds one of these sequence numbers: two incarnations of one entity wrote at once.</summary>
public sealed class DuplicateJournalRowException(string persistenceId, long from, long to)
    : Exception($"Journal rows of {persistenceId} in {from}..{to} exist already; nothing of this write was stored.");
