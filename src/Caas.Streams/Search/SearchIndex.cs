using System.Data.Common;
using System.Text.Json;
using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Privacy;
using Caas.Streams.ReadModel;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Search;

/// <summary>
/// The search index: a projection of the journal's messages into the read-model database, in the engine that database
/// has. PostgreSQL: a row per message with a <c>tsvector</c> (GIN index) of its text. SQLite: a row per message and an
/// FTS5 table (porter stemming over unicode61) keyed by that row's id. Like the read model it holds message text in the
/// clear (the projection opens sealed content as the read model does), so erasure deletes the user's entries
/// (<see cref="EraseUserAsync"/>), a deleted message's entry is deleted, and an edit replaces the text.
/// A rebuild writes a second set of tables (suffix <c>_next</c>) while searches read the live one, then swaps them.
/// </summary>
public sealed class SearchIndex(ReadModelStore store)
{
    public const string ProjectionName = "search";
    public const string RebuildName = "search-rebuild";
    public const string Live = "", Next = "_next";
    /// <summary>The text-search configuration of PostgreSQL (stemming and stop words) for a tenant without <c>default_language</c>.</summary>
    public const string Language = Caas.Actors.Tenants.SearchLanguages.Default;

    public bool IsPostgres => store.IsPostgres;

    /// <summary>Each tenant's search language (<c>default_language</c>).</summary>
    public SearchLanguageIndex Languages { get; } = new(store);

    public Task<DbConnection> OpenAsync(CancellationToken ct = default) => store.OpenAsync(ct);

    public async Task EnsureSchemaAsync(CancellationToken ct = default)
    {
        await using (var c = await store.OpenAsync(ct))
            foreach (var sql in Schema(store.IsPostgres, Live)) await ReadModelStore.ExecuteAsync(c, sql, ct);
        // People search reads the display names beside the index: whoever sets up the index (a node, the search bench)
        // gets their table too, even before the profile projection runs.
        await new ProfileIndex(store).EnsureSchemaAsync(ct);
        await Languages.EnsureSchemaAsync(ct);
    }

    /// <summary>The statements that create one set of index tables (<paramref name="suffix"/>: live or next).</summary>
    public static IEnumerable<string> Schema(bool postgres, string suffix)
    {
        var t = "search_messages" + suffix;
        // Per persistence id, the highest sequence number applied: a hole below a batch's first event (an event committed
        // after later ones were read by the tag stream) is read from the journal by persistence id first.
        yield return $"CREATE TABLE IF NOT EXISTS search_progress{suffix} (persistence_id TEXT NOT NULL PRIMARY KEY, sequence_nr BIGINT NOT NULL)";
        if (postgres)
        {
            // pg_trgm (postgresql-contrib): the typo-tolerant suggestions and user search.
            yield return "CREATE EXTENSION IF NOT EXISTS pg_trgm";
            yield return $"""
                CREATE TABLE IF NOT EXISTS {t} (
                    tenant_id TEXT NOT NULL, conversation_id TEXT NOT NULL, seq BIGINT NOT NULL, message_id TEXT NOT NULL,
                    sender_id TEXT NOT NULL, created_at BIGINT NOT NULL, text TEXT NOT NULL, has TEXT NOT NULL, entities TEXT NOT NULL,
                    intent TEXT NULL, sentiment TEXT NULL, tsv tsvector NOT NULL, PRIMARY KEY (tenant_id, conversation_id, seq))
                """;
            yield return $"CREATE INDEX IF NOT EXISTS {t}_tsv ON {t} USING GIN (tsv)";
            yield return $"CREATE INDEX IF NOT EXISTS {t}_sender ON {t} (tenant_id, sender_id)";
            yield return $"CREATE INDEX IF NOT EXISTS {t}_recent ON {t} (tenant_id, created_at)";
        }
        else
        {
            yield return $"""
                CREATE TABLE IF NOT EXISTS {t} (
                    id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, conversation_id TEXT NOT NULL, seq BIGINT NOT NULL, message_id TEXT NOT NULL,
                    sender_id TEXT NOT NULL, created_at BIGINT NOT NULL, has TEXT NOT NULL, entities TEXT NOT NULL,
                    intent TEXT NULL, sentiment TEXT NULL, UNIQUE (tenant_id, conversation_id, seq))
                """;
            yield return $"CREATE INDEX IF NOT EXISTS {t}_sender ON {t} (tenant_id, sender_id)";
            yield return $"CREATE INDEX IF NOT EXISTS {t}_recent ON {t} (tenant_id, created_at)";
            // grams: CJK text again as character bigrams (see Cjk), so a CJK substring is found.
            yield return $"CREATE VIRTUAL TABLE IF NOT EXISTS {t}_fts USING fts5(text, grams, tokenize = 'porter unicode61 remove_diacritics 2')";
            // Tenants whose default_language is not English: their rows again, without the porter (English) stemmer;
            // their text queries match here (see Plain).
            yield return $"CREATE VIRTUAL TABLE IF NOT EXISTS {t}_fts_plain USING fts5(text, grams, tokenize = 'unicode61 remove_diacritics 2')";
        }
        foreach (var sql in SearchFiles.Schema(postgres, suffix)) yield return sql;
    }

