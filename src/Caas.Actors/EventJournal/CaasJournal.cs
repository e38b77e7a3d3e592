using System.Buffers;
using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Threading.Channels;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.Persistence;
using Akka.Persistence.Journal;

namespace Caas.Actors.EventJournal;

/// <summary>
/// The write side of the journal (<c>caas.journal.writer = caas</c>), on the tables Akka.Persistence.Sql reads: the
/// plugin's read journal, snapshot store and the tools that read the journal directly keep working. Writes from all
/// entities go into one queue; a bounded number of writers (<c>writers</c>, one on SQLite) each take what has gathered
/// (up to <c>max-batch-rows</c>) and store it in one transaction. A write whose sequence number is taken is rejected
/// on its own; a failed database write fails the writes of that batch only, and the next batch starts afresh.
/// </summary>
public sealed class CaasJournal : AsyncWriteJournal
{
    private readonly IJournalStore _store;
    private readonly JournalRowCodec _codec;
    // One item per WriteMessages call: an entity's writes of one call always share a transaction.
    private readonly Channel<PendingWrite[]> _queue = Channel.CreateUnbounded<PendingWrite[]>(new UnboundedChannelOptions { SingleWriter = false });
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<string, Task> _inFlight = new();
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly int _maxBatchRows;
    private readonly int _writers;
    private readonly int _replayBurst;
    private readonly long _pipelinedFrom;
    private readonly bool _autoInitialize;
    private readonly object _initLock = new();
    private Task? _initialized;
    private Task[] _writerLoops = [];

    public CaasJournal(Config config)
    {
        var connectionString = config.GetString("connection-string");
        var postgres = config.GetString("provider-name").StartsWith("PostgreSQL", StringComparison.OrdinalIgnoreCase);
        _maxBatchRows = Math.Max(1, config.GetInt("max-batch-rows", 1000));
        // SQLite takes one writer at a time: a second would only wait on the first's lock.
        _writers = postgres ? Math.Max(1, config.GetInt("writers", 2)) : 1;
        var readConnections = Math.Max(1, config.GetInt("read-connections", Environment.ProcessorCount));
        _store = postgres ? new PostgresJournalStore(connectionString, _writers + readConnections) : new SqliteJournalStore(connectionString,
            config.GetInt("sqlite-wal-autocheckpoint", SqliteJournalStore.DefaultWalAutocheckpointPages));
        _codec = new JournalRowCodec((ExtendedActorSystem)Context.System, Guid.NewGuid().ToString("N"), config.GetString("tag-separator", ";"));
        _autoInitialize = config.GetBoolean("auto-initialize", true);
        _replayBurst = Math.Max(1, config.GetInt("replay-burst", 256));
        _pipelinedFrom = config.GetLong("replay-pipelined-from", 2000);
    }

    /// <summary>The table exists (created when absent); a failed attempt (database not up yet) is tried again on next use.</summary>
    private Task Initialized()
    {
        lock (_initLock)
        {
            if (_initialized is null || _initialized.IsFaulted || _initialized.IsCanceled)
                _initialized = _autoInitialize ? _store.InitializeAsync(_stopping.Token) : Task.CompletedTask;
            return _initialized;
        }
    }

    protected override void PreStart()
    {
        base.PreStart();
        Initialized();
        _writerLoops = Enumerable.Range(0, _writers)
            .Select(_ => Task.Factory.StartNew(WriterLoop, _stopping.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap())
            .ToArray();
    }

    protected override void PostStop()
    {
        _queue.Writer.TryComplete();
        try { Task.WaitAll(_writerLoops, TimeSpan.FromSeconds(10)); }
        catch (AggregateException) { }
        _stopping.Cancel();
        _store.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
        _stopping.Dispose();
        base.PostStop();
    }

    protected override async Task<IImmutableList<Exception>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken)
    {
        var now = DateTime.UtcNow.Ticks;
        // The circuit breaker's token is not passed on: a write handed to a writer is stored or failed as a whole with
        // its batch, never abandoned half way; the breaker still answers the entity when its call-timeout passes.
        var writes = messages.ToList();
        var results = new Exception?[writes.Count];
        var pending = new List<(int Index, PendingWrite Write)>(writes.Count);
        for (var i = 0; i < writes.Count; i++)
        {
            try
            {
                var rows = ((IImmutableList<IPersistentRepresentation>)writes[i].Payload).Select(p => _codec.ToRow(p, now)).ToList();
                pending.Add((i, new PendingWrite(rows)));
            }
            catch (Exception e)
            {
                // Not serializable: rejected, the entity is told and carries on (the plugin does the same).
                results[i] = e;
            }
        }
        if (pending.Count > 0)
        {
            _queue.Writer.TryWrite(pending.Select(p => p.Write).ToArray());
            var all = Task.WhenAll(pending.Select(p => p.Write.Outcome));
            // Recovery of this persistence id waits for its write in flight (see ReadHighestSequenceNrAsync).
            var pid = writes[0].PersistenceId;
            _inFlight[pid] = all;
            try
            {
                var outcomes = await all;
                for (var k = 0; k < pending.Count; k++) results[pending[k].Index] = outcomes[k];
            }
            finally
            {
                ((ICollection<KeyValuePair<string, Task>>)_inFlight).Remove(new KeyValuePair<string, Task>(pid, all));
            }
        }
        return results.All(r => r is null) ? null! : results.Select(r => r!).ToImmutableList();
    }

