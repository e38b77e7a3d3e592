using System.Data.Common;
using System.Text.Json;
using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Privacy;
using Caas.Actors.Serialization;

namespace Caas.Streams.ReadModel;

/// <summary>
/// Writes a batch of conversation events into the read-model tables and the projection's offset in one
/// transaction: a crash replays the batch, and a replayed batch never writes twice.
/// </summary>
public sealed class ReadModelWriter(ReadModelStore store, ProjectionProgress? progress = null)
{
    public const string ProjectionName = "conversations";

    /// <summary>
    /// The rm_progress row that says from which projection offset the marks are complete: 0 for a read model built from
    /// the journal's start (a persistence id without a mark has had none of its events applied), higher for one that
    /// existed before marks were kept (such an id's mark is unknown until its next event).
    /// </summary>
    private const string TrackedSince = "$tracked-since";

    /// <summary>Reads a persistence id's missing events (sequence numbers from..to) from the journal.</summary>
    public delegate Task<IReadOnlyList<EventEnvelope>> JournalReader(string persistenceId, long fromSeq, long toSeq, CancellationToken ct);

    public Task<long> LoadOffsetAsync(string name = ProjectionName, CancellationToken ct = default) => LoadOffsetAsync(store, name, ct);

    /// <summary>A projection's stored offset in the read model's database (0: none yet).</summary>
    public static async Task<long> LoadOffsetAsync(ReadModelStore store, string name, CancellationToken ct = default)
    {
        await using var connection = await store.OpenAsync(ct);
        await using var cmd = Command(connection, null, "SELECT last_offset FROM rm_projection_offsets WHERE name = @name", ("name", name));
        return await cmd.ExecuteScalarAsync(ct) is { } value and not DBNull ? Convert.ToInt64(value) : 0L;
    }

