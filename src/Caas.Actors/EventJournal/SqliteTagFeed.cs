using Akka.Actor;
using Akka.Persistence.Query;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Caas.Actors.EventJournal;

/// <summary>
/// <see cref="JournalTagFeed"/> on a SQLite journal, read through SQLite's statement API.
/// <para>
/// Each read takes the journal's highest ordering value and the tagged rows after the reader's offset up to it, in one
/// read transaction (one snapshot), at most <see cref="JournalTagFeed.MaxRows"/> of them: it covers the ordering range
/// (offset, end], where end is the last row's ordering when the limit was reached and the head otherwise. SQLite has
/// one writer, whose transactions draw their ordering values and commit one after another, so a committed row has no
/// uncommitted row below it: a range once read is complete, and no gap has to be waited out (see
/// <see cref="PostgresTagFeed"/> for a database whose writers commit in parallel).
/// </para>
/// </summary>
public sealed class SqliteTagFeed : JournalTagFeed
{
    private readonly string _connectionString;
    private readonly JournalRowCodec _codec;
    private readonly string _separator;

    public SqliteTagFeed(ExtendedActorSystem system, string connectionString, TimeSpan refresh, int maxRows = 2000, int keptEvents = 8000,
        string tagSeparator = ";") : base(refresh, maxRows, keptEvents)
    {
        _connectionString = connectionString;
        _codec = new JournalRowCodec(system, string.Empty, tagSeparator);
        _separator = tagSeparator;
    }

    protected override Task<Range> ReadAsync(string tag, long from) => Task.Run(() => Read(tag, from));

    private const string HeadSql = "SELECT COALESCE(MAX(ordering), 0) FROM journal";

    private const string RowsSql = """
        SELECT ordering, persistence_id, sequence_number, created, message, manifest, identifier, tags FROM journal
        WHERE ordering > ?1 AND ordering <= ?2 AND instr(tags, ?3) > 0 AND deleted = 0
        ORDER BY ordering LIMIT ?4
        """;

    private Range Read(string tag, long from)
    {
        using var connection = new SqliteConnection(_connectionString);
        connection.Open();
        var db = connection.Handle!;
        // A reader of a WAL database is busy at most while it opens its snapshot: SQLite waits that out itself.
        raw.sqlite3_busy_timeout(db, 30_000);
        try
        {
            Exec(db, "BEGIN");
            try
            {
                // A new node's projections start before its first write creates the journal's table: until then the
                // journal is empty (not an error that restarts every projection with a backoff).
                if (!_tableSeen)
                {
                    if (!TableExists(db)) return new Range(from, from, []);
                    _tableSeen = true;
                }
                var head = Head(db);
                if (head <= from) return new Range(from, from, []);
                var events = new List<EventEnvelope>();
                Check(db, raw.sqlite3_prepare_v2(db, RowsSql, out var stmt));
                using (stmt)
                {
                    Check(db, raw.sqlite3_bind_int64(stmt, 1, from));
                    Check(db, raw.sqlite3_bind_int64(stmt, 2, head));
                    Check(db, raw.sqlite3_bind_text(stmt, 3, _separator + tag + _separator));
                    Check(db, raw.sqlite3_bind_int64(stmt, 4, MaxRows));
                    // Consecutive rows mostly repeat an entity, its manifest and its tags: those strings are reused.
                    var (pids, manifests, tagColumn) = (new SqliteJournalStore.Utf8Strings(), new SqliteJournalStore.Utf8Strings(), new SqliteJournalStore.Utf8Strings());
                    string? lastTags = null;
                    string[] lastSplit = [];
                    while (true)
                    {
                        var rc = raw.sqlite3_step(stmt);
                        if (rc == raw.SQLITE_DONE) break;
                        if (rc != raw.SQLITE_ROW) Check(db, rc);
                        var ordering = raw.sqlite3_column_int64(stmt, 0);
                        var pid = pids.Of(stmt, 1)!;
                        var seq = raw.sqlite3_column_int64(stmt, 2);
                        var created = raw.sqlite3_column_int64(stmt, 3);
                        var manifest = manifests.Of(stmt, 5);
                        int? identifier = raw.sqlite3_column_type(stmt, 6) == raw.SQLITE_NULL ? null : raw.sqlite3_column_int(stmt, 6);
                        var tags = tagColumn.Of(stmt, 7);
                        if (!ReferenceEquals(tags, lastTags)) (lastTags, lastSplit) = (tags, _codec.SplitTags(tags));
                        var payload = _codec.FromRow(pid, seq, created, raw.sqlite3_column_blob(stmt, 4), manifest, identifier, null).Payload;
                        events.Add(new EventEnvelope(Offset.Sequence(ordering), pid, seq, payload, created, lastSplit));
                    }
                }
                // The limit reached: the range ends at the last row read; else everything up to the head was read.
                var to = events.Count == MaxRows ? ((Sequence)events[^1].Offset).Value : head;
                return new Range(from, to, [.. events]);
            }
            finally
            {
                Exec(db, "COMMIT");
            }
        }
        finally
        {
            raw.sqlite3_busy_timeout(db, 0);
        }
    }

    private volatile bool _tableSeen;

    private static bool TableExists(sqlite3 db)
    {
        Check(db, raw.sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal'", out var stmt));
        using (stmt)
        {
            var rc = raw.sqlite3_step(stmt);
            if (rc != raw.SQLITE_ROW && rc != raw.SQLITE_DONE) Check(db, rc);
            return rc == raw.SQLITE_ROW;
        }
    }

    private static long Head(sqlite3 db)
    {
        Check(db, raw.sqlite3_prepare_v2(db, HeadSql, out var stmt));
        using (stmt)
        {
            var rc = raw.sqlite3_step(stmt);
            if (rc != raw.SQLITE_ROW) Check(db, rc);
            return raw.sqlite3_column_int64(stmt, 0);
        }
    }

    private static void Exec(sqlite3 db, string sql) => Check(db, raw.sqlite3_exec(db, sql));

    private static void Check(sqlite3 db, int rc) => SqliteJournalStore.Check(db, rc);
}