    /// <summary>What one message contributes to the index.</summary>
    private sealed class Entry
    {
        public required string Tenant, Conversation, MessageId, Sender;
        public required long Seq, CreatedAt;
        public string? Text;
        public string Has = " ", Entities = " ";
        public string? Intent, Sentiment;
        /// <summary>The tenant's text-search configuration (PostgreSQL), one of <see cref="Caas.Actors.Tenants.SearchLanguages.All"/>.</summary>
        public string Language = SearchIndex.Language;
        /// <summary>True for an edit of a message indexed before this batch: only its text changes.</summary>
        public bool TextOnly;
        public bool Delete;
    }

    /// <summary>
    /// Applies a batch of journal events to the index tables (<paramref name="suffix"/>) and stores the projection's
    /// offset, in one transaction. Idempotent: a replayed batch writes the same rows.
    /// </summary>
    /// <param name="readJournal">Reads a persistence id's events by sequence number from the journal (fills holes); null: holes stay.</param>
    /// <param name="storeOffset">False for events applied out of the tag stream's order (late commits): the offset stays.</param>
    public async Task WriteAsync(IReadOnlyList<EventEnvelope> batch, string projection, string suffix, CancellationToken ct = default,
        ReadModelWriter.JournalReader? readJournal = null, bool storeOffset = true)
    {
        if (batch.Count == 0) return;
        await using var c = await store.OpenAsync(ct);
        using var turn = await store.WriteTurnAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        var marks = await LoadMarksAsync(c, tx, suffix, batch.Select(e => e.PersistenceId).ToHashSet(StringComparer.Ordinal), ct);
        var ordered = new List<EventEnvelope>(batch.Count);
        var firstSeen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var envelope in batch)
        {
            var mark = marks.GetValueOrDefault(envelope.PersistenceId);
            if (firstSeen.Add(envelope.PersistenceId) && envelope.SequenceNr > mark + 1 && readJournal is not null)
                ordered.AddRange(await readJournal(envelope.PersistenceId, mark + 1, envelope.SequenceNr - 1, ct));
            ordered.Add(envelope);
        }
        var changes = new Dictionary<(string, string, long), Entry>();
        var fileEvents = new List<(string, string, IConversationEvent)>();
        foreach (var envelope in ordered)
        {
            // Applied before (a replayed batch, or a hole already filled): skipped, so nothing is applied twice.
            if (marks.TryGetValue(envelope.PersistenceId, out var applied) && envelope.SequenceNr <= applied) continue;
            marks[envelope.PersistenceId] = envelope.SequenceNr;
            if (envelope.Event is not IConversationEvent stored || !envelope.PersistenceId.StartsWith("conversation|", StringComparison.Ordinal)) continue;
            var (tenant, conversation) = Ids.SplitEntityId(envelope.PersistenceId["conversation|".Length..]);
            var opened = ContentSealing.InConversation(stored, conversation);
            fileEvents.Add((tenant, conversation, opened));
            switch (opened)
            {
                case MessagePosted p:
                {
                    var entry = new Entry
                    {
                        Tenant = tenant, Conversation = conversation, Seq = p.Seq, MessageId = p.MessageId, Sender = p.Meta.ActorId,
                        CreatedAt = p.Meta.OccurredAt.ToUnixTimeMilliseconds(),
                    };
                    // An attachment without a caption is indexed under its file name, so has=image|file|… finds it.
                    if ((Indexable(p.Content) ?? SearchFiles.CaptionlessName(p.Content)) is { } text)
                    {
                        entry.Text = text;
                        Attributes(entry, p.Content, p.Enrichment);
                    }
                    else entry.Delete = true;
                    changes[(tenant, conversation, p.Seq)] = entry;
                    break;
                }
                case MessageEdited e:
                {
                    var key = (tenant, conversation, e.Seq);
                    var text = Indexable(e.Content) ?? SearchFiles.CaptionlessName(e.Content);
                    if (!changes.TryGetValue(key, out var entry))
                        changes[key] = entry = new Entry
                        {
                            Tenant = tenant, Conversation = conversation, Seq = e.Seq, MessageId = e.MessageId, Sender = e.Meta.ActorId,
                            CreatedAt = 0, TextOnly = true,
                        };
                    if (entry.Delete) break;
                    if (text is null) entry.Delete = true;
                    else entry.Text = text;
                    break;
                }
                case MessageDeleted d:
                    changes[(tenant, conversation, d.Seq)] = new Entry
                    {
                        Tenant = tenant, Conversation = conversation, Seq = d.Seq, MessageId = d.MessageId, Sender = d.Meta.ActorId,
                        CreatedAt = 0, Delete = true,
                    };
                    break;
            }
        }

