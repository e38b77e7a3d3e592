using System.Data.Common;
using System.Text;
using Caas.Streams.ReadModel;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Search;

/// <summary>What a message search asks for besides its text (the query string's own filters merged in).</summary>
public sealed record MessageSearch(string Tenant, string Caller, SearchQuery Query, string? ConversationId, string? SenderId,
    DateTimeOffset? From, DateTimeOffset? To, string? Has, string? Intent, string? Sentiment, string? Entity, bool Recent, int Offset, int Limit);

public sealed record MessageHit(string MessageId, string ConversationId, long Seq, string SenderId, DateTimeOffset CreatedAt,
    IReadOnlyList<Highlight> Highlights);

public sealed record MessageHits(IReadOnlyList<MessageHit> Items, bool More, long TotalEstimate);

public sealed record ConversationHit(string ConversationId, string Type, string? Title, IReadOnlyList<Highlight> Highlights);

public sealed record UserHit(string UserId, IReadOnlyList<Highlight> Highlights, string? DisplayName = null);

/// <summary>
/// The searches, in the engine of the read-model database. Every query is scoped by tenant and joined with the caller's
/// memberships as they are now (the read model's), so a removed or banned member finds nothing of that conversation.
/// </summary>
public sealed class SearchQueries(SearchIndex index)
{
    /// <summary>How far the total is counted (beyond it, the estimate says "at least this many").</summary>
    public const int CountCap = 1000;

