using System.Data.Common;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Caas.Actors.Conversations;
using Caas.Actors.Privacy;
using Caas.Streams.ReadModel;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Search;

/// <summary>A file found by search: its message, its metadata, and what matched (file name, extracted text).</summary>
public sealed record FileHit(string FileId, string ConversationId, string MessageId, long Seq, string FileName, string ContentType, long Size,
    DateTimeOffset CreatedAt, bool HasThumbnail, IReadOnlyList<Highlight> Highlights);

/// <summary>
/// The file index, beside the message index and written in the same batch and transaction by the search projection:
/// one row per attachment message (<c>search_files</c>), with the file's name (as words) and the text the attachment
/// enrichers took out of it (OCR, document text, speech transcript; from the message's enrichment or a later
/// <see cref="MessageEnriched"/>). PostgreSQL: a <c>tsvector</c> under a GIN index; SQLite: an FTS5 table keyed by the
/// row's id. A deleted message or erased content removes the row; erasure deletes the sender's rows; a deleted file
/// (the media read model's <c>deleted_at</c>) is left out at query time. A rebuild writes <c>search_files_next</c>.
/// </summary>
public static class SearchFiles
{
    public static IEnumerable<string> Schema(bool postgres, string suffix)
    {
        var t = "search_files" + suffix;
        if (postgres)
        {
            yield return $"""
                CREATE TABLE IF NOT EXISTS {t} (
                    tenant_id TEXT NOT NULL, conversation_id TEXT NOT NULL, seq BIGINT NOT NULL, message_id TEXT NOT NULL, file_id TEXT NOT NULL,
                    sender_id TEXT NOT NULL, file_name TEXT NOT NULL, content_type TEXT NOT NULL, size BIGINT NOT NULL, created_at BIGINT NOT NULL,
                    extracted TEXT NOT NULL, tsv tsvector NOT NULL, PRIMARY KEY (tenant_id, conversation_id, seq))
                """;
            yield return $"CREATE INDEX IF NOT EXISTS {t}_tsv ON {t} USING GIN (tsv)";
            yield return $"CREATE INDEX IF NOT EXISTS {t}_sender ON {t} (tenant_id, sender_id)";
        }
        else
        {
            yield return $"""
                CREATE TABLE IF NOT EXISTS {t} (
                    id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, conversation_id TEXT NOT NULL, seq BIGINT NOT NULL, message_id TEXT NOT NULL,
                    file_id TEXT NOT NULL, sender_id TEXT NOT NULL, file_name TEXT NOT NULL, content_type TEXT NOT NULL, size BIGINT NOT NULL,
                    created_at BIGINT NOT NULL, extracted TEXT NOT NULL, UNIQUE (tenant_id, conversation_id, seq))
                """;
            yield return $"CREATE INDEX IF NOT EXISTS {t}_sender ON {t} (tenant_id, sender_id)";
            yield return $"CREATE VIRTUAL TABLE IF NOT EXISTS {t}_fts USING fts5(name, extracted, grams, tokenize = 'porter unicode61 remove_diacritics 2')";
            // Not English: the same without stems, as for messages (SearchIndex.Plain).
            yield return $"CREATE VIRTUAL TABLE IF NOT EXISTS {t}_fts_plain USING fts5(name, extracted, grams, tokenize = 'unicode61 remove_diacritics 2')";
        }
    }

    public static IEnumerable<string> Drop(bool postgres, string suffix) => postgres
        ? [$"DROP TABLE IF EXISTS search_files{suffix}"]
        : [$"DROP TABLE IF EXISTS search_files{suffix}_fts", $"DROP TABLE IF EXISTS search_files{suffix}_fts_plain", $"DROP TABLE IF EXISTS search_files{suffix}"];

    /// <summary>Makes the rebuilt tables the live ones (inside the index's swap transaction; the live ones are dropped).</summary>
    public static IEnumerable<string> Renames(bool postgres) => postgres
        ?
        [
            "ALTER TABLE search_files_next RENAME TO search_files",
            "ALTER INDEX search_files_next_pkey RENAME TO search_files_pkey",
            "ALTER INDEX search_files_next_tsv RENAME TO search_files_tsv",
            "ALTER INDEX search_files_next_sender RENAME TO search_files_sender",
        ]
        :
        [
            "ALTER TABLE search_files_next RENAME TO search_files",
            "ALTER TABLE search_files_next_fts RENAME TO search_files_fts",
            "ALTER TABLE search_files_next_fts_plain RENAME TO search_files_fts_plain",
            "DROP INDEX IF EXISTS search_files_next_sender",
            "CREATE INDEX IF NOT EXISTS search_files_sender ON search_files (tenant_id, sender_id)",
        ];