        var t = "search_messages" + suffix;
        var upserts = new List<Entry>(changes.Count);
        var languages = await SearchLanguageIndex.LoadAsync(c, tx, changes.Values.Select(e => e.Tenant).Concat(fileEvents.Select(f => f.Item1)), ct);
        foreach (var entry in changes.Values)
        {
            if (languages is not null) entry.Language = languages[entry.Tenant];
            if (entry.Delete) await DeleteAsync(c, tx, t, entry, ct);
            else if (entry.TextOnly) await ReplaceTextAsync(c, tx, t, entry, ct);
            else upserts.Add(entry);
        }
        if (store.IsPostgres) await UpsertPostgresAsync(c, tx, t, upserts, ct);
        else UpsertSqlite(c, t, upserts);
        await SearchFiles.ApplyAsync(c, tx, store.IsPostgres, suffix, fileEvents, ct, languages);
        await RaiseMarksAsync(c, tx, suffix, marks, ct);
        if (storeOffset)
            await using (var cmd = Command(c, tx,
                             "INSERT INTO rm_projection_offsets (name, last_offset) VALUES (@name, @offset) " +
                             "ON CONFLICT (name) DO UPDATE SET last_offset = excluded.last_offset",
                             ("name", projection), ("offset", ((Sequence)batch[^1].Offset).Value)))
                await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>
    /// The progress marks of these persistence ids in the index tables (<paramref name="suffix"/>): the highest journal
    /// sequence number applied, 0 for an id never seen (the index tracks every id it applies, from its first event).
    /// </summary>
    public async Task<IReadOnlyDictionary<string, long>> MarksAsync(IEnumerable<string> persistenceIds, string suffix, CancellationToken ct = default)
    {
        var ids = persistenceIds.ToHashSet(StringComparer.Ordinal);
        await using var c = await store.OpenAsync(ct);
        var marks = await LoadMarksAsync(c, null, suffix, ids, ct);
        foreach (var id in ids) marks.TryAdd(id, 0);
        return marks;
    }

