using System.Text;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Search;

/// <summary>
/// Term completions from indexed message text the caller can see: the index's prefix match (PostgreSQL
/// <c>to_tsquery('prefix:*')</c> on the GIN-indexed <c>tsvector</c>; SQLite FTS5 <c>prefix*</c>) over the conversations
/// the caller is a member of now (the same membership join as message search), newest <see cref="Sample"/> messages,
/// whose words starting with the prefix are counted; most frequent first. Nothing is read from conversations the
/// caller is not in, so no term leaks from them.
/// </summary>
public static class TermSuggestions
{
    /// <summary>How many of the newest matching messages are read for their words.</summary>
    public const int Sample = 200;

    public static async Task<IReadOnlyList<string>> FindAsync(SearchIndex index, string tenant, string user, string text, int limit, CancellationToken ct)
    {
        var prefix = LastWordPrefix(text);
        if (prefix is null || limit <= 0) return [];
        const string members =
            " JOIN rm_memberships m ON m.tenant_id = s.tenant_id AND m.conversation_id = s.conversation_id AND m.user_id = @me" +
            " JOIN rm_conversations v ON v.tenant_id = s.tenant_id AND v.conversation_id = s.conversation_id AND v.deleted = 0";
        var language = await index.Languages.LanguageOfAsync(tenant, ct);
        var sql = index.IsPostgres
            ? $"SELECT s.text FROM search_messages s{members} WHERE s.tenant_id = @t AND s.tsv @@ to_tsquery('" + language + "', @q) " +
              "ORDER BY s.created_at DESC LIMIT @n"
            : $"SELECT search_messages_fts.text FROM search_messages_fts JOIN search_messages s ON s.id = search_messages_fts.rowid{members} " +
              "WHERE search_messages_fts MATCH @q AND s.tenant_id = @t ORDER BY s.created_at DESC LIMIT @n";
        // The prefix holds letters and digits only, so it is never operator syntax in either engine.
        var query = index.IsPostgres ? prefix + ":*" : "text : " + prefix + "*";
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        await using var c = await index.OpenAsync(ct);
        await using var cmd = Command(c, null, sql, ("t", tenant), ("me", user), ("q", query), ("n", Sample));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            foreach (var word in Words(r.GetString(0)).Distinct())
                if (word.Length > prefix.Length && word.StartsWith(prefix, StringComparison.Ordinal))
                    counts[word] = counts.GetValueOrDefault(word) + 1;
        return counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).Take(limit).Select(kv => kv.Key).ToList();
    }

    /// <summary>The last word of the text, lower-cased, when it has two or more letters or digits and nothing else; else null.</summary>
    public static string? LastWordPrefix(string text)
    {
        var trimmed = text.TrimEnd();
        var start = trimmed.Length;
        while (start > 0 && char.IsLetterOrDigit(trimmed[start - 1])) start--;
        var word = trimmed[start..].ToLowerInvariant();
        if (word.Length < 2 || word.Length > 64) return null;
        // PostgreSQL's parser and FTS5's unicode61 both split at anything else; CJK is left to the message search.
        return word.All(ch => ch < 128 || char.IsLetter(ch)) ? word : null;
    }

    private static IEnumerable<string> Words(string text)
    {
        var word = new StringBuilder();
        foreach (var ch in text + " ")
        {
            if (char.IsLetterOrDigit(ch)) word.Append(char.ToLowerInvariant(ch));
            else if (word.Length > 0)
            {
                yield return word.ToString();
                word.Clear();
            }
        }
    }
}
