using System.Globalization;
using System.Text;

namespace Caas.Streams.Search;

/// <summary>One thing to find: a word (its tokens as a phrase when it holds punctuation) or a quoted phrase.</summary>
/// <param name="Tokens">Lower-cased letters and digits only: nothing an engine could read as an operator.</param>
public sealed record SearchAtom(IReadOnlyList<string> Tokens)
{
    public string Text => string.Join(' ', Tokens);

    /// <summary>Written in a script without spaces between words (Chinese, Japanese, Korean): found by its bigrams.</summary>
    public bool IsCjk => Tokens.Any(Cjk.Contains);

    /// <summary>The CJK characters' overlapping bigrams, as a phrase (see <see cref="Cjk"/>).</summary>
    public string Grams => Cjk.Grams(Text);
}

/// <summary>
/// Chinese, Japanese and Korean text has no spaces between words, so a word tokenizer sees a whole clause as one
/// token. Both engines index such text a second time as overlapping character bigrams (東京タワー → 東京 京タ タワ ワー),
/// and a CJK query is the phrase of its bigrams: any substring of two or more characters is found. A one-character
/// query finds only a one-character run.
/// </summary>
public static class Cjk
{
    public static bool IsCjk(char c) =>
        c is >= '\u3040' and <= '\u30FF' or >= '\u3400' and <= '\u4DBF' or >= '\u4E00' and <= '\u9FFF' or >= '\uAC00' and <= '\uD7AF'
            or >= '\uF900' and <= '\uFAFF' or >= '\u1100' and <= '\u11FF' or >= '\u3130' and <= '\u318F';

    public static bool Contains(string text) => text.Any(IsCjk);

    /// <summary>The bigrams of every run of CJK characters in the text, space-separated (empty when there are none).</summary>
    public static string Grams(string text)
    {
        var grams = new StringBuilder();
        var i = 0;
        while (i < text.Length)
        {
            if (!IsCjk(text[i]))
            {
                i++;
                continue;
            }
            var start = i;
            while (i < text.Length && IsCjk(text[i])) i++;
            if (grams.Length > 0) grams.Append(' ');
            if (i - start == 1) grams.Append(text[start]);
            for (var k = start; k + 1 < i; k++)
            {
                if (k > start) grams.Append(' ');
                grams.Append(text, k, 2);
            }
        }
        return grams.ToString();
    }
}