    /// <summary>Stores a projection's offset, inside the transaction that wrote what it covers.</summary>
    public static async Task SaveOffsetAsync(DbConnection c, DbTransaction? tx, string name, long offset, CancellationToken ct = default)
    {
        await using var cmd = Command(c, tx,
            "INSERT INTO rm_projection_offsets (name, last_offset) VALUES (@name, @offset) ON CONFLICT (name) DO UPDATE SET last_offset = excluded.last_offset",
            ("name", name), ("offset", offset));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Empties the projection's tables and forgets its offset, in one transaction: a rebuild starts here.</summary>
    public async Task ResetAsync(string name = ProjectionName, CancellationToken ct = default)
    {
        await using var connection = await store.OpenAsync(ct);
        using var turn = await store.WriteTurnAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        foreach (var table in new[] { "rm_conversations", "rm_memberships", "rm_people", "rm_messages", "rm_moderation_log", "rm_progress" })
            await using (var cmd = Command(connection, tx, "DELETE FROM " + table))
                await cmd.ExecuteNonQueryAsync(ct);
        await using (var cmd = Command(connection, tx, "DELETE FROM rm_projection_offsets WHERE name = @name", ("name", name)))
            await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>
    /// Writes a batch. Each persistence id's events are applied in journal order exactly once: events at or below its
    /// progress mark (already applied) are skipped, and a hole below its first event (an earlier event that committed
    /// after later ones were read, so the events-by-tag query passed it by) is filled from the journal first, when
    /// <paramref name="readJournal"/> is given.
    /// </summary>
    /// <param name="storeOffset">False for events applied out of the tag stream's order (late commits): the offset stays.</param>
    public async Task<WriteReport> WriteAsync(IReadOnlyList<EventEnvelope> batch, string name = ProjectionName, CancellationToken ct = default,
        JournalReader? readJournal = null, bool storeOffset = true)
    {
        if (batch.Count == 0) return WriteReport.Empty;
        await using var connection = await store.OpenAsync(ct);
        using var turn = await store.WriteTurnAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var (marks, trackedSince) = await LoadMarksAsync(connection, tx, batch.Select(e => e.PersistenceId).ToHashSet(StringComparer.Ordinal), ct);
        var complete = trackedSince is 0;
        var holes = new List<Hole>();
        var ordered = new List<EventEnvelope>(batch.Count);
        var firstSeen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var envelope in batch)
        {
            var pid = envelope.PersistenceId;
            var known = marks.TryGetValue(pid, out var mark);
            if (firstSeen.Add(pid) && (known || complete) && envelope.SequenceNr > mark + 1)
            {
                var hole = new Hole(pid, mark + 1, envelope.SequenceNr - 1);
                holes.Add(hole);
                if (readJournal is not null) ordered.AddRange(await readJournal(pid, hole.From, hole.To, ct));
            }
            ordered.Add(envelope);
        }

        // Message rows are changed in memory and written once at the end: new messages as inserts, and the rows that
        // edits, deletes and reactions touch (read up front in a few queries) as updates. Other events (conversations,
        // members, moderation) are written as they come. Conversations' last_seq is raised once each, at the end.
        var events = new List<(string Tenant, string Conversation, long Offset, IConversationEvent Event)>(ordered.Count);
        var posted = new HashSet<(string, string, long)>();
        var touched = new HashSet<(string, string, long)>();
        foreach (var envelope in ordered)
        {
            if (marks.TryGetValue(envelope.PersistenceId, out var applied) && envelope.SequenceNr <= applied) continue;
            marks[envelope.PersistenceId] = envelope.SequenceNr;
            if (envelope.Event is not IConversationEvent stored) continue;
            var (tenant, conversation) = Ids.SplitEntityId(envelope.PersistenceId["conversation|".Length..]);
            var e = ContentSealing.InConversation(stored, conversation);
            events.Add((tenant, conversation, ((Sequence)envelope.Offset).Value, e));
            if (e is MessagePosted p) posted.Add((tenant, conversation, p.Seq));
            else if (TargetSeq(e) is { } seq && !posted.Contains((tenant, conversation, seq))) touched.Add((tenant, conversation, seq));
        }
        var raised = marks; // only the batch's ids were loaded, so every entry is one this batch may raise

        var rows = await LoadRowsAsync(connection, tx, touched, ct);
        var lastSeq = new Dictionary<(string Tenant, string Conversation), long>();
        foreach (var (tenant, conversation, offset, e) in events)
        {
            switch (e)
            {
                case MessagePosted p:
                    rows.TryAdd((tenant, conversation, p.Seq), MessageRow.New(tenant, conversation, p));
                    lastSeq[(tenant, conversation)] = Math.Max(lastSeq.GetValueOrDefault((tenant, conversation)), p.Seq);
                    break;
                case MessageEdited or MessageDeleted or ReactionAdded or ReactionRemoved or MessageEnriched:
                    // A message the read model does not have (outside the projection's history) is left alone.
                    if (rows.TryGetValue((tenant, conversation, TargetSeq(e)!.Value), out var row)) row.Apply(e);
                    break;
                default:
                    await ApplyAsync(connection, tx, tenant, conversation, offset, e, ct);
                    break;
            }
        }

        var postgres = connection is not Microsoft.Data.Sqlite.SqliteConnection;
        var inserts = rows.Values.Where(r => !r.Existing).ToList();
        var conflicts = await FindMessageIdConflictsAsync(connection, tx, inserts, ct);
        for (var i = 0; i < inserts.Count; i += MaxRowsPerInsert)
        {
            var chunk = inserts.GetRange(i, Math.Min(MaxRowsPerInsert, inserts.Count - i));
            if (postgres) await InsertMessagesAsync(connection, tx, chunk, ct);
            else InsertMessagesOneByOne(connection, chunk);
        }
        // PostgreSQL raises every conversation's last_seq in one statement (arrays unnested); SQLite, in-process, per row.
        IEnumerable<(string, (string, object?)[])> raise = postgres && lastSeq.Count > 0
            ? [(
                "UPDATE rm_conversations AS r SET last_seq = v.seq FROM unnest(@ts, @cs, @ss) AS v(t, c, seq) " +
                "WHERE r.tenant_id = v.t AND r.conversation_id = v.c AND r.last_seq < v.seq",
                [("ts", lastSeq.Keys.Select(k => k.Tenant).ToArray()), ("cs", lastSeq.Keys.Select(k => k.Conversation).ToArray()),
                 ("ss", lastSeq.Values.ToArray())])]
            : lastSeq.Select(kv => (
                "UPDATE rm_conversations SET last_seq = @seq WHERE tenant_id = @t AND conversation_id = @c AND last_seq < @seq",
                new (string, object?)[] { ("t", kv.Key.Tenant), ("c", kv.Key.Conversation), ("seq", kv.Value) }));
        var statements = rows.Values.Where(r => r.Existing && r.Changed).Select(r => r.Update())
            .Concat(raise)
            .Concat(RaiseMarks(raised, postgres))
            .ToList();
        if (storeOffset)
            statements.Add((
                "INSERT INTO rm_projection_offsets (name, last_offset) VALUES (@name, @offset) " +
                "ON CONFLICT (name) DO UPDATE SET last_offset = excluded.last_offset",
                [("name", name), ("offset", ((Sequence)batch[^1].Offset).Value)]));
        if (trackedSince is null)
        {
            // The first batch with marks: they are complete from here on (from the start when nothing was projected before).
            var since = await LoadOffsetAsync(connection, tx, name, ct);
            statements.Add(("INSERT INTO rm_progress (persistence_id, sequence_nr) VALUES (@p, @s) ON CONFLICT (persistence_id) DO NOTHING",
                [("p", TrackedSince), ("s", since)]));
        }
        await ExecuteAllAsync(connection, tx, statements, ct);
        await tx.CommitAsync(ct);
        progress?.Committed(raised);
        return new WriteReport(conflicts, holes);
    }

    /// <summary>
    /// The progress marks of these persistence ids, for those whose marks are known: every id once marks are complete
    /// (a missing one is 0), otherwise only those with a mark.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, long>> MarksAsync(IEnumerable<string> persistenceIds, CancellationToken ct = default)
    {
        var ids = persistenceIds.ToHashSet(StringComparer.Ordinal);
        await using var connection = await store.OpenAsync(ct);
        using var turn = await store.WriteTurnAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var (marks, trackedSince) = await LoadMarksAsync(connection, tx, ids, ct);
        if (trackedSince is 0)
            foreach (var id in ids) marks.TryAdd(id, 0);
        return marks;
    }

    /// <summary>Progress marks of the batch's persistence ids, and the offset from which marks are complete (null: none kept yet).</summary>
    private static async Task<(Dictionary<string, long> Marks, long? TrackedSince)> LoadMarksAsync(DbConnection c, DbTransaction tx,
        HashSet<string> ids, CancellationToken ct)
    {
        var marks = new Dictionary<string, long>(StringComparer.Ordinal);
        long? since = null;
        foreach (var chunk in InListChunks(c, ids.Append(TrackedSince)))
        {
            await using var cmd = InList(c, tx, "SELECT persistence_id, sequence_nr FROM rm_progress WHERE persistence_id IN ({0})", chunk);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                if (r.GetString(0) == TrackedSince) since = r.GetInt64(1);
                else marks[r.GetString(0)] = r.GetInt64(1);
            }
        }
        return (marks, since);
    }

