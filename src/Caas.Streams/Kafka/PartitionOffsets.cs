namespace Caas.Streams.Kafka;

/// <summary>
/// One assigned partition's work, from the poll thread's receipt of a record to its completion (persisted or
/// dead-lettered). The commit point is the lowest offset not yet complete — or, with nothing open, the one after the
/// highest received — so a committed offset never passes a record that could still be lost.
/// A revoked partition's instance is dropped: a completion arriving for it afterwards changes nothing.
/// </summary>
public sealed class PartitionOffsets
{
    private readonly object _lock = new();
    private readonly SortedSet<long> _open = [];
    private long _next = -1;
    private int _emitted;
    private bool _revoked;

    /// <summary>The offset last committed (Kafka semantics: the next offset to read); -1 before the first commit.</summary>
    public long Committed { get; private set; } = -1;

    /// <summary>The poll thread received <paramref name="offset"/>.</summary>
    public void Received(long offset)
    {
        lock (_lock)
        {
            _open.Add(offset);
            if (offset + 1 > _next) _next = offset + 1;
        }
    }

    /// <summary>The stream is about to hand the record on; false once the partition is revoked (the record is dropped).</summary>
    public bool TryEmit()
    {
        lock (_lock)
        {
            if (_revoked) return false;
            _emitted++;
            return true;
        }
    }

    /// <summary>The record at <paramref name="offset"/> is persisted or dead-lettered.</summary>
    public void Done(long offset)
    {
        lock (_lock)
        {
            if (_open.Remove(offset)) _emitted--;
        }
    }

    /// <summary>Records received and not complete (in the hand-off buffer or in the pipeline).</summary>
    public int Open
    {
        get { lock (_lock) return _open.Count; }
    }

    /// <summary>Records handed to the stream and not complete.</summary>
    public int InFlight
    {
        get { lock (_lock) return _emitted; }
    }

    public bool IsRevoked
    {
        get { lock (_lock) return _revoked; }
    }

    /// <summary>The offset to commit: everything below it is complete; null when nothing was received.</summary>
    public long? CommitPoint
    {
        get
        {
            lock (_lock) return _open.Count > 0 ? _open.Min : _next >= 0 ? _next : null;
        }
    }

    /// <summary>The commit point when it moved past the last commit, else null.</summary>
    public long? Uncommitted()
    {
        var point = CommitPoint;
        return point is { } p && p > Committed ? p : null;
    }

    public void MarkCommitted(long offset)
    {
        lock (_lock) if (offset > Committed) Committed = offset;
    }

    /// <summary>Stops emitting: records not yet handed on are dropped (the next owner reads them from the commit).</summary>
    public void Revoke()
    {
        lock (_lock) _revoked = true;
    }
}