    private static async Task<Dictionary<string, long>> LoadMarksAsync(DbConnection c, DbTransaction? tx, string suffix, HashSet<string> ids,
        CancellationToken ct)
    {
        var marks = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var chunk in ReadModelWriter.InListChunks(c, ids))
        {
            await using var cmd = ReadModelWriter.InList(c, tx,
                $"SELECT persistence_id, sequence_nr FROM search_progress{suffix} WHERE persistence_id IN ({{0}})", chunk);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) marks[r.GetString(0)] = r.GetInt64(1);
        }
        return marks;
    }

    private async Task RaiseMarksAsync(DbConnection c, DbTransaction tx, string suffix, Dictionary<string, long> marks, CancellationToken ct)
    {
        const string upsert = " ON CONFLICT (persistence_id) DO UPDATE SET sequence_nr = excluded.sequence_nr WHERE {0}.sequence_nr < excluded.sequence_nr";
        var table = "search_progress" + suffix;
        if (store.IsPostgres)
        {
            await using var cmd = Command(c, tx, $"INSERT INTO {table} (persistence_id, sequence_nr) SELECT * FROM unnest(@ps, @ss)" + string.Format(upsert, table),
                ("ps", marks.Keys.ToArray()), ("ss", marks.Values.ToArray()));
            await cmd.ExecuteNonQueryAsync(ct);
            return;
        }
        using var one = SqliteStatement.Prepare((Microsoft.Data.Sqlite.SqliteConnection)c,
            $"INSERT INTO {table} (persistence_id, sequence_nr) VALUES (?1, ?2)" + string.Format(upsert, table));
        foreach (var (pid, seq) in marks) one.Bind(1, pid).Bind(2, seq).Run();
    }

    /// <summary>The text to index, or null: not text, empty, or erased (its author's key destroyed).</summary>
    private static string? Indexable(MessageContent content) =>
        content.Type == ContentSealing.Erased.Type || content.Type == Caas.Actors.Calls.CallSummaryMessage.ContentType || string.IsNullOrWhiteSpace(content.Text) ? null : Highlights.Clean(content.Text);

    /// <summary>What enrichment found, as space-delimited words the filters look for (" url phone ").</summary>
    private static void Attributes(Entry entry, MessageContent content, MessageEnrichment? enrichment)
    {
        var has = new SortedSet<string>(StringComparer.Ordinal);
        var entities = new SortedSet<string>(StringComparer.Ordinal);
        if (content.Type is "file" or "image" or "audio" or "video") has.Add(content.Type);
        if (SearchFiles.KindOf(content) is { } kind) has.Add(kind);
        foreach (var result in enrichment?.Results ?? [])
        {
            var data = result.Data;
            if (data.ValueKind != JsonValueKind.Object) continue;
            switch (result.Name)
            {
                case "entities" when data.TryGetProperty("entities", out var list) && list.ValueKind == JsonValueKind.Array:
                    foreach (var e in list.EnumerateArray())
                        if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String)
                            entities.Add(type.GetString()!);
                    break;
                case "intent" when data.TryGetProperty("intent", out var intent) && intent.ValueKind == JsonValueKind.String:
                    entry.Intent = intent.GetString();
                    break;
                case "sentiment" when data.TryGetProperty("label", out var label) && label.ValueKind == JsonValueKind.String:
                    entry.Sentiment = label.GetString();
                    break;
            }
        }
        if (entities.Contains("url")) has.Add("link");
        entry.Has = " " + string.Join(' ', has) + " ";
        entry.Entities = " " + string.Join(' ', entities) + " ";
    }

    /// <summary>PostgreSQL: the batch's new entries in one statement, each column sent as an array and unnested.</summary>
    private static async Task UpsertPostgresAsync(DbConnection c, DbTransaction tx, string t, List<Entry> rows, CancellationToken ct)
    {
        if (rows.Count == 0) return;
        await using var cmd = Command(c, tx,
            $"INSERT INTO {t} (tenant_id, conversation_id, seq, message_id, sender_id, created_at, text, has, entities, intent, sentiment, tsv) " +
            $"SELECT v.t, v.c, v.s, v.m, v.u, v.a, v.x, v.h, v.n, v.i, v.z, {Tsv("v.x", "v.g", "v.l")} " +
            "FROM unnest(@t, @c, @s, @m, @u, @a, @x, @h, @n, @i, @z, @g, @l) AS v(t, c, s, m, u, a, x, h, n, i, z, g, l) " +
            "ON CONFLICT (tenant_id, conversation_id, seq) DO UPDATE SET text = excluded.text, has = excluded.has, entities = excluded.entities, " +
            "intent = excluded.intent, sentiment = excluded.sentiment, tsv = excluded.tsv",
            ("t", rows.Select(r => r.Tenant).ToArray()), ("c", rows.Select(r => r.Conversation).ToArray()), ("s", rows.Select(r => r.Seq).ToArray()),
            ("m", rows.Select(r => r.MessageId).ToArray()), ("u", rows.Select(r => r.Sender).ToArray()), ("a", rows.Select(r => r.CreatedAt).ToArray()),
            ("x", rows.Select(r => r.Text).ToArray()), ("h", rows.Select(r => r.Has).ToArray()), ("n", rows.Select(r => r.Entities).ToArray()),
            ("i", rows.Select(r => r.Intent).ToArray()), ("z", rows.Select(r => r.Sentiment).ToArray()),
            ("g", rows.Select(r => Cjk.Grams(r.Text!)).ToArray()), ("l", rows.Select(r => r.Language).ToArray()));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// PostgreSQL's document: the text in the tenant's language's configuration (<paramref name="language"/>: a
    /// parameter or column holding one of <see cref="Caas.Actors.Tenants.SearchLanguages.All"/>), and its CJK bigrams in
    /// <c>simple</c>.
    /// </summary>
    internal static string Tsv(string text, string grams, string language) =>
        $"to_tsvector({language}::regconfig, {text}) || to_tsvector('simple', {grams})";

    /// <summary>
    /// SQLite: does a tenant of this language match in <c>_fts_plain</c> (words as they are) rather than <c>_fts</c>
    /// (porter, English stems)? Every language but English: FTS5 has no other stemmer, so they are all <c>simple</c> here.
    /// The porter table holds every row (its text serves displays and term suggestions); the plain one the rows of
    /// tenants whose language was not English when the row was indexed.
    /// </summary>
    public static bool Plain(string? language) => language is not null && language != Caas.Actors.Tenants.SearchLanguages.Default;

    /// <summary>
    /// SQLite: statements run per entry in the batch's transaction (in-process, no round trips), prepared once and bound by
    /// position: the row, then its FTS5 text under the row's id.
    /// </summary>
    private static void UpsertSqlite(DbConnection c, string t, List<Entry> rows)
    {
        if (rows.Count == 0) return;
        var sc = (Microsoft.Data.Sqlite.SqliteConnection)c;
        // A new row needs only its FTS5 text; a row indexed before (a replayed batch) has its attributes and text replaced.
        using var insert = SqliteStatement.Prepare(sc,
            $"INSERT INTO {t} (tenant_id, conversation_id, seq, message_id, sender_id, created_at, has, entities, intent, sentiment) " +
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (tenant_id, conversation_id, seq) DO NOTHING RETURNING id");
        using var update = SqliteStatement.Prepare(sc,
            $"UPDATE {t} SET has = ?7, entities = ?8, intent = ?9, sentiment = ?10 WHERE tenant_id = ?1 AND conversation_id = ?2 AND seq = ?3 RETURNING id");
        using var del = SqliteStatement.Prepare(sc, $"DELETE FROM {t}_fts WHERE rowid = ?1");
        using var ins = SqliteStatement.Prepare(sc, $"INSERT INTO {t}_fts (rowid, text, grams) VALUES (?1, ?2, ?3)");
        using var delPlain = SqliteStatement.Prepare(sc, $"DELETE FROM {t}_fts_plain WHERE rowid = ?1");
        using var insPlain = SqliteStatement.Prepare(sc, $"INSERT INTO {t}_fts_plain (rowid, text, grams) VALUES (?1, ?2, ?3)");
        foreach (var e in rows)
        {
            insert.Bind(1, e.Tenant).Bind(2, e.Conversation).Bind(3, e.Seq).Bind(4, e.MessageId).Bind(5, e.Sender).Bind(6, e.CreatedAt)
                .Bind(7, e.Has).Bind(8, e.Entities).Bind(9, e.Intent).Bind(10, e.Sentiment);
            if (insert.RunScalarInt64() is not { } id)
            {
                id = update.Bind(1, e.Tenant).Bind(2, e.Conversation).Bind(3, e.Seq).Bind(7, e.Has).Bind(8, e.Entities).Bind(9, e.Intent)
                         .Bind(10, e.Sentiment).RunScalarInt64()
                     ?? throw new InvalidOperationException($"Search row {e.Tenant}/{e.Conversation}/{e.Seq} neither inserted nor found.");
                del.Bind(1, id).Run();
                delPlain.Bind(1, id).Run();
            }
            var grams = Cjk.Grams(e.Text!);
            ins.Bind(1, id).Bind(2, e.Text!).Bind(3, grams).Run();
            if (Plain(e.Language)) insPlain.Bind(1, id).Bind(2, e.Text!).Bind(3, grams).Run();
        }
    }

    private static async Task SetFtsTextAsync(DbConnection c, DbTransaction tx, string t, long id, string text, string? language, CancellationToken ct)
    {
        foreach (var fts in new[] { $"{t}_fts", $"{t}_fts_plain" })
            await using (var del = Command(c, tx, $"DELETE FROM {fts} WHERE rowid = @id", ("id", id)))
                await del.ExecuteNonQueryAsync(ct);
        foreach (var fts in Plain(language) ? new[] { $"{t}_fts", $"{t}_fts_plain" } : [$"{t}_fts"])
            await using (var ins = Command(c, tx, $"INSERT INTO {fts} (rowid, text, grams) VALUES (@id, @x, @g)", ("id", id), ("x", text),
                             ("g", Cjk.Grams(text))))
                await ins.ExecuteNonQueryAsync(ct);
    }

    private async Task ReplaceTextAsync(DbConnection c, DbTransaction tx, string t, Entry e, CancellationToken ct)
    {
        if (store.IsPostgres)
        {
            await using var cmd = Command(c, tx,
                $"UPDATE {t} SET text = @x, tsv = {Tsv("@x", "@g", "@l")} WHERE tenant_id = @t AND conversation_id = @c AND seq = @s",
                ("x", e.Text), ("g", Cjk.Grams(e.Text!)), ("t", e.Tenant), ("c", e.Conversation), ("s", e.Seq), ("l", e.Language));
            await cmd.ExecuteNonQueryAsync(ct);
            return;
        }
        await using var find = Command(c, tx, $"SELECT id FROM {t} WHERE tenant_id = @t AND conversation_id = @c AND seq = @s",
            ("t", e.Tenant), ("c", e.Conversation), ("s", e.Seq));
        if (await find.ExecuteScalarAsync(ct) is { } id and not DBNull) await SetFtsTextAsync(c, tx, t, Convert.ToInt64(id), e.Text!, e.Language, ct);
    }

    private async Task DeleteAsync(DbConnection c, DbTransaction tx, string t, Entry e, CancellationToken ct)
    {
        if (!store.IsPostgres)
            foreach (var table in new[] { $"{t}_fts", $"{t}_fts_plain" })
                await using (var fts = Command(c, tx,
                                 $"DELETE FROM {table} WHERE rowid IN (SELECT id FROM {t} WHERE tenant_id = @t AND conversation_id = @c AND seq = @s)",
                                 ("t", e.Tenant), ("c", e.Conversation), ("s", e.Seq)))
                    await fts.ExecuteNonQueryAsync(ct);
        await using var cmd = Command(c, tx, $"DELETE FROM {t} WHERE tenant_id = @t AND conversation_id = @c AND seq = @s",
            ("t", e.Tenant), ("c", e.Conversation), ("s", e.Seq));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Deletes every entry the user wrote (live and a rebuild's tables): erasure. Answers how many live entries went.</summary>
    public async Task<long> EraseUserAsync(string tenant, string user, CancellationToken ct = default)
    {
        long erased = 0;
        await using var c = await store.OpenAsync(ct);
        foreach (var suffix in new[] { Live, Next })
        {
            var t = "search_messages" + suffix;
            if (!await JournalDb.TableExistsAsync(c, store.IsPostgres, t, ct)) continue;
            await using var tx = await c.BeginTransactionAsync(ct);
            if (!store.IsPostgres)
                foreach (var table in new[] { $"{t}_fts", $"{t}_fts_plain" })
                    await using (var fts = Command(c, tx, $"DELETE FROM {table} WHERE rowid IN (SELECT id FROM {t} WHERE tenant_id = @t AND sender_id = @u)",
                                     ("t", tenant), ("u", user)))
                        await fts.ExecuteNonQueryAsync(ct);
            await using (var cmd = Command(c, tx, $"DELETE FROM {t} WHERE tenant_id = @t AND sender_id = @u", ("t", tenant), ("u", user)))
            {
                var n = await cmd.ExecuteNonQueryAsync(ct);
                if (suffix == Live) erased = n;
            }
            await tx.CommitAsync(ct);
        }
        await SearchFiles.EraseUserAsync(c, store.IsPostgres, tenant, user, ct);
        // The display name too (the profile projection deletes it again when it reaches the UserErased event).
        if (await JournalDb.TableExistsAsync(c, store.IsPostgres, "search_profiles", ct))
            await using (var cmd = Command(c, null, "DELETE FROM search_profiles WHERE tenant_id = @t AND user_id = @u", ("t", tenant), ("u", user)))
                erased += await cmd.ExecuteNonQueryAsync(ct);
        await SearchCache.BumpEpochAsync(c, ct);
        return erased;
    }

    public async Task<long> LoadOffsetAsync(string name, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "SELECT last_offset FROM rm_projection_offsets WHERE name = @name", ("name", name));
        return await cmd.ExecuteScalarAsync(ct) is { } v and not DBNull ? Convert.ToInt64(v) : 0L;
    }

    /// <summary>Drops a rebuild's tables and offset and creates them empty: a rebuild starts here.</summary>
    public async Task ResetNextAsync(CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        foreach (var sql in DropStatements(Next)) await Exec(c, tx, sql, ct);
        foreach (var sql in Schema(store.IsPostgres, Next).Where(s => !s.StartsWith("CREATE EXTENSION", StringComparison.Ordinal))) await Exec(c, tx, sql, ct);
        await Exec(c, tx, "DELETE FROM rm_projection_offsets WHERE name = '" + RebuildName + "'", ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>
    /// Makes the rebuilt tables the live ones, in one transaction (searches read the old tables until it commits), and
    /// moves the rebuild's offset to the live projection. The caller has stopped the live projection's writes.
    /// </summary>
    public async Task SwapAsync(CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        foreach (var sql in DropStatements(Live)) await Exec(c, tx, sql, ct);
        string[] renames = store.IsPostgres
            ?
            [
                "ALTER TABLE search_messages_next RENAME TO search_messages",
                "ALTER INDEX search_messages_next_pkey RENAME TO search_messages_pkey",
                "ALTER INDEX search_messages_next_tsv RENAME TO search_messages_tsv",
                "ALTER INDEX search_messages_next_sender RENAME TO search_messages_sender",
                "ALTER INDEX search_messages_next_recent RENAME TO search_messages_recent",
                "ALTER TABLE search_progress_next RENAME TO search_progress",
                "ALTER INDEX search_progress_next_pkey RENAME TO search_progress_pkey",
            ]
            :
            [
                "ALTER TABLE search_messages_next RENAME TO search_messages",
                "ALTER TABLE search_messages_next_fts RENAME TO search_messages_fts",
                "ALTER TABLE search_messages_next_fts_plain RENAME TO search_messages_fts_plain",
                "ALTER TABLE search_progress_next RENAME TO search_progress",
                // SQLite cannot rename an index: the live names are made again.
                "DROP INDEX IF EXISTS search_messages_next_sender",
                "DROP INDEX IF EXISTS search_messages_next_recent",
                "CREATE INDEX IF NOT EXISTS search_messages_sender ON search_messages (tenant_id, sender_id)",
                "CREATE INDEX IF NOT EXISTS search_messages_recent ON search_messages (tenant_id, created_at)",
            ];
        foreach (var sql in renames.Concat(SearchFiles.Renames(store.IsPostgres))) await Exec(c, tx, sql, ct);
        await Exec(c, tx,
            "UPDATE rm_projection_offsets SET last_offset = (SELECT last_offset FROM rm_projection_offsets WHERE name = '" + RebuildName + "') " +
            "WHERE name = '" + ProjectionName + "' AND EXISTS (SELECT 1 FROM rm_projection_offsets WHERE name = '" + RebuildName + "')", ct);
        await Exec(c, tx,
            "INSERT INTO rm_projection_offsets (name, last_offset) SELECT '" + ProjectionName + "', last_offset FROM rm_projection_offsets " +
            "WHERE name = '" + RebuildName + "' ON CONFLICT (name) DO NOTHING", ct);
        await Exec(c, tx, "DELETE FROM rm_projection_offsets WHERE name = '" + RebuildName + "'", ct);
        await tx.CommitAsync(ct);
    }

    private IEnumerable<string> DropStatements(string suffix) => (store.IsPostgres
        ? [$"DROP TABLE IF EXISTS search_messages{suffix}", $"DROP TABLE IF EXISTS search_progress{suffix}"]
        : new[]
        {
            $"DROP TABLE IF EXISTS search_messages{suffix}_fts", $"DROP TABLE IF EXISTS search_messages{suffix}_fts_plain",
            $"DROP TABLE IF EXISTS search_messages{suffix}", $"DROP TABLE IF EXISTS search_progress{suffix}",
        })
        .Concat(SearchFiles.Drop(store.IsPostgres, suffix));

    private static async Task Exec(DbConnection c, DbTransaction tx, string sql, CancellationToken ct)
    {
        await using var cmd = Command(c, tx, sql);
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