    public async Task<MessageHits> MessagesAsync(MessageSearch s, CancellationToken ct = default)
    {
        var q = s.Query;
        if (!q.HasTerms && !q.HasFilters && s.ConversationId is null && s.SenderId is null && s.From is null && s.To is null
            && s.Has is null && s.Intent is null && s.Sentiment is null && s.Entity is null)
            return new MessageHits([], false, 0);
        if (!q.HasTerms && q.Excluded.Count > 0 && !q.HasFilters) return new MessageHits([], false, 0);
        var args = new List<(string, object?)> { ("t", s.Tenant), ("me", s.Caller) };
        var where = new StringBuilder();
        void Filter(string sql, params (string, object?)[] more)
        {
            where.Append(" AND ").Append(sql);
            args.AddRange(more);
        }
        if ((s.ConversationId ?? q.In) is { } conversation) Filter("s.conversation_id = @conv", ("conv", conversation));
        if (q.In is not null && s.ConversationId is not null && q.In != s.ConversationId) Filter("1 = 0");
        if (s.SenderId is not null) Filter("s.sender_id = @sender", ("sender", s.SenderId));
        if (q.From is not null) Filter("s.sender_id = @qfrom", ("qfrom", q.From));
        if (s.From is { } since) Filter("s.created_at >= @from", ("from", since.ToUnixTimeMilliseconds()));
        if (q.After is { } after) Filter("s.created_at >= @after", ("after", after.ToUnixTimeMilliseconds()));
        if (s.To is { } to) Filter("s.created_at < @to", ("to", to.ToUnixTimeMilliseconds()));
        if (q.Before is { } before) Filter("s.created_at < @before", ("before", before.ToUnixTimeMilliseconds()));
        if (s.Has is not null) Filter("s.has LIKE @has", ("has", "% " + s.Has + " %"));
        if (s.Entity is not null) Filter("s.entities LIKE @entity", ("entity", "% " + s.Entity + " %"));
        if (s.Intent is not null) Filter("s.intent = @intent", ("intent", s.Intent));
        if (s.Sentiment is not null) Filter("s.sentiment = @sentiment", ("sentiment", s.Sentiment));

        const string members =
            " JOIN rm_memberships m ON m.tenant_id = s.tenant_id AND m.conversation_id = s.conversation_id AND m.user_id = @me" +
            " JOIN rm_conversations v ON v.tenant_id = s.tenant_id AND v.conversation_id = s.conversation_id AND v.deleted = 0";
        string select, count;
        if (index.IsPostgres)
        {
            // The tenant's language: one of SearchLanguages.All, so safe as a literal (the plan stays the one of a constant).
            var language = await index.Languages.LanguageOfAsync(s.Tenant, ct);
            var match = PostgresMatch(q, args, language);
            var headline = q.HasTerms
                // '<' is hidden from ts_headline (which drops anything that parses as an HTML tag) and put back after.
                ? $"replace(ts_headline('{language}', replace(s.text, '<', chr({(int)Highlights.Lt})), {match.Positive}, " +
                  "'StartSel=' || chr(1) || ', StopSel=' || chr(2) || ', MinWords=12, MaxWords=30'), " + $"chr({(int)Highlights.Lt}), '<')"
                : "s.text";
            var text = (q.HasTerms ? $" AND s.tsv @@ {match.Positive}" : "") + (match.Negative is null ? "" : $" AND NOT (s.tsv @@ {match.Negative})");
            var order = s.Recent || !q.HasTerms
                ? "s.created_at DESC, s.conversation_id DESC, s.seq DESC"
                : $"ts_rank_cd(s.tsv, {match.Positive}) DESC, s.created_at DESC, s.conversation_id DESC, s.seq DESC";
            var from = "FROM search_messages s" + members + " WHERE s.tenant_id = @t" + text + where;
            select = $"SELECT s.message_id, s.conversation_id, s.seq, s.sender_id, s.created_at, {headline} {from} ORDER BY {order} OFFSET @o LIMIT @n";
            count = $"SELECT COUNT(*) FROM (SELECT 1 {from} LIMIT {CountCap}) x";
        }
        else
        {
            var (positive, negative) = FtsMatch(q);
            args.Add(("fq", positive));
            if (negative is not null) args.Add(("fneg", negative));
            // The tenant's language: English matches stems (porter), any other words as they are (SearchIndex.Plain).
            var fts = SearchIndex.Plain(await index.Languages.LanguageOfAsync(s.Tenant, ct)) ? "search_messages_fts_plain" : "search_messages_fts";
            var neg = negative is null ? "" : $" AND s.id NOT IN (SELECT rowid FROM {fts} WHERE {fts} MATCH @fneg)";
            string from, headline, order;
            if (q.HasTerms)
            {
                from = $"FROM {fts} JOIN search_messages s ON s.id = {fts}.rowid" + members +
                       $" WHERE {fts} MATCH @fq AND s.tenant_id = @t" + neg + where;
                headline = $"snippet({fts}, 0, char(1), char(2), '…', 24)";
                order = s.Recent ? "s.created_at DESC, s.conversation_id DESC, s.seq DESC"
                    : $"bm25({fts}) ASC, s.created_at DESC, s.conversation_id DESC, s.seq DESC";
            }
            else
            {
                from = "FROM search_messages s JOIN search_messages_fts ON search_messages_fts.rowid = s.id" + members + " WHERE s.tenant_id = @t" + neg + where;
                headline = "search_messages_fts.text";
                order = "s.created_at DESC, s.conversation_id DESC, s.seq DESC";
            }
            select = $"SELECT s.message_id, s.conversation_id, s.seq, s.sender_id, s.created_at, {headline} {from} ORDER BY {order} LIMIT @n OFFSET @o";
            count = $"SELECT COUNT(*) FROM (SELECT 1 {from} LIMIT {CountCap}) x";
        }

        await using var c = await index.OpenAsync(ct);
        var items = new List<MessageHit>();
        await using (var cmd = Command(c, null, select, [.. args, ("o", s.Offset), ("n", s.Limit + 1)]))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                items.Add(new MessageHit(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetString(3),
                    DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)), [WithCjk(Highlights.FromMarked("text", r.GetString(5)), q)]));
        long total;
        await using (var cmd = Command(c, null, count, [.. args]))
            total = Convert.ToInt64(await cmd.ExecuteScalarAsync(ct));
        var more = items.Count > s.Limit;
        if (more) items.RemoveAt(items.Count - 1);
        return new MessageHits(items, more, total);
    }

    /// <summary>
    /// PostgreSQL: each atom becomes <c>websearch_to_tsquery</c> of its tokens (quoted, so a phrase stays a phrase; the
    /// tokens hold no operator), combined with tsquery operators: OR within a group, AND between groups.
    /// </summary>
    private static (string Positive, string? Negative) PostgresMatch(SearchQuery q, List<(string, object?)> args, string language)
    {
        string Atom(SearchAtom a)
        {
            var name = "a" + args.Count;
            args.Add((name, "\"" + (a.IsCjk ? a.Grams : a.Text) + "\""));
            // CJK: the phrase of its bigrams, in the configuration the bigrams were indexed with.
            return $"websearch_to_tsquery('{(a.IsCjk ? "simple" : language)}', @{name})";
        }
        var positive = q.HasTerms
            ? "(" + string.Join(" && ", q.Groups.Select(g => "(" + string.Join(" || ", g.Select(Atom)) + ")")) + ")"
            : "''::tsquery";
        var negative = q.Excluded.Count == 0 ? null : "(" + string.Join(" || ", q.Excluded.Select(Atom)) + ")";
        return (positive, negative);
    }

    /// <summary>SQLite FTS5: each atom a quoted string (a phrase), OR within a group, AND between groups.</summary>
    private static (string Positive, string? Negative) FtsMatch(SearchQuery q)
    {
        static string Atom(SearchAtom a) => a.IsCjk ? "grams : \"" + a.Grams + "\"" : "text : \"" + a.Text.Replace("\"", "\"\"") + "\"";
        var positive = string.Join(" AND ", q.Groups.Select(g => "(" + string.Join(" OR ", g.Select(Atom)) + ")"));
        var negative = q.Excluded.Count == 0 ? null : string.Join(" OR ", q.Excluded.Select(Atom));
        return (positive, negative);
    }

    /// <summary>The engines mark words, not bigrams: a CJK atom's occurrences in the fragment are marked here.</summary>
    private static Highlight WithCjk(Highlight h, SearchQuery q)
    {
        var cjk = q.Groups.SelectMany(g => g).Where(a => a.IsCjk).Select(a => a.Text).ToList();
        if (cjk.Count == 0) return h;
        var ranges = h.Ranges.Select(r => (r[0], r[1])).ToList();
        foreach (var text in cjk)
            for (var at = h.Fragment.IndexOf(text, StringComparison.Ordinal); at >= 0; at = h.Fragment.IndexOf(text, at + text.Length, StringComparison.Ordinal))
                ranges.Add((at, at + text.Length));
        var merged = new List<int[]>();
        foreach (var (start, end) in ranges.Order())
            if (merged.Count > 0 && start <= merged[^1][1]) merged[^1][1] = Math.Max(merged[^1][1], end);
            else merged.Add([start, end]);
        return h with { Ranges = merged };
    }

    /// <summary>Whether the caller is a member of the conversation now (a search filtered to it is refused otherwise).</summary>
    public async Task<bool> IsMemberAsync(string tenant, string user, string conversation, CancellationToken ct = default)
    {
        await using var c = await index.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT COUNT(*) FROM rm_memberships m JOIN rm_conversations v ON v.tenant_id = m.tenant_id AND v.conversation_id = m.conversation_id " +
            "WHERE m.tenant_id = @t AND m.conversation_id = @c AND m.user_id = @u AND v.deleted = 0",
            ("t", tenant), ("c", conversation), ("u", user));
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct)) > 0;
    }

    /// <summary>The caller's conversations whose title, metadata values or member ids contain the text (case-insensitive).</summary>
    public async Task<IReadOnlyList<ConversationHit>> ConversationsAsync(string tenant, string user, string text, int limit, CancellationToken ct = default)
    {
        var needle = text.Trim().ToLowerInvariant();
        if (needle.Length == 0) return [];
        await using var c = await index.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT v.conversation_id, v.type, v.title, v.metadata FROM rm_memberships m " +
            "JOIN rm_conversations v ON v.tenant_id = m.tenant_id AND v.conversation_id = m.conversation_id " +
            "WHERE m.tenant_id = @t AND m.user_id = @u AND v.deleted = 0 AND (LOWER(COALESCE(v.title, '')) LIKE @p ESCAPE '\\' " +
            "OR LOWER(v.metadata) LIKE @p ESCAPE '\\' OR EXISTS (SELECT 1 FROM rm_memberships o WHERE o.tenant_id = v.tenant_id " +
            "AND o.conversation_id = v.conversation_id AND LOWER(o.user_id) LIKE @p ESCAPE '\\')) " +
            "ORDER BY CASE WHEN LOWER(COALESCE(v.title, '')) LIKE @prefix ESCAPE '\\' THEN 0 ELSE 1 END, v.created_at DESC, v.conversation_id LIMIT @n",
            ("t", tenant), ("u", user), ("p", "%" + Like(needle) + "%"), ("prefix", Like(needle) + "%"), ("n", limit));
        var hits = new List<ConversationHit>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            var title = r.IsDBNull(2) ? null : r.GetString(2);
            var highlights = new List<Highlight>();
            if (title is not null && Mark("title", title, needle) is { } h) highlights.Add(h);
            hits.Add(new ConversationHit(r.GetString(0), r.GetString(1), title, highlights));
        }
        return hits;
    }

    /// <summary>
    /// People of the caller's tenant (those in any conversation of it, and those with a profile display name) by user id
    /// and display name: prefix and substring matches, and typo-tolerant ones (PostgreSQL: pg_trgm; SQLite: the same
    /// trigram measure computed here, <see cref="PeopleSearch"/>). Never another tenant's.
    /// </summary>
    public async Task<IReadOnlyList<UserHit>> UsersAsync(string tenant, string text, int limit, CancellationToken ct = default) =>
        await PeopleSearch.FindAsync(index, tenant, text, limit, ct);

    /// <summary>Completions as the user types: people and the caller's conversation titles starting with (or containing) the text.</summary>
    public async Task<IReadOnlyList<(string Kind, string Value, string? Id)>> SuggestionsAsync(string tenant, string user, string text, int limit,
        CancellationToken ct = default)
    {
        // The three lookups at once, each on its own connection: a suggestion costs the slowest of them, not their sum.
        var people = UsersAsync(tenant, text, limit, ct);
        var titles = ConversationsAsync(tenant, user, text, limit, ct);
        var words = TermSuggestions.FindAsync(index, tenant, user, text, limit, ct);
        await Task.WhenAll(people, titles, words);
        var suggestions = new List<(string, string, string?)>();
        foreach (var u in await people) suggestions.Add(("user", u.DisplayName ?? u.UserId, u.UserId));
        foreach (var c in await titles)
            if (c.Title is not null) suggestions.Add(("conversation", c.Title, c.ConversationId));
        // Terms from message text the caller can see, interleaved so that people and titles do not crowd them out.
        var terms = (await words).Select(t => ("term", t, (string?)null)).ToList();
        if (terms.Count == 0) return suggestions.Take(limit).ToList();
        var keep = Math.Max(limit - terms.Count, (limit + 1) / 2);
        return suggestions.Take(keep).Concat(terms).Take(limit).ToList();
    }

    internal static string Like(string s) => s.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_");

    /// <summary>The field with every case-insensitive occurrence of the text marked; null when it does not occur.</summary>
    internal static Highlight? Mark(string field, string value, string needle)
    {
        var ranges = new List<int[]>();
        var at = 0;
        while ((at = value.IndexOf(needle, at, StringComparison.OrdinalIgnoreCase)) >= 0)
        {
            ranges.Add([at, at + needle.Length]);
            at += needle.Length;
        }
        return ranges.Count == 0 ? null : new Highlight(field, value, ranges);
    }
}
