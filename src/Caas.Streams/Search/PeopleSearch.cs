using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Search;

/// <summary>
/// The people search: the tenant's users (members of any of its conversations, and anyone with a display name in
/// <c>search_profiles</c>) by user id and display name. Prefix matches (of the id, the name, or a word of the name) come
/// first, then substrings, then typo-tolerant matches: on PostgreSQL <c>pg_trgm</c> (<c>similarity</c> of the id,
/// <c>word_similarity</c> of the name); on SQLite the same padded-trigram measure over the tenant's people, computed
/// here when the substring matches did not fill the page.
/// </summary>
public static class PeopleSearch
{
    /// <summary>The least trigram similarity of a typo-tolerant match (id: whole id; name: best word or run of words).</summary>
    public const double IdThreshold = 0.3, NameThreshold = 0.5;

    /// <summary>SQLite: how many of a tenant's people the typo-tolerant pass looks at, at most.</summary>
    public const int ScanLimit = 20_000;

    private const string People =
        "(SELECT user_id FROM rm_people WHERE tenant_id = @t UNION SELECT user_id FROM search_profiles WHERE tenant_id = @t) u " +
        "LEFT JOIN search_profiles p ON p.tenant_id = @t AND p.user_id = u.user_id";

    public static async Task<IReadOnlyList<UserHit>> FindAsync(SearchIndex index, string tenant, string text, int limit, CancellationToken ct)
    {
        var needle = text.Trim().ToLowerInvariant();
        if (needle.Length == 0 || limit <= 0) return [];
        var like = SearchQueries.Like(needle);
        const string name = "LOWER(COALESCE(p.display_name, ''))";
        const string prefixFirst =
            "CASE WHEN LOWER(u.user_id) LIKE @prefix ESCAPE '\\' OR " + name + " LIKE @prefix ESCAPE '\\' OR " + name + " LIKE @word ESCAPE '\\' THEN 0 " +
            "WHEN LOWER(u.user_id) LIKE @p ESCAPE '\\' OR " + name + " LIKE @p ESCAPE '\\' THEN 1 ELSE 2 END";
        var sql = index.IsPostgres
            ? $"SELECT u.user_id, p.display_name FROM {People} WHERE LOWER(u.user_id) LIKE @p ESCAPE '\\' OR {name} LIKE @p ESCAPE '\\' " +
              $"OR similarity(LOWER(u.user_id), @q) > {IdThreshold} OR word_similarity(@q, {name}) > {NameThreshold} " +
              $"ORDER BY {prefixFirst}, GREATEST(similarity(LOWER(u.user_id), @q), word_similarity(@q, {name})) DESC, u.user_id LIMIT @n"
            : $"SELECT u.user_id, p.display_name FROM {People} WHERE LOWER(u.user_id) LIKE @p ESCAPE '\\' OR {name} LIKE @p ESCAPE '\\' " +
              $"ORDER BY {prefixFirst}, u.user_id LIMIT @n";
        var found = new List<(string Id, string? Name)>();
        await using var c = await index.OpenAsync(ct);
        await using (var cmd = Command(c, null, sql, ("t", tenant), ("p", "%" + like + "%"), ("prefix", like + "%"), ("word", "% " + like + "%"),
                         ("q", needle), ("n", limit)))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                found.Add((r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1)));

        if (!index.IsPostgres && found.Count < limit && needle.Length >= 3)
        {
            // Typo tolerance on SQLite: the pg_trgm measure over the tenant's people (bounded), best first.
            var seen = found.Select(f => f.Id).ToHashSet(StringComparer.Ordinal);
            var scored = new List<(double Score, string Id, string? Name)>();
            await using var cmd = Command(c, null, $"SELECT u.user_id, p.display_name FROM {People} LIMIT @n", ("t", tenant), ("n", ScanLimit));
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                var id = r.GetString(0);
                if (seen.Contains(id)) continue;
                var display = r.IsDBNull(1) ? null : r.GetString(1);
                var score = Math.Max(
                    Trigrams.Similarity(needle, id.ToLowerInvariant()) is var s && s > IdThreshold ? s : 0,
                    display is not null && Trigrams.WordSimilarity(needle, display.ToLowerInvariant()) is var w && w > NameThreshold ? w : 0);
                if (score > 0) scored.Add((score, id, display));
            }
            found.AddRange(scored.OrderByDescending(s => s.Score).ThenBy(s => s.Id, StringComparer.Ordinal).Take(limit - found.Count)
                .Select(s => (s.Id, s.Name)));
        }

        return found.Select(f =>
        {
            var highlights = new List<Highlight>();
            if (f.Name is not null && SearchQueries.Mark("display_name", f.Name, needle) is { } n) highlights.Add(n);
            if (SearchQueries.Mark("user_id", f.Id, needle) is { } h) highlights.Add(h);
            return new UserHit(f.Id, highlights, f.Name);
        }).ToList();
    }
}

/// <summary>pg_trgm's measures: words padded with two spaces before and one after, trigrams as a set.</summary>
public static class Trigrams
{
    public static HashSet<string> Of(string text)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var word in Words(text))
        {
            var padded = "  " + word + " ";
            for (var i = 0; i + 3 <= padded.Length; i++) set.Add(padded.Substring(i, 3));
        }
        return set;
    }

    private static IEnumerable<string> Words(string text)
    {
        var start = -1;
        for (var i = 0; i <= text.Length; i++)
        {
            var inWord = i < text.Length && char.IsLetterOrDigit(text[i]);
            if (inWord && start < 0) start = i;
            else if (!inWord && start >= 0)
            {
                yield return text[start..i];
                start = -1;
            }
        }
    }

    /// <summary>Shared trigrams over all distinct trigrams of both (pg_trgm <c>similarity</c>).</summary>
    public static double Similarity(string a, string b)
    {
        var x = Of(a);
        var y = Of(b);
        if (x.Count == 0 || y.Count == 0) return 0;
        var common = x.Count(y.Contains);
        return (double)common / (x.Count + y.Count - common);
    }

    /// <summary>
    /// The best similarity of the query with one word, or a run of adjacent words, of the text (close to pg_trgm's
    /// <c>word_similarity</c>: the share of the query's trigrams found, judged against the extent they lie in).
    /// </summary>
    public static double WordSimilarity(string query, string text)
    {
        var words = Words(text).ToList();
        var best = 0.0;
        for (var i = 0; i < words.Count; i++)
            for (var j = i; j < words.Count && j < i + 4; j++)
                best = Math.Max(best, Similarity(query, string.Join(' ', words.Skip(i).Take(j - i + 1))));
        return best;
    }
}
