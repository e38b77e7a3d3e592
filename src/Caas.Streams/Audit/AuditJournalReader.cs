using System.Data.Common;
using System.Runtime.CompilerServices;
using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.EventJournal;
using Caas.Actors.Hosting;
using Caas.Streams.ReadModel;

namespace Caas.Streams.Audit;

/// <summary>
/// The audit replay's read of the journal, in plain SQL beside the plugin's read journal: a page of rows per query,
/// each row deserialized by the journal's own codec, the next page read while the current one is written. Measured against the plugin's
/// <c>CurrentEventsByTag</c> (linq2db queries and an Akka.Streams graph per replay): see README, "Audit replay".
/// The semantics are the plugin's: a tag's events in journal order up to the highest ordering when the replay starts
/// (later events are not part of it), a persistence id's in sequence order; rows marked deleted are skipped.
/// </summary>
public sealed class AuditJournalReader(StorageOptions storage, ActorSystem system)
{
    /// <summary>Rows per query: large enough that a query's round trip is small beside its rows, small enough to stream.</summary>
    public const int PageSize = 1000;

    private readonly JournalRowCodec _codec = new((ExtendedActorSystem)system, "audit-replay");

    /// <summary>One journal row as the reader hands it on: the event and where it is.</summary>
    public readonly record struct Row(string PersistenceId, long Seq, long Ordering, object Event);

    /// <summary>The rows tagged <paramref name="tag"/> (the journal's Csv tags), page by page in journal order.</summary>
    public async IAsyncEnumerable<IReadOnlyList<Row>> ByTagAsync(string tag, [EnumeratorCancellation] CancellationToken ct = default)
    {
        await using var c = await JournalDb.OpenAsync(storage, ct);
        var upTo = await JournalDb.HeadAsync(c, ct);
        if (upTo == 0) yield break;
        // A window of the ordering per query, not a LIMIT: the tags filter has no index, and a planner without
        // statistics (a table just filled, before autovacuum analyzed it) estimates it at 0.5% and sorts the whole rest
        // of the range for each page (PostgreSQL, profiled: 24 ms a page at 50,000 rows on, 0.4 ms by the key's index;
        // the replay was quadratic). A window bounds every plan's work to the window's rows.
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT ordering, persistence_id, sequence_number, created, message, manifest, identifier FROM journal " +
                          $"WHERE ordering > @after AND ordering <= @until AND {NotDeleted} AND tags LIKE @tag ESCAPE '\\' ORDER BY ordering";
        var after = JournalDb.Parameter(cmd, "@after", 0L);
        var until = JournalDb.Parameter(cmd, "@until", Math.Min(PageSize, upTo));
        JournalDb.Parameter(cmd, "@tag", "%;" + EscapeLike(tag) + ";%");
        await foreach (var page in PagesAsync(cmd, pidColumn: true, null, _ =>
                       {
                           var end = (long)until.Value!;
                           after.Value = end;
                           until.Value = Math.Min(end + PageSize, upTo);
                           return end < upTo;
                       }, ct))
            yield return page;
    }

    /// <summary>The rows of one persistence id, page by page in sequence order.</summary>
    public async IAsyncEnumerable<IReadOnlyList<Row>> ByPersistenceIdAsync(string persistenceId, [EnumeratorCancellation] CancellationToken ct = default)
    {
        await using var c = await JournalDb.OpenAsync(storage, ct);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT ordering, sequence_number, created, message, manifest, identifier FROM journal " +
                          $"WHERE persistence_id = @pid AND sequence_number > @after AND {NotDeleted} ORDER BY sequence_number LIMIT @n";
        JournalDb.Parameter(cmd, "@pid", persistenceId);
        var after = JournalDb.Parameter(cmd, "@after", 0L);
        JournalDb.Parameter(cmd, "@n", PageSize);
        await foreach (var page in PagesAsync(cmd, pidColumn: false, persistenceId, rows =>
                       {
                           if (rows.Count < PageSize) return false;
                           after.Value = rows[^1].Seq;
                           return true;
                       }, ct))
            yield return page;
    }

    private string NotDeleted => storage.IsPostgres ? "NOT deleted" : "deleted = 0";

    private static string EscapeLike(string s) => s.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_");

    /// <summary>
    /// The query's pages; <paramref name="next"/> moves the query's bounds past a page and says whether there is more.
    /// The next page is read while the consumer handles the current one (on the thread pool: SQLite's reads are
    /// synchronous), so reading and writing the replay overlap; at most one page is read ahead.
    /// </summary>
    private async IAsyncEnumerable<IReadOnlyList<Row>> PagesAsync(DbCommand cmd, bool pidColumn, string? persistenceId,
        Func<List<Row>, bool> next, [EnumeratorCancellation] CancellationToken ct)
    {
        var page = await Task.Run(() => ReadPageAsync(cmd, pidColumn, persistenceId, ct), ct);
        while (true)
        {
            Task<List<Row>>? ahead = null;
            if (next(page)) ahead = Task.Run(() => ReadPageAsync(cmd, pidColumn, persistenceId, ct), ct);
            try
            {
                if (page.Count > 0) yield return page;
            }
            finally
            {
                // A consumer that stops early leaves no read running on the command it is about to dispose.
                if (ahead is { IsCompleted: false }) await ahead.ContinueWith(static _ => { }, TaskScheduler.Default);
            }
            if (ahead is null) yield break;
            page = await ahead;
        }
    }

    /// <summary>
    /// One query's rows. The columns are ordering, [persistence_id,] sequence_number, created, message, manifest,
    /// identifier. Each message is read as an array of its own: Microsoft.Data.Sqlite's <c>GetBytes</c> opened a blob
    /// stream per call (5% of the replay's samples, profiled).
    /// </summary>
    private async Task<List<Row>> ReadPageAsync(DbCommand cmd, bool pidColumn, string? persistenceId, CancellationToken ct)
    {
        var rows = new List<Row>(PageSize);
        var i = pidColumn ? 1 : 0;
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var pid = pidColumn ? reader.GetString(1) : persistenceId!;
            var seq = reader.GetInt64(1 + i);
            var message = reader.GetFieldValue<byte[]>(3 + i);
            var repr = _codec.FromRow(pid, seq, reader.GetInt64(2 + i), message, reader.IsDBNull(4 + i) ? null : reader.GetString(4 + i),
                reader.IsDBNull(5 + i) ? null : reader.GetInt32(5 + i), null);
            rows.Add(new Row(pid, seq, reader.GetInt64(0), repr.Payload));
        }
        return rows;
    }
}