    private static async Task<long> LoadOffsetAsync(DbConnection c, DbTransaction tx, string name, CancellationToken ct)
    {
        await using var cmd = Command(c, tx, "SELECT last_offset FROM rm_projection_offsets WHERE name = @name", ("name", name));
        return await cmd.ExecuteScalarAsync(ct) is { } value and not DBNull ? Convert.ToInt64(value) : 0L;
    }

    /// <summary>Raises the marks (never lowers one): one statement on PostgreSQL (arrays unnested), one per id on SQLite.</summary>
    private static IEnumerable<(string, (string, object?)[])> RaiseMarks(Dictionary<string, long> marks, bool postgres)
    {
        if (marks.Count == 0) return [];
        const string upsert = " ON CONFLICT (persistence_id) DO UPDATE SET sequence_nr = excluded.sequence_nr WHERE rm_progress.sequence_nr < excluded.sequence_nr";
        return postgres
            ? [("INSERT INTO rm_progress (persistence_id, sequence_nr) SELECT * FROM unnest(@ps, @ss)" + upsert,
                [("ps", marks.Keys.ToArray()), ("ss", marks.Values.ToArray())])]
            : marks.Select(kv => ("INSERT INTO rm_progress (persistence_id, sequence_nr) VALUES (@p, @s)" + upsert,
                new (string, object?)[] { ("p", kv.Key), ("s", kv.Value) }));
    }

