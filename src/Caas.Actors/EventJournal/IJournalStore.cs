namespace Caas.Actors.EventJournal;

/// <summary>
/// A stored journal row as recovery reads it. <see cref="Message"/> is the store's own buffer, valid only while the row
/// is being handled (SQLite hands it over in place): copy it to keep it.
/// </summary>
public readonly ref struct StoredRow(string persistenceId, long sequenceNr, long created, ReadOnlySpan<byte> message, string? manifest,
    int? identifier, string? writerUuid)
{
    public string PersistenceId { get; } = persistenceId;
    public long SequenceNr { get; } = sequenceNr;
    public long Created { get; } = created;
    public ReadOnlySpan<byte> Message { get; } = message;
    public string? Manifest { get; } = manifest;
    public int? Identifier { get; } = identifier;
    public string? WriterUuid { get; } = writerUuid;
}

/// <summary>The journal table of one database, in the Akka.Persistence.Sql layout (see <see cref="JournalRow"/>).</summary>
public interface IJournalStore : IAsyncDisposable
{
    /// <summary>Creates the journal table and its indexes as the plugin would, when absent.</summary>
    Task InitializeAsync(CancellationToken ct);

    /// <summary>
    /// Writes the writes in one transaction: each is stored whole or, when one of its sequence numbers is taken, not at
    /// all (<see cref="PendingWrite.Duplicate"/>) without failing the others. Throws when the database write fails;
    /// then nothing of the batch was acknowledged.
    /// </summary>
    Task WriteAsync(IReadOnlyList<PendingWrite> batch, CancellationToken ct);

    /// <summary>
    /// Rows of one persistence id in sequence order, not marked deleted, at most <paramref name="max"/>; each row is
    /// handed to <paramref name="onRow"/> as it is read (its message bytes are valid only during that call).
    /// </summary>
    Task ReplayAsync(string persistenceId, long from, long to, long max, Action<StoredRow> onRow, CancellationToken ct);

    /// <summary>The highest sequence number stored at or above <paramref name="from"/>, deleted rows included (0 when none).</summary>
    Task<long> HighestSequenceNrAsync(string persistenceId, long from, CancellationToken ct);

    /// <summary>
    /// Marks rows up to <paramref name="to"/> deleted and removes them, but keeps the persistence id's highest row
    /// (marked deleted) so that its highest sequence number survives, as the plugin does.
    /// </summary>
    Task DeleteToAsync(string persistenceId, long to, CancellationToken ct);
}