    private async Task WriterLoop()
    {
        var reader = _queue.Reader;
        var batch = new List<PendingWrite>();
        while (await reader.WaitToReadAsync())
        {
            batch.Clear();
            var rows = 0;
            while (rows < _maxBatchRows && reader.TryRead(out var call))
                foreach (var w in call)
                {
                    batch.Add(w);
                    rows += w.Rows.Count;
                }
            if (batch.Count == 0) continue;
            try
            {
                await Initialized();
                await _store.WriteAsync(batch, _stopping.Token);
            }
            catch (Exception e)
            {
                _log.Warning(e, "Journal batch of {0} writes ({1} rows) failed; its entities are told.", batch.Count, rows);
                foreach (var w in batch) w.Failed(e);
            }
        }
    }

    // The plugin's read journal asks its write journal "IsInitialized" (internal types) before its first query and gives
    // up after 5 s; answered here once the table exists, so queries never run before it.
    private static readonly Type? IsInitializedType = Type.GetType("Akka.Persistence.Sql.Utility.IsInitialized, Akka.Persistence.Sql");
    private static readonly object? InitializedReply = Type.GetType("Akka.Persistence.Sql.Utility.Initialized, Akka.Persistence.Sql")
        ?.GetField("Instance", System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)?.GetValue(null);

    protected override bool ReceivePluginInternal(object message)
    {
        if (IsInitializedType is null || InitializedReply is null || message.GetType() != IsInitializedType) return false;
        Initialized().PipeTo(Sender, success: () => InitializedReply);
        return true;
    }

    public override async Task<long> ReadHighestSequenceNrAsync(string persistenceId, long fromSequenceNr, CancellationToken cancellationToken)
    {
        await Initialized();
        if (_inFlight.TryGetValue(persistenceId, out var wip))
        {
            try { await wip; }
            catch (Exception) { /* only its end matters: its rows are in or not */ }
        }
        return await _store.HighestSequenceNrAsync(persistenceId, fromSequenceNr, cancellationToken);
    }

    /// <summary>
    /// Replays in sequence order: a replay of <c>replay-pipelined-from</c> events or more (2,000) on two threads (see
    /// <see cref="ReplayPipelinedAsync"/>), a shorter one on this thread alone, its events handed over in bursts.
    /// </summary>
    public override async Task ReplayMessagesAsync(IActorContext context, string persistenceId, long fromSequenceNr, long toSequenceNr, long max,
        Action<IPersistentRepresentation> recoveryCallback)
    {
        await Initialized();
        if (_pipelinedFrom > 0 && Math.Min(max, toSequenceNr - fromSequenceNr + 1) >= _pipelinedFrom)
        {
            await ReplayPipelinedAsync(persistenceId, fromSequenceNr, toSequenceNr, max, recoveryCallback);
            return;
        }
        // Replayed events go to the entity in bursts: handed over one at a time as they are read, the entity (faster than
        // the read) probably emptied its mailbox after each and was scheduled again for the next; a fifth of a long
        // recovery's samples were the kernel's scheduling, and bursts cut its CPU by 19-44% (README: "Recovery in bursts").
        var burst = new List<IPersistentRepresentation>(_replayBurst);
        void Flush()
        {
            foreach (var p in burst) recoveryCallback(p);
            burst.Clear();
        }
        await _store.ReplayAsync(persistenceId, fromSequenceNr, toSequenceNr, max, r =>
        {
            burst.Add(_codec.FromRow(r.PersistenceId, r.SequenceNr, r.Created, r.Message, r.Manifest, r.Identifier, r.WriterUuid));
            if (burst.Count == _replayBurst) Flush();
        }, _stopping.Token);
        Flush();
    }