    /// <summary>An attachment message without a caption: its file name as words (the message index's text for it); otherwise null.</summary>
    public static string? CaptionlessName(MessageContent content) =>
        content.IsAttachment && string.IsNullOrWhiteSpace(content.Text) && content.Attachment?.Media?.FileName is { Length: > 0 } name
            ? NameWords(name) // as words: PostgreSQL's parser would read "a_b-c.png" as one file-path token
            : null;

    /// <summary>The kind an attachment's MIME type names (image/*, audio/*, video/*), for <c>has=</c>; null otherwise.</summary>
    public static string? KindOf(MessageContent content) =>
        content.IsAttachment && content.Attachment?.Media?.ContentType is { } type
            ? type.StartsWith("image/", StringComparison.OrdinalIgnoreCase) ? "image"
            : type.StartsWith("audio/", StringComparison.OrdinalIgnoreCase) ? "audio"
            : type.StartsWith("video/", StringComparison.OrdinalIgnoreCase) ? "video" : null
            : null;

    /// <summary>A file name as words: "Q3_report-final.pdf" → "Q3 report final pdf" (a tokenizer would keep "report-final.pdf" whole).</summary>
    public static string NameWords(string fileName) => Regex.Replace(Highlights.Clean(fileName), @"[^\p{L}\p{N}]+", " ").Trim();

    /// <summary>The text the attachment enrichers took out of the file (each result's <c>extracted.text</c> when ok).</summary>
    public static string ExtractedText(MessageEnrichment? enrichment)
    {
        var text = new StringBuilder();
        foreach (var result in enrichment?.Results ?? [])
        {
            var data = result.Data;
            if (data.ValueKind == JsonValueKind.Object && data.TryGetProperty("extracted", out var x) && x.ValueKind == JsonValueKind.Object
                && x.TryGetProperty("ok", out var ok) && ok.ValueKind == JsonValueKind.True
                && x.TryGetProperty("text", out var found) && found.ValueKind == JsonValueKind.String && found.GetString() is { Length: > 0 } s)
                text.Append(text.Length > 0 ? "\n" : "").Append(s.Trim());
        }
        return Highlights.Clean(text.ToString());
    }

    /// <summary>Applies a batch's opened conversation events (in journal order) to the file tables of <paramref name="suffix"/>.</summary>
    public static async Task ApplyAsync(DbConnection c, DbTransaction tx, bool postgres, string suffix,
        IEnumerable<(string Tenant, string Conversation, IConversationEvent Event)> events, CancellationToken ct,
        IReadOnlyDictionary<string, string>? languages = null)
    {
        var t = "search_files" + suffix;
        foreach (var (tenant, conversation, ev) in events)
        {
            var language = languages?.GetValueOrDefault(tenant) ?? SearchIndex.Language;
            switch (ev)
            {
                case MessagePosted { Content: { IsAttachment: true, Attachment: { Media: { } m } a } } p:
                    await UpsertAsync(c, tx, postgres, t, tenant, conversation, p.Seq, p.MessageId, a.MediaId, p.Meta.ActorId, m.FileName,
                        m.ContentType, m.Size, p.Meta.OccurredAt.ToUnixTimeMilliseconds(), ExtractedText(p.Enrichment), language, ct);
                    break;
                case MessagePosted p when p.Content.Type == ContentSealing.Erased.Type:
                    await DeleteAsync(c, tx, postgres, t, tenant, conversation, p.Seq, ct);
                    break;
                case MessageEdited e when e.Content.Type == ContentSealing.Erased.Type:
                    await DeleteAsync(c, tx, postgres, t, tenant, conversation, e.Seq, ct);
                    break;
                case MessageDeleted d:
                    await DeleteAsync(c, tx, postgres, t, tenant, conversation, d.Seq, ct);
                    break;
                case MessageEnriched { Enrichment: { } enrichment } en:
                    await SetExtractedAsync(c, tx, postgres, t, tenant, conversation, en.Seq, ExtractedText(enrichment), language, ct);
                    break;
            }
        }
    }

    private static string Tsv(string name, string text, string grams) => SearchIndex.Tsv($"{name} || ' ' || {text}", grams, "@l");