    /// <summary>
    /// New rows whose message id the read model (or this batch) already holds under another seq. They are stored all the
    /// same (the id index is not unique), so no journal row is ever missing; the caller reports them.
    /// </summary>
    private static async Task<IReadOnlyList<MessageIdConflict>> FindMessageIdConflictsAsync(DbConnection c, DbTransaction tx, List<MessageRow> inserts,
        CancellationToken ct)
    {
        var conflicts = new List<MessageIdConflict>();
        var seen = new Dictionary<(string, string), MessageRow>();
        foreach (var row in inserts.OrderBy(r => r.Seq))
            if (!seen.TryAdd((row.Tenant, row.MessageId), row))
                conflicts.Add(new MessageIdConflict(row.Tenant, row.MessageId, seen[(row.Tenant, row.MessageId)].Conversation,
                    seen[(row.Tenant, row.MessageId)].Seq, row.Conversation, row.Seq));
        if (seen.Count == 0) return conflicts;
        var postgres = c is not Microsoft.Data.Sqlite.SqliteConnection;
        // PostgreSQL: the ids as two arrays, one statement per batch, each id looked up by the message-id index in a
        // LATERAL subquery that OFFSET 0 keeps from being flattened into a join: with statistics that lag a growing table
        // the planner chose, for a list of (tenant, message id) pairs, the tenant's whole index range filtered by the
        // list (60-100 ms a batch, growing with the tenant), and for a plain join a merge join over a sort of the whole
        // table (75 ms); a lookup per id costs about 1 µs each (auto_explain, EXPLAIN ANALYZE; README, "The read
        // model's message-id check"). SQLite: the pairs as one JSON array, each looked up by the same index (see InList).
        var pairs = seen.Values.ToArray();
        var args = new List<(string, object?)>(pairs.Length * 2);
        string sql;
        if (postgres)
        {
            sql = "SELECT r.tenant_id, r.message_id, r.conversation_id, r.seq FROM unnest(@ts, @ms) AS k(t, m) CROSS JOIN LATERAL " +
                  "(SELECT x.tenant_id, x.message_id, x.conversation_id, x.seq FROM rm_messages x WHERE x.tenant_id = k.t AND x.message_id = k.m OFFSET 0) r";
            args.Add(("ts", pairs.Select(x => x.Tenant).ToArray()));
            args.Add(("ms", pairs.Select(x => x.MessageId).ToArray()));
        }
        else
        {
            sql = "SELECT tenant_id, message_id, conversation_id, seq FROM rm_messages WHERE (tenant_id, message_id) IN " +
                  "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(@pairs))";
            args.Add(("pairs", JsonSerializer.Serialize(pairs.Select(x => (string[])[x.Tenant, x.MessageId]))));
        }
        await using var cmd = Command(c, tx, sql, [.. args]);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            var row = seen[(r.GetString(0), r.GetString(1))];
            // The same row read again (a replayed batch) is no conflict.
            if (r.GetString(2) == row.Conversation && r.GetInt64(3) == row.Seq) continue;
            conflicts.Add(new MessageIdConflict(row.Tenant, row.MessageId, r.GetString(2), r.GetInt64(3), row.Conversation, row.Seq));
        }
        return conflicts;
    }

    private const int MaxRowsPerInsert = 500;

    /// <summary>The message an edit, delete or reaction changes; null for every other event.</summary>
    private static long? TargetSeq(IConversationEvent e) => e switch
    {
        MessageEdited m => m.Seq,
        MessageDeleted d => d.Seq,
        ReactionAdded a => a.Seq,
        ReactionRemoved r => r.Seq,
        MessageEnriched en => en.Seq,
        _ => null,
    };

    /// <summary>Runs the statements: one round trip on PostgreSQL (a batch), one by one in-process on SQLite.</summary>
    private static async Task ExecuteAllAsync(DbConnection c, DbTransaction tx, List<(string Sql, (string, object?)[] Args)> statements, CancellationToken ct)
    {
        if (c.CanCreateBatch)
        {
            for (var i = 0; i < statements.Count; i += 500)
            {
                await using var batch = c.CreateBatch();
                batch.Transaction = tx;
                foreach (var (sql, args) in statements.Skip(i).Take(500))
                {
                    var command = batch.CreateBatchCommand();
                    command.CommandText = sql;
                    using var template = Command(c, tx, sql, args);
                    foreach (DbParameter p in template.Parameters)
                    {
                        var copy = command.CreateParameter();
                        copy.ParameterName = p.ParameterName;
                        // Only NULLs carry a set type; every other value (arrays included) is inferred from itself.
                        if (p.Value is DBNull) copy.DbType = p.DbType;
                        copy.Value = p.Value;
                        command.Parameters.Add(copy);
                    }
                    batch.BatchCommands.Add(command);
                }
                await batch.ExecuteNonQueryAsync(ct);
            }
            return;
        }
        RunAll((Microsoft.Data.Sqlite.SqliteConnection)c, statements);
    }

    /// <summary>
    /// SQLite: the statements run in-process inside the caller's transaction, each distinct text prepared once and its
    /// parameters bound by position (<see cref="SqliteStatement"/>): a batch's hundreds of mark and last-seq upserts are a
    /// few prepared statements, not a parse and a by-name binding each.
    /// </summary>
    internal static void RunAll(Microsoft.Data.Sqlite.SqliteConnection c, IEnumerable<(string Sql, (string Name, object? Value)[] Args)> statements)
    {
        var prepared = new Dictionary<string, (SqliteStatement Statement, Dictionary<string, int> Positions)>(StringComparer.Ordinal);
        try
        {
            foreach (var (sql, args) in statements)
            {
                if (!prepared.TryGetValue(sql, out var entry))
                    prepared[sql] = entry = (SqliteStatement.Prepare(c, sql), new Dictionary<string, int>(StringComparer.Ordinal));
                foreach (var (name, value) in args)
                {
                    if (!entry.Positions.TryGetValue(name, out var position))
                        entry.Positions[name] = position = entry.Statement.IndexOf("@" + name);
                    // As the ADO.NET command did: a value the text does not use is ignored.
                    if (position > 0) entry.Statement.BindValue(position, value is TypedNull ? null : value);
                }
                entry.Statement.Run();
            }
        }
        finally
        {
            foreach (var (statement, _) in prepared.Values) statement.Dispose();
        }
    }

    private const string RowColumns = "tenant_id, conversation_id, seq, message_id, sender_id, content_type, text, created_at, edited_at, deleted, reactions, versions, enrichment, attachment";

    /// <summary>Reads the message rows that this batch's edits, deletes and reactions change, a few hundred per query.</summary>
    private static async Task<Dictionary<(string, string, long), MessageRow>> LoadRowsAsync(DbConnection c, DbTransaction tx,
        HashSet<(string Tenant, string Conversation, long Seq)> keys, CancellationToken ct)
    {
        var rows = new Dictionary<(string, string, long), MessageRow>();
        foreach (var chunk in keys.Chunk(200))
        {
            var sql = new System.Text.StringBuilder($"SELECT {RowColumns} FROM rm_messages WHERE (tenant_id, conversation_id, seq) IN (");
            var args = new List<(string, object?)>(chunk.Length * 3);
            for (var i = 0; i < chunk.Length; i++)
            {
                sql.Append(i == 0 ? "" : ", ").Append($"(@t{i}, @c{i}, @s{i})");
                args.Add(($"t{i}", chunk[i].Tenant));
                args.Add(($"c{i}", chunk[i].Conversation));
                args.Add(($"s{i}", chunk[i].Seq));
            }
            await using var cmd = Command(c, tx, sql.Append(')').ToString(), [.. args]);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                var row = MessageRow.Read(r);
                rows[(row.Tenant, row.Conversation, row.Seq)] = row;
            }
        }
        return rows;
    }

    /// <summary>One rm_messages row in memory: new (from its MessagePosted) or read back, with the batch's changes applied.</summary>
    private sealed class MessageRow
    {
        public required string Tenant { get; init; }
        public required string Conversation { get; init; }
        public required long Seq { get; init; }
        public required string MessageId { get; init; }
        public required string SenderId { get; init; }
        public required long CreatedAt { get; init; }
        public bool Existing { get; private init; }
        public bool Changed { get; private set; }
        public string? ContentType { get; private set; }
        public string? Text { get; private set; }
        public long? EditedAt { get; private set; }
        public bool Deleted { get; private set; }
        public string? Enrichment { get; private set; }
        public string? Attachment { get; private set; }
        public List<MessageVersion> Versions { get; private init; } = [];
        public SortedDictionary<string, SortedSet<string>> Reactions { get; private init; } = new(StringComparer.Ordinal);

        public static MessageRow New(string tenant, string conversation, MessagePosted p) => new()
        {
            Tenant = tenant, Conversation = conversation, Seq = p.Seq, MessageId = p.MessageId, SenderId = p.Meta.ActorId,
            CreatedAt = p.Meta.OccurredAt.ToUnixTimeMilliseconds(), ContentType = p.Content.Type, Text = p.Content.Text,
            Enrichment = p.Enrichment is null ? null : JsonSerializer.Serialize(p.Enrichment, CaasSerializer.Json),
            Attachment = AttachmentColumn.Write(p.Content.Attachment),
        };

        public static MessageRow Read(DbDataReader r) => new()
        {
            Tenant = r.GetString(0), Conversation = r.GetString(1), Seq = r.GetInt64(2), MessageId = r.GetString(3), SenderId = r.GetString(4),
            ContentType = r.IsDBNull(5) ? null : r.GetString(5), Text = r.IsDBNull(6) ? null : r.GetString(6), CreatedAt = r.GetInt64(7),
            EditedAt = r.IsDBNull(8) ? null : r.GetInt64(8), Deleted = Convert.ToInt64(r.GetValue(9)) != 0,
            Reactions = JsonSerializer.Deserialize<SortedDictionary<string, SortedSet<string>>>(r.GetString(10)) is { } reactions
                ? new SortedDictionary<string, SortedSet<string>>(reactions.ToDictionary(kv => kv.Key, kv => new SortedSet<string>(kv.Value, StringComparer.Ordinal)), StringComparer.Ordinal)
                : new(StringComparer.Ordinal),
            Versions = JsonSerializer.Deserialize<List<MessageVersion>>(r.GetString(11), CaasSerializer.Json) ?? [],
            Enrichment = r.IsDBNull(12) ? null : r.GetString(12),
            Attachment = r.IsDBNull(13) ? null : r.GetString(13),
            Existing = true,
        };

        public void Apply(IConversationEvent e)
        {
            Changed = true;
            switch (e)
            {
                case MessageEdited edit:
                    // Earlier versions are kept, oldest first, each with the time it stopped being current; an erased
                    // author's history is erased with it (as UserErasure scrubs it).
                    if (edit.Content.Type == ContentSealing.Erased.Type) Versions.Clear();
                    else Versions.Add(new MessageVersion(Text, edit.Meta.OccurredAt));
                    Text = edit.Content.Text;
                    // An attachment message's edit changes its caption; the file stays. An erased author's goes.
                    if (edit.Content.Type == ContentSealing.Erased.Type) Attachment = null;
                    else if (edit.Content.Attachment is { } a) Attachment = AttachmentColumn.Write(a);
                    if (Attachment is null || edit.Content.Type != MessageContent.TextType) ContentType = edit.Content.Type;
                    EditedAt = edit.Meta.OccurredAt.ToUnixTimeMilliseconds();
                    break;
                case MessageDeleted:
                    Deleted = true;
                    Text = null;
                    ContentType = null;
                    Versions.Clear();
                    Enrichment = null;
                    Attachment = null;
                    break;
                case MessageEnriched enriched:
                    // A deleted message keeps no enrichment; an erased author's reads as none (null once the key is gone).
                    if (!Deleted)
                        Enrichment = enriched.Enrichment is { } en ? JsonSerializer.Serialize(en, CaasSerializer.Json) : null;
                    break;
                default:
                    ApplyReaction(Reactions, e);
                    break;
            }
        }

        public (string, (string, object?)[]) Update() => (
            "UPDATE rm_messages SET content_type = @y, text = @x, edited_at = @d, deleted = @z, reactions = @r, versions = @v, enrichment = @e, attachment = @f " +
            "WHERE tenant_id = @t AND conversation_id = @c AND seq = @s",
            [("t", Tenant), ("c", Conversation), ("s", Seq), ("y", ContentType), ("x", Text),
             ("d", EditedAt is { } edited ? edited : new TypedNull(System.Data.DbType.Int64)), ("z", Deleted ? 1 : 0),
             ("r", Reactions.Count == 0 ? "{}" : JsonSerializer.Serialize(Reactions)),
             ("v", Versions.Count == 0 ? "[]" : JsonSerializer.Serialize(Versions, CaasSerializer.Json)), ("e", Enrichment), ("f", Attachment)]);
    }

    /// <summary>PostgreSQL: the batch's new rows in one statement, each column sent as one array and unnested.</summary>
    private static async Task InsertMessagesAsync(DbConnection c, DbTransaction tx, List<MessageRow> rows, CancellationToken ct)
    {
        await using var insert = Command(c, tx,
            $"INSERT INTO rm_messages ({RowColumns}) SELECT * FROM unnest(@t, @c, @s, @m, @u, @y, @x, @a, @d, @z, @r, @v, @e, @f) ON CONFLICT DO NOTHING",
            ("t", rows.Select(r => r.Tenant).ToArray()),
            ("c", rows.Select(r => r.Conversation).ToArray()),
            ("s", rows.Select(r => r.Seq).ToArray()),
            ("m", rows.Select(r => r.MessageId).ToArray()),
            ("u", rows.Select(r => r.SenderId).ToArray()),
            ("y", rows.Select(r => r.ContentType).ToArray()),
            ("x", rows.Select(r => r.Text).ToArray()),
            ("a", rows.Select(r => r.CreatedAt).ToArray()),
            ("d", rows.Select(r => r.EditedAt).ToArray()),
            ("z", rows.Select(r => r.Deleted ? 1 : 0).ToArray()),
            ("r", rows.Select(r => r.Reactions.Count == 0 ? "{}" : JsonSerializer.Serialize(r.Reactions)).ToArray()),
            ("v", rows.Select(r => r.Versions.Count == 0 ? "[]" : JsonSerializer.Serialize(r.Versions, CaasSerializer.Json)).ToArray()),
            ("e", rows.Select(r => r.Enrichment).ToArray()),
            ("f", rows.Select(r => r.Attachment).ToArray()));
        await insert.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// SQLite: one prepared single-row INSERT, run per row inside the transaction (no round trips to save, and
    /// SQLite looks each named parameter up by a linear scan, so a 6,500-parameter statement costs quadratic time),
    /// its values bound by position (<see cref="SqliteStatement"/>).
    /// </summary>
    private static void InsertMessagesOneByOne(DbConnection c, List<MessageRow> rows)
    {
        using var insert = SqliteStatement.Prepare((Microsoft.Data.Sqlite.SqliteConnection)c,
            $"INSERT INTO rm_messages ({RowColumns}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT DO NOTHING");
        foreach (var row in rows)
        {
            insert.Bind(1, row.Tenant).Bind(2, row.Conversation).Bind(3, row.Seq).Bind(4, row.MessageId).Bind(5, row.SenderId)
                .Bind(6, row.ContentType).Bind(7, row.Text).Bind(8, row.CreatedAt).Bind(9, row.EditedAt).Bind(10, row.Deleted ? 1L : 0L)
                .Bind(11, row.Reactions.Count == 0 ? "{}" : JsonSerializer.Serialize(row.Reactions))
                .Bind(12, row.Versions.Count == 0 ? "[]" : JsonSerializer.Serialize(row.Versions, CaasSerializer.Json))
                .Bind(13, row.Enrichment).Bind(14, row.Attachment)
                .Run();
        }
    }

    private static async Task ApplyAsync(DbConnection c, DbTransaction tx, string tenant, string conversation, long offset,
        IConversationEvent e, CancellationToken ct)
    {
        var at = e.Meta.OccurredAt.ToUnixTimeMilliseconds();
        (string Sql, (string, object?)[] Args)[] statements = e switch
        {
            ConversationCreated cc =>
            [
                ("INSERT INTO rm_conversations (tenant_id, conversation_id, type, title, metadata, created_at, created_by, deleted, last_seq) " +
                 "VALUES (@t, @c, @type, @title, '{}', @at, @by, 0, 0) ON CONFLICT DO NOTHING",
                    [("t", tenant), ("c", conversation), ("type", cc.Type), ("title", cc.Title), ("at", at), ("by", cc.Meta.ActorId)]),
                .. cc.Members.SelectMany(m => UpsertMember(tenant, conversation, m.UserId, m.Role, at)),
            ],
            ConversationUpdated u =>
            [
                ("UPDATE rm_conversations SET title = COALESCE(@title, title), metadata = COALESCE(@metadata, metadata) " +
                 "WHERE tenant_id = @t AND conversation_id = @c",
                    [("t", tenant), ("c", conversation), ("title", u.Title),
                     ("metadata", u.Metadata is null ? null : JsonSerializer.Serialize(u.Metadata))]),
            ],
            ConversationDeleted => [("UPDATE rm_conversations SET deleted = 1 WHERE tenant_id = @t AND conversation_id = @c", [("t", tenant), ("c", conversation)])],
            MemberAdded a => [.. UpsertMember(tenant, conversation, a.UserId, a.Role, at)],
            MemberRemoved r => [.. RemoveMember(tenant, conversation, r.UserId)],
            MemberRoleChanged rc =>
            [
                ("UPDATE rm_memberships SET role = @role WHERE tenant_id = @t AND conversation_id = @c AND user_id = @u",
                    [("t", tenant), ("c", conversation), ("u", rc.UserId), ("role", rc.Role.ToWire())]),
            ],
            UserBanned b => [.. RemoveMember(tenant, conversation, b.UserId), Log(tenant, conversation, offset, "ban", b.Meta, b.UserId, b.Until, b.Reason)],
            UserKicked k => [.. RemoveMember(tenant, conversation, k.UserId), Log(tenant, conversation, offset, "kick", k.Meta, k.UserId, k.Until, k.Reason)],
            UserUnbanned ub => [Log(tenant, conversation, offset, "unban", ub.Meta, ub.UserId, null, ub.Reason)],
            UserMuted mu => [Log(tenant, conversation, offset, "mute", mu.Meta, mu.UserId, mu.Until, mu.Reason)],
            UserUnmuted um => [Log(tenant, conversation, offset, "unmute", um.Meta, um.UserId, null, um.Reason)],
            _ => [],
        };
        foreach (var (sql, args) in statements)
        {
            await using var cmd = Command(c, tx, sql, args);
            await cmd.ExecuteNonQueryAsync(ct);
        }

    }

    /// <summary>Adds or removes the actor's reaction: one rule for rows in the database and rows still in a batch.</summary>
    private static void ApplyReaction(SortedDictionary<string, SortedSet<string>> reactions, IConversationEvent e)
    {
        switch (e)
        {
            case ReactionAdded a:
                if (!reactions.TryGetValue(a.Reaction, out var users)) reactions[a.Reaction] = users = new SortedSet<string>(StringComparer.Ordinal);
                users.Add(a.Meta.ActorId);
                break;
            case ReactionRemoved r when reactions.TryGetValue(r.Reaction, out var reactors) && reactors.Remove(r.Meta.ActorId) && reactors.Count == 0:
                reactions.Remove(r.Reaction);
                break;
        }
    }

    /// <summary>The membership, and its user among the tenant's people (<c>rm_people</c>).</summary>
    private static (string, (string, object?)[])[] UpsertMember(string tenant, string conversation, string user, Role role, long at) =>
    [
        ("INSERT INTO rm_memberships (tenant_id, conversation_id, user_id, role, joined_at) VALUES (@t, @c, @u, @role, @at) " +
         "ON CONFLICT (tenant_id, conversation_id, user_id) DO UPDATE SET role = excluded.role",
            [("t", tenant), ("c", conversation), ("u", user), ("role", role.ToWire()), ("at", at)]),
        ("INSERT INTO rm_people (tenant_id, user_id) VALUES (@t, @u) ON CONFLICT DO NOTHING", [("t", tenant), ("u", user)]),
    ];

    /// <summary>The membership gone; the user leaves the tenant's people with their last membership.</summary>
    private static (string, (string, object?)[])[] RemoveMember(string tenant, string conversation, string user) =>
    [
        ("DELETE FROM rm_memberships WHERE tenant_id = @t AND conversation_id = @c AND user_id = @u",
            [("t", tenant), ("c", conversation), ("u", user)]),
        ("DELETE FROM rm_people WHERE tenant_id = @t AND user_id = @u " +
         "AND NOT EXISTS (SELECT 1 FROM rm_memberships WHERE tenant_id = @t AND user_id = @u)", [("t", tenant), ("u", user)]),
    ];

    private static (string, (string, object?)[]) Log(string tenant, string conversation, long offset, string action, EventMeta meta,
        string user, DateTimeOffset? until, string? reason) =>
        ("INSERT INTO rm_moderation_log (tenant_id, conversation_id, journal_offset, action, actor_id, user_id, until_at, reason, occurred_at) " +
         "VALUES (@t, @c, @o, @action, @actor, @u, @until, @reason, @at) ON CONFLICT DO NOTHING",
            [("t", tenant), ("c", conversation), ("o", offset), ("action", action), ("actor", meta.ActorId), ("u", user),
             ("until", until is { } u ? u.ToUnixTimeMilliseconds() : new TypedNull(System.Data.DbType.Int64)), ("reason", reason), ("at", meta.OccurredAt.ToUnixTimeMilliseconds())]);

    /// <summary>
    /// <paramref name="sqlFormat"/> with <c>{0}</c> standing for a list of these values. SQLite: one parameter, the values
    /// as a JSON array read by <c>json_each</c> (the planner still looks each one up by the column's index). A list of a
    /// few hundred named parameters cost SQLite a parse of the long statement text for every batch and a linear search
    /// of its parameter names for every value bound (<c>sqlite3_prepare_v2</c> and <c>sqlite3_bind_parameter_index</c>:
    /// 6% of the bulk bench's CPU samples). PostgreSQL: named parameters, as before.
    /// </summary>
    internal static DbCommand InList(DbConnection c, DbTransaction? tx, string sqlFormat, IReadOnlyList<string> values)
    {
        if (c is Microsoft.Data.Sqlite.SqliteConnection)
            return Command(c, tx, string.Format(sqlFormat, "SELECT value FROM json_each(@list)"), ("list", JsonSerializer.Serialize(values)));
        return Command(c, tx, string.Format(sqlFormat, string.Join(", ", values.Select((_, i) => "@p" + i))),
            [.. values.Select((v, i) => ("p" + i, (object?)v))]);
    }

    /// <summary>The lists <see cref="InList"/> is given: all values at once on SQLite, 200 at a time on PostgreSQL.</summary>
    internal static IEnumerable<string[]> InListChunks(DbConnection c, IEnumerable<string> values) =>
        c is Microsoft.Data.Sqlite.SqliteConnection ? [values.ToArray()] : values.Chunk(200);

    internal static DbCommand Command(DbConnection c, DbTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (n, v) in args)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = n;
            switch (v)
            {
                case null:
                    // Untyped NULLs confuse PostgreSQL's type inference (COALESCE(@p, col)); most are text.
                    p.DbType = System.Data.DbType.String;
                    p.Value = DBNull.Value;
                    break;
                case TypedNull t:
                    p.DbType = t.Type;
                    p.Value = DBNull.Value;
                    break;
                default:
                    p.Value = v;
                    break;
            }
            cmd.Parameters.Add(p);
        }
        return cmd;
    }
}

/// <summary>What a batch write found: message ids stored twice, and holes filled (or seen, without a journal reader).</summary>
public sealed record WriteReport(IReadOnlyList<MessageIdConflict> Conflicts, IReadOnlyList<Hole> Holes)
{
    public static WriteReport Empty { get; } = new([], []);
}

/// <summary>A journal row whose message id the read model already held under another seq: stored, and reported.</summary>
public sealed record MessageIdConflict(string Tenant, string MessageId, string FirstConversation, long FirstSeq, string Conversation, long Seq);

/// <summary>Events of one persistence id (sequence numbers From..To) that the events-by-tag stream passed by.</summary>
public sealed record Hole(string PersistenceId, long From, long To);

/// <summary>A NULL parameter of a given type.</summary>
internal readonly record struct TypedNull(System.Data.DbType Type);

/// <summary>An earlier version of an edited message: its text and when it was replaced.</summary>
public sealed record MessageVersion(string? Text, DateTimeOffset ReplacedAt);
