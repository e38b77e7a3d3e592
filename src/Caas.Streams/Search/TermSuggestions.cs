using System.Text;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Search;

/// <summary>
/// Term completions from indexed message text the caller can see: the newest messages (<see cref="PerConversation"/>) of
/// each conversation the caller is a member of now (a range of the index's primary key per conversation), of which those with a word starting with the prefix (PostgreSQL: the row's
/// <c>tsvector</c> matches <c>prefix:*</c>; SQLite: checked here) give their words; most frequent first. Nothing is
/// read from conversations the caller is not in, so no term leaks from them.
/// <para>
/// Why recent messages only: reading every match of a short prefix in the caller's conversations cost 62 ms on average
/// and 120 ms at worst on a million messages (<c>pg_stat_statements</c>: the plan read every message of the caller's
/// 200 conversations to test its <c>tsvector</c>); a suggestion has a budget of 20 ms. Completions come from the
/// conversations' current vocabulary; older words are still found by the message search.
/// </para>
/// </summary>
public static class TermSuggestions
{
    /// <summary>
    /// How many messages are looked at in all: each conversation's newest <c>Budget / conversations</c>, at least
    /// <see cref="MinPerConversation"/> and at most <see cref="MaxPerConversation"/>. A caller in 200 conversations reads
    /// 10 of each; one in 5 conversations, 100 of each. The cost is bounded near this many rows, not by the caller's history.
    /// </summary>
    public const int Budget = 2000, MinPerConversation = 10, MaxPerConversation = 100;

    /// <summary>How many of each conversation's newest messages are looked at, for a caller in this many conversations.</summary>
    public static int PerConversation(long conversations) => (int)Math.Clamp(Budget / Math.Max(1, conversations), MinPerConversation, MaxPerConversation);

    /// <summary>How many matching messages are read for their words (newest first).</summary>
    public const int Sample = 200;

    public static async Task<IReadOnlyList<string>> FindAsync(SearchIndex index, string tenant, string user, string text, int limit, CancellationToken ct)
    {
        var prefix = LastWordPrefix(text);
        if (prefix is null || limit <= 0) return [];
        const string conversations =
            " FROM rm_memberships m" +
            " JOIN rm_conversations v ON v.tenant_id = m.tenant_id AND v.conversation_id = m.conversation_id AND v.deleted = 0";
        // Each conversation's newest messages by the index's primary key (tenant, conversation, seq). PostgreSQL walks it
        // backwards per conversation in one statement (LATERAL … LIMIT); SQLite (in-process: no round trips) runs one
        // prepared statement per conversation, which its planner does better than the correlated form.
        var texts = new List<(string Text, long At)>();
        await using var c = await index.OpenAsync(ct);
        if (index.IsPostgres)
        {
            var language = await index.Languages.LanguageOfAsync(tenant, ct);
            // How many per conversation: an uncorrelated subquery, computed once for the statement (an InitPlan).
            const string perConversation =
                "(SELECT GREATEST(@min, LEAST(@max, @budget / GREATEST(1, COUNT(*)))) FROM rm_memberships WHERE tenant_id = @t AND user_id = @me)";
            var sql = $"SELECT r.text, r.created_at{conversations} CROSS JOIN LATERAL (SELECT s.text, s.tsv, s.created_at FROM search_messages s " +
                      $"WHERE s.tenant_id = m.tenant_id AND s.conversation_id = m.conversation_id ORDER BY s.seq DESC LIMIT {perConversation}) r " +
                      $"WHERE m.tenant_id = @t AND m.user_id = @me AND r.tsv @@ to_tsquery('{language}', @q) ORDER BY r.created_at DESC LIMIT @n";
            // The prefix holds letters and digits only, so it is never operator syntax.
            await using var cmd = Command(c, null, sql, ("t", tenant), ("me", user), ("q", prefix + ":*"), ("n", Sample),
                ("min", (long)MinPerConversation), ("max", (long)MaxPerConversation), ("budget", (long)Budget));
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) texts.Add((r.GetString(0), r.GetInt64(1)));
        }
        else
        {
            var ids = new List<string>();
            await using (var cmd = Command(c, null, $"SELECT m.conversation_id{conversations} WHERE m.tenant_id = @t AND m.user_id = @me",
                             ("t", tenant), ("me", user)))
            await using (var r = await cmd.ExecuteReaderAsync(ct))
                while (await r.ReadAsync(ct)) ids.Add(r.GetString(0));
            await using var newest = Command(c, null,
                "SELECT f.text, s.created_at FROM search_messages s JOIN search_messages_fts f ON f.rowid = s.id " +
                "WHERE s.tenant_id = @t AND s.conversation_id = @c ORDER BY s.seq DESC LIMIT @k",
                ("t", tenant), ("c", string.Empty), ("k", (long)PerConversation(ids.Count)));
            await newest.PrepareAsync(ct);
            foreach (var id in ids)
            {
                newest.Parameters[1].Value = id;
                await using var r = await newest.ExecuteReaderAsync(ct);
                while (await r.ReadAsync(ct))
                {
                    // Most texts lack the prefix anywhere: skip them before splitting into words (PostgreSQL tests the tsvector).
                    var body = r.GetString(0);
                    if (body.Contains(prefix, StringComparison.OrdinalIgnoreCase)) texts.Add((body, r.GetInt64(1)));
                }
            }
            texts.Sort((a, b) => b.At.CompareTo(a.At));
        }
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var read = 0;
        foreach (var (body, _) in texts)
        {
            if (read >= Sample) break;
            var matched = false;
            foreach (var word in Words(body).Distinct())
                if (word.Length > prefix.Length && word.StartsWith(prefix, StringComparison.Ordinal))
                {
                    counts[word] = counts.GetValueOrDefault(word) + 1;
                    matched = true;
                }
            if (matched) read++;
        }
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