    private static async Task UpsertAsync(DbConnection c, DbTransaction tx, bool postgres, string t, string tenant, string conversation, long seq,
        string messageId, string fileId, string sender, string fileName, string contentType, long size, long createdAt, string extracted,
        string language, CancellationToken ct)
    {
        var words = NameWords(fileName);
        var grams = Cjk.Grams(words + " " + extracted);
        (string, object?)[] args =
        [
            ("t", tenant), ("c", conversation), ("s", seq), ("m", messageId), ("f", fileId), ("u", sender), ("n", fileName), ("ct", contentType),
            ("z", size), ("a", createdAt), ("x", extracted), ("w", words), ("g", grams), ("l", language),
        ];
        const string cols = "tenant_id, conversation_id, seq, message_id, file_id, sender_id, file_name, content_type, size, created_at, extracted";
        if (postgres)
        {
            await using var cmd = Command(c, tx,
                $"INSERT INTO {t} ({cols}, tsv) VALUES (@t, @c, @s, @m, @f, @u, @n, @ct, @z, @a, @x, {Tsv("@w", "@x", "@g")}) " +
                "ON CONFLICT (tenant_id, conversation_id, seq) DO UPDATE SET extracted = CASE WHEN excluded.extracted = '' THEN " + t +
                ".extracted ELSE excluded.extracted END, tsv = CASE WHEN excluded.extracted = '' THEN " + t + ".tsv ELSE excluded.tsv END", args);
            await cmd.ExecuteNonQueryAsync(ct);
            return;
        }
        await using (var find = Command(c, tx, $"SELECT id FROM {t} WHERE tenant_id = @t AND conversation_id = @c AND seq = @s",
                         ("t", tenant), ("c", conversation), ("s", seq)))
            if (await find.ExecuteScalarAsync(ct) is { } found and not DBNull)
            {
                // Indexed before (a replayed batch): its later extracted text stays unless this one brings some.
                if (extracted.Length > 0) await SetExtractedAsync(c, tx, false, t, tenant, conversation, seq, extracted, language, ct);
                return;
            }
        await using var insert = Command(c, tx, $"INSERT INTO {t} ({cols}) VALUES (@t, @c, @s, @m, @f, @u, @n, @ct, @z, @a, @x) RETURNING id",
            [.. args.Take(11)]);
        var id = Convert.ToInt64(await insert.ExecuteScalarAsync(ct));
        foreach (var table in FtsTables(t, language))
            await using (var fts = Command(c, tx, $"INSERT INTO {table} (rowid, name, extracted, grams) VALUES (@id, @w, @x, @g)",
                             ("id", id), ("w", words), ("x", extracted), ("g", grams)))
                await fts.ExecuteNonQueryAsync(ct);
    }

    /// <summary>SQLite: the FTS5 tables a row of a tenant of this language goes into (every row in the porter one).</summary>
    private static string[] FtsTables(string t, string? language) => SearchIndex.Plain(language) ? [$"{t}_fts", $"{t}_fts_plain"] : [$"{t}_fts"];

    private static async Task SetExtractedAsync(DbConnection c, DbTransaction tx, bool postgres, string t, string tenant, string conversation,
        long seq, string extracted, string language, CancellationToken ct)
    {
        long id = 0;
        string? name = null;
        await using (var find = Command(c, tx, $"SELECT {(postgres ? "0" : "id")}, file_name FROM {t} WHERE tenant_id = @t AND conversation_id = @c AND seq = @s",
                         ("t", tenant), ("c", conversation), ("s", seq)))
        await using (var r = await find.ExecuteReaderAsync(ct))
            if (await r.ReadAsync(ct))
            {
                id = Convert.ToInt64(r.GetValue(0));
                name = r.GetString(1);
            }
        if (name is null) return;
        var words = NameWords(name);
        var grams = Cjk.Grams(words + " " + extracted);
        if (postgres)
        {
            await using var cmd = Command(c, tx,
                $"UPDATE {t} SET extracted = @x, tsv = {Tsv("@w", "@x", "@g")} WHERE tenant_id = @t AND conversation_id = @c AND seq = @s",
                ("x", extracted), ("w", words), ("g", grams), ("t", tenant), ("c", conversation), ("s", seq), ("l", language));
            await cmd.ExecuteNonQueryAsync(ct);
            return;
        }
        await using (var up = Command(c, tx, $"UPDATE {t} SET extracted = @x WHERE id = @id", ("x", extracted), ("id", id)))
            await up.ExecuteNonQueryAsync(ct);
        foreach (var table in new[] { $"{t}_fts", $"{t}_fts_plain" })
            await using (var del = Command(c, tx, $"DELETE FROM {table} WHERE rowid = @id", ("id", id)))
                await del.ExecuteNonQueryAsync(ct);
        foreach (var table in FtsTables(t, language))
            await using (var ins = Command(c, tx, $"INSERT INTO {table} (rowid, name, extracted, grams) VALUES (@id, @w, @x, @g)",
                             ("id", id), ("w", words), ("x", extracted), ("g", grams)))
                await ins.ExecuteNonQueryAsync(ct);
    }