    /// <summary>Rows handed from the reader to the deserializing thread at a time, and how many such chunks may wait.</summary>
    private const int ChunkRows = 256, ChunksAhead = 4;

    /// <summary>
    /// A long replay (<c>replay-pipelined-from</c> events or more) on two threads: this one reads the rows and copies
    /// their bytes into chunks; a thread of its own deserializes each chunk and hands its events to the entity, in
    /// order, as one burst (<c>replay-burst</c> applies to the one-thread replay only). At most <see cref="ChunksAhead"/>
    /// chunks wait, so the reader waits for the deserializer rather than filling memory. A failure on either side fails
    /// the replay (the entity's recovery) with that failure; the other side stops.
    /// </summary>
    private async Task ReplayPipelinedAsync(string persistenceId, long fromSequenceNr, long toSequenceNr, long max,
        Action<IPersistentRepresentation> recoveryCallback)
    {
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        using var ready = new BlockingCollection<RowChunk>(new ConcurrentQueue<RowChunk>(), ChunksAhead);
        var free = new ConcurrentQueue<RowChunk>();
        var chunks = new List<RowChunk>(); // every chunk made, for their buffers' return (the reader's thread only)
        // Its own thread: it blocks while it waits for a chunk, which a thread of the pool must not.
        var delivering = Task.Factory.StartNew(() =>
        {
            try
            {
                foreach (var chunk in ready.GetConsumingEnumerable(abandon.Token))
                {
                    for (var i = 0; i < chunk.Count; i++)
                    {
                        ref readonly var row = ref chunk.Rows[i];
                        recoveryCallback(_codec.FromRow(persistenceId, row.SequenceNr, row.Created, chunk.Bytes.AsSpan(row.Offset, row.Length),
                            row.Manifest, row.Identifier, row.WriterUuid));
                    }
                    chunk.Clear();
                    free.Enqueue(chunk);
                }
            }
            catch
            {
                abandon.Cancel(); // the reader stops too, instead of waiting for room that never comes
                throw;
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Exception? readFailed = null;
        try
        {
            RowChunk? current = null;
            await _store.ReplayAsync(persistenceId, fromSequenceNr, toSequenceNr, max, r =>
            {
                if (current is null && !free.TryDequeue(out current)) chunks.Add(current = new RowChunk());
                current.Add(r);
                if (current.Count < ChunkRows) return;
                ready.Add(current, abandon.Token);
                current = null;
            }, abandon.Token);
            if (current is { Count: > 0 }) ready.Add(current, abandon.Token);
            ready.CompleteAdding();
        }
        catch (Exception e)
        {
            readFailed = e;
            abandon.Cancel(); // the deliverer stops after the chunk in hand
        }
        try
        {
            // A deserialization failure is the cause when there is one; the read's own failure otherwise (the deliverer
            // then only saw the cancellation).
            await delivering;
        }
        catch (OperationCanceledException) when (readFailed is not null) { }
        finally
        {
            // The deliverer has ended, so nothing reads the buffers any more.
            foreach (var chunk in chunks) chunk.Release();
        }
        if (readFailed is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(readFailed);
    }

    /// <summary>Rows of a pipelined replay: their fields, and their messages copied one after another into a pooled buffer.</summary>
    private sealed class RowChunk
    {
        public readonly record struct Row(long SequenceNr, long Created, int Offset, int Length, string? Manifest, int? Identifier, string? WriterUuid);

        public byte[] Bytes { get; private set; } = ArrayPool<byte>.Shared.Rent(ChunkRows * 1024);
        public Row[] Rows { get; } = new Row[ChunkRows];
        public int Count { get; private set; }
        private int _used;

        public void Add(in StoredRow r)
        {
            var length = r.Message.Length;
            if (_used + length > Bytes.Length)
            {
                var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(Bytes.Length * 2, _used + length));
                Bytes.AsSpan(0, _used).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(Bytes);
                Bytes = bigger;
            }
            r.Message.CopyTo(Bytes.AsSpan(_used));
            Rows[Count++] = new Row(r.SequenceNr, r.Created, _used, length, r.Manifest, r.Identifier, r.WriterUuid);
            _used += length;
        }

        public void Clear()
        {
            Array.Clear(Rows, 0, Count);
            Count = 0;
            _used = 0;
        }

        public void Release()
        {
            ArrayPool<byte>.Shared.Return(Bytes);
            Bytes = [];
        }
    }

    protected override async Task DeleteMessagesToAsync(string persistenceId, long toSequenceNr, CancellationToken cancellationToken)
    {
        await Initialized();
        await _store.DeleteToAsync(persistenceId, toSequenceNr, cancellationToken);
    }
}