/// <summary>
/// A search box's text, parsed leniently as web search does: words, <c>"phrases"</c> (an unbalanced quote is closed at
/// the end), <c>-exclusion</c>, <c>OR</c> between two words or phrases, and the filters <c>from:</c>, <c>in:</c>,
/// <c>before:</c> / <c>after:</c> (YYYY-MM-DD, UTC; before is exclusive). Whatever else is typed (SQL, FTS operators,
/// stars, brackets) is reduced to its letters and digits, so no input reaches an engine as syntax. Each engine gets
/// the query in its own syntax from <see cref="Groups"/> and <see cref="Excluded"/> (see the search queries).
/// </summary>
public sealed record SearchQuery(
    IReadOnlyList<IReadOnlyList<SearchAtom>> Groups,
    IReadOnlyList<SearchAtom> Excluded,
    string? From,
    string? In,
    DateTimeOffset? Before,
    DateTimeOffset? After,
    bool OnlyStopWords)
{
    /// <summary>Terms every match needs: each group is satisfied by any one of its atoms (an OR group); groups are all required.</summary>
    public bool HasTerms => Groups.Count > 0;

    public bool HasFilters => From is not null || In is not null || Before is not null || After is not null;

    /// <summary>The most characters a query may have.</summary>
    public const int MaxLength = 1000;

    public static SearchQuery Parse(string text)
    {
        var groups = new List<List<SearchAtom>>();
        var excluded = new List<SearchAtom>();
        string? from = null, inConversation = null;
        DateTimeOffset? before = null, after = null;
        var sawStopWord = false;
        var pendingOr = false;

        foreach (var (raw, quoted, negated) in Lex(text))
        {
            if (!quoted && !negated && raw is "OR" or "|")
            {
                pendingOr = groups.Count > 0;
                continue;
            }
            if (!quoted && !negated && TryFilter(raw, ref from, ref inConversation, ref before, ref after)) { pendingOr = false; continue; }
            var tokens = Tokens(raw);
            if (tokens.Count == 0) continue;
            // A lone stop word finds everything (or, to PostgreSQL, nothing): dropped, as both engines would have to.
            if (tokens.All(StopWords.Contains))
            {
                sawStopWord = true;
                continue;
            }
            var atom = new SearchAtom(tokens);
            if (negated) excluded.Add(atom);
            else if (pendingOr) groups[^1].Add(atom);
            else groups.Add([atom]);
            pendingOr = false;
        }
        return new SearchQuery(groups, excluded, from, inConversation, before, after, sawStopWord && groups.Count == 0);
    }

    private static bool TryFilter(string raw, ref string? from, ref string? inConversation, ref DateTimeOffset? before, ref DateTimeOffset? after)
    {
        var colon = raw.IndexOf(':');
        if (colon <= 0 || colon == raw.Length - 1) return false;
        var key = raw[..colon].ToLowerInvariant();
        var value = raw[(colon + 1)..];
        switch (key)
        {
            case "from" when Caas.Actors.Common.Ids.IsValid(value):
                from = value;
                return true;
            case "in" when Caas.Actors.Common.Ids.IsValid(value):
                inConversation = value;
                return true;
            case "before" when TryDate(value, out var b):
                before = b;
                return true;
            case "after" when TryDate(value, out var a):
                after = a;
                return true;
            default:
                return false;
        }
    }

    private static bool TryDate(string value, out DateTimeOffset date) =>
        DateTimeOffset.TryParseExact(value, "yyyy-MM-dd", CultureInfo.InvariantCulture,
            DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out date);

    /// <summary>Splits the text into words and quoted phrases, each maybe negated by a leading '-'.</summary>
    private static IEnumerable<(string Raw, bool Quoted, bool Negated)> Lex(string text)
    {
        var i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && char.IsWhiteSpace(text[i])) i++;
            if (i >= text.Length) yield break;
            var negated = false;
            if (text[i] == '-' && i + 1 < text.Length && !char.IsWhiteSpace(text[i + 1]))
            {
                negated = true;
                i++;
            }
            if (text[i] == '"')
            {
                var end = text.IndexOf('"', i + 1);
                // An unbalanced quote is closed at the end of the text.
                var phrase = end < 0 ? text[(i + 1)..] : text[(i + 1)..end];
                i = end < 0 ? text.Length : end + 1;
                yield return (phrase, true, negated);
                continue;
            }
            var start = i;
            while (i < text.Length && !char.IsWhiteSpace(text[i]) && text[i] != '"') i++;
            yield return (text[start..i], false, negated);
        }
    }

    /// <summary>Lower-cased runs of letters and digits (marks kept with their letters); everything else separates.</summary>
    public static List<string> Tokens(string raw)
    {
        var tokens = new List<string>();
        var b = new StringBuilder();
        foreach (var c in raw)
        {
            var cat = char.GetUnicodeCategory(c);
            if (char.IsLetterOrDigit(c) || cat is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark)
                b.Append(char.ToLowerInvariant(c));
            else if (b.Length > 0)
            {
                tokens.Add(b.ToString());
                b.Clear();
            }
        }
        if (b.Length > 0) tokens.Add(b.ToString());
        return tokens;
    }

    /// <summary>English stop words (PostgreSQL's english dictionary's list): too common to search for.</summary>
    public static readonly HashSet<string> StopWords = new(StringComparer.Ordinal)
    {
        "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours", "yourself", "yourselves", "he", "him",
        "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself", "they", "them", "their", "theirs", "themselves",
        "what", "which", "who", "whom", "this", "that", "these", "those", "am", "is", "are", "was", "were", "be", "been", "being",
        "have", "has", "had", "having", "do", "does", "did", "doing", "a", "an", "the", "and", "but", "if", "or", "because", "as",
        "until", "while", "of", "at", "by", "for", "with", "about", "against", "between", "into", "through", "during", "before",
        "after", "above", "below", "to", "from", "up", "down", "in", "out", "on", "off", "over", "under", "again", "further",
        "then", "once", "here", "there", "when", "where", "why", "how", "all", "any", "both", "each", "few", "more", "most",
        "other", "some", "such", "no", "nor", "not", "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will",
        "just", "don", "should", "now",
    };
}