    private static async Task DeleteAsync(DbConnection c, DbTransaction tx, bool postgres, string t, string tenant, string conversation, long seq,
        CancellationToken ct)
    {
        if (!postgres)
            foreach (var table in new[] { $"{t}_fts", $"{t}_fts_plain" })
                await using (var fts = Command(c, tx,
                                 $"DELETE FROM {table} WHERE rowid IN (SELECT id FROM {t} WHERE tenant_id = @t AND conversation_id = @c AND seq = @s)",
                                 ("t", tenant), ("c", conversation), ("s", seq)))
                    await fts.ExecuteNonQueryAsync(ct);
        await using var cmd = Command(c, tx, $"DELETE FROM {t} WHERE tenant_id = @t AND conversation_id = @c AND seq = @s",
            ("t", tenant), ("c", conversation), ("s", seq));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Deletes the user's files from the live and a rebuild's tables (erasure); answers how many live rows went.</summary>
    public static async Task<long> EraseUserAsync(DbConnection c, bool postgres, string tenant, string user, CancellationToken ct)
    {
        long erased = 0;
        foreach (var suffix in new[] { SearchIndex.Live, SearchIndex.Next })
        {
            var t = "search_files" + suffix;
            if (!await JournalDb.TableExistsAsync(c, postgres, t, ct)) continue;
            await using var tx = await c.BeginTransactionAsync(ct);
            if (!postgres)
                foreach (var table in new[] { $"{t}_fts", $"{t}_fts_plain" })
                    await using (var fts = Command(c, tx, $"DELETE FROM {table} WHERE rowid IN (SELECT id FROM {t} WHERE tenant_id = @t AND sender_id = @u)",
                                     ("t", tenant), ("u", user)))
                        await fts.ExecuteNonQueryAsync(ct);
            await using (var cmd = Command(c, tx, $"DELETE FROM {t} WHERE tenant_id = @t AND sender_id = @u", ("t", tenant), ("u", user)))
            {
                var n = await cmd.ExecuteNonQueryAsync(ct);
                if (suffix == SearchIndex.Live) erased = n;
            }
            await tx.CommitAsync(ct);
        }
        return erased;
    }

    /// <summary>
    /// Files of the caller's conversations (a member now, same tenant) whose name or extracted text matches the query's
    /// terms; deleted files are left out (the media read model). Ranked by relevance, then newest.
    /// </summary>
    public static async Task<IReadOnlyList<FileHit>> SearchAsync(SearchIndex index, string tenant, string caller, SearchQuery q, int limit,
        CancellationToken ct = default)
    {
        if (!q.HasTerms || limit <= 0) return [];
        var args = new List<(string, object?)> { ("t", tenant), ("me", caller), ("n", limit) };
        var where = new StringBuilder();
        if (q.In is not null) { where.Append(" AND f.conversation_id = @qin"); args.Add(("qin", q.In)); }
        if (q.From is not null) { where.Append(" AND f.sender_id = @qfrom"); args.Add(("qfrom", q.From)); }
        if (q.After is { } after) { where.Append(" AND f.created_at >= @after"); args.Add(("after", after.ToUnixTimeMilliseconds())); }
        if (q.Before is { } before) { where.Append(" AND f.created_at < @before"); args.Add(("before", before.ToUnixTimeMilliseconds())); }
        const string joins =
            " JOIN rm_memberships m ON m.tenant_id = f.tenant_id AND m.conversation_id = f.conversation_id AND m.user_id = @me" +
            " JOIN rm_conversations v ON v.tenant_id = f.tenant_id AND v.conversation_id = f.conversation_id AND v.deleted = 0" +
            " LEFT JOIN rm_media_thumbnails th ON th.tenant_id = f.tenant_id AND th.file_id = f.file_id";
        const string live = " AND NOT EXISTS (SELECT 1 FROM rm_media_files d WHERE d.tenant_id = f.tenant_id AND d.file_id = f.file_id AND d.deleted_at IS NOT NULL)";
        const string cols = "f.file_id, f.conversation_id, f.message_id, f.seq, f.file_name, f.content_type, f.size, f.created_at, th.content_type";
        string sql;
        if (index.IsPostgres)
        {
            var language = await index.Languages.LanguageOfAsync(tenant, ct);
            string Atom(SearchAtom a)
            {
                var name = "a" + args.Count;
                args.Add((name, "\"" + (a.IsCjk ? a.Grams : a.Text) + "\""));
                return $"websearch_to_tsquery('{(a.IsCjk ? "simple" : language)}', @{name})";
            }
            var positive = "(" + string.Join(" && ", q.Groups.Select(g => "(" + string.Join(" || ", g.Select(Atom)) + ")")) + ")";
            var negative = q.Excluded.Count == 0 ? "" : " AND NOT (f.tsv @@ (" + string.Join(" || ", q.Excluded.Select(Atom)) + "))";
            var headline = $"CASE WHEN f.extracted = '' THEN '' ELSE replace(ts_headline('{language}', replace(f.extracted, '<', chr({(int)Highlights.Lt})), " +
                           $"{positive}, 'StartSel=' || chr(1) || ', StopSel=' || chr(2) || ', MinWords=12, MaxWords=30'), chr({(int)Highlights.Lt}), '<') END";
            sql = $"SELECT {cols}, {headline} FROM search_files f{joins} WHERE f.tenant_id = @t AND f.tsv @@ {positive}{negative}{live}{where} " +
                  $"ORDER BY ts_rank_cd(f.tsv, {positive}) DESC, f.created_at DESC, f.file_id LIMIT @n";
        }
        else
        {
            static string Atom(SearchAtom a) => a.IsCjk ? "grams : \"" + a.Grams + "\"" : "{name extracted} : \"" + a.Text.Replace("\"", "\"\"") + "\"";
            args.Add(("fq", string.Join(" AND ", q.Groups.Select(g => "(" + string.Join(" OR ", g.Select(Atom)) + ")"))));
            var negative = "";
            // The tenant's language: English matches stems (porter), any other words as they are (SearchIndex.Plain).
            var fts = SearchIndex.Plain(await index.Languages.LanguageOfAsync(tenant, ct)) ? "search_files_fts_plain" : "search_files_fts";
            if (q.Excluded.Count > 0)
            {
                args.Add(("fneg", string.Join(" OR ", q.Excluded.Select(Atom))));
                negative = $" AND f.id NOT IN (SELECT rowid FROM {fts} WHERE {fts} MATCH @fneg)";
            }
            sql = $"SELECT {cols}, snippet({fts}, 1, char(1), char(2), '…', 24) FROM {fts} " +
                  $"JOIN search_files f ON f.id = {fts}.rowid{joins} WHERE {fts} MATCH @fq AND f.tenant_id = @t{negative}{live}{where} " +
                  $"ORDER BY bm25({fts}) ASC, f.created_at DESC, f.file_id LIMIT @n";
        }

        var terms = q.Groups.SelectMany(g => g).SelectMany(a => a.Tokens).Where(s => s.Length > 0).Distinct().ToList();
        await using var c = await index.OpenAsync(ct);
        await using var cmd = Command(c, null, sql, [.. args]);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        var hits = new List<FileHit>();
        while (await r.ReadAsync(ct))
        {
            var fileName = r.GetString(4);
            var highlights = new List<Highlight>();
            if (MarkName(fileName, terms) is { } nameHit) highlights.Add(nameHit);
            if (!r.IsDBNull(9) && r.GetString(9) is { Length: > 0 } marked && Highlights.FromMarked("text", marked) is { Ranges.Count: > 0 } textHit)
                highlights.Add(textHit);
            hits.Add(new FileHit(r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3), fileName, r.GetString(5), r.GetInt64(6),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(7)), !r.IsDBNull(8), highlights));
        }
        return hits;
    }

    /// <summary>The file name with each word that starts with a query term marked (case-insensitive); null when none does.</summary>
    private static Highlight? MarkName(string fileName, IReadOnlyList<string> terms)
    {
        var ranges = new List<int[]>();
        foreach (Match word in Regex.Matches(fileName, @"[\p{L}\p{N}]+"))
            if (terms.Any(term => word.Value.StartsWith(term, StringComparison.OrdinalIgnoreCase) || term.StartsWith(word.Value, StringComparison.OrdinalIgnoreCase) && word.Value.Length >= 3))
                ranges.Add([word.Index, word.Index + word.Length]);
        return ranges.Count == 0 ? null : new Highlight("file_name", fileName, ranges);
    }
}
