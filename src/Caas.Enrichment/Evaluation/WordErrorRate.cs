using System.Globalization;
using System.Text;

namespace Caas.Enrichment.Evaluation;

/// <summary>Word error rate: the Levenshtein distance over words (substitutions, insertions, deletions) over the reference's word count.</summary>
public static class WordErrorRate
{
    public static (int Edits, int Words) Of(string reference, string hypothesis)
    {
        var truth = Words(reference);
        var heard = Words(hypothesis);
        var previous = new int[heard.Count + 1];
        var current = new int[heard.Count + 1];
        for (var j = 0; j <= heard.Count; j++) previous[j] = j;
        for (var i = 1; i <= truth.Count; i++)
        {
            current[0] = i;
            for (var j = 1; j <= heard.Count; j++)
            {
                var cost = truth[i - 1] == heard[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }
            (previous, current) = (current, previous);
        }
        return (previous[heard.Count], truth.Count);
    }

    /// <summary>
    /// Normalised words: lower case, letters, digits and in-word apostrophes kept ("o'clock", "don't"), every other
    /// character a word break, so punctuation and case are never counted as errors.
    /// </summary>
    public static IReadOnlyList<string> Words(string text)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        var normalized = text.Normalize(NormalizationForm.FormKC).Replace('\u2019', '\'');
        for (var i = 0; i < normalized.Length; i++)
        {
            var c = normalized[i];
            if (char.IsLetterOrDigit(c)) word.Append(char.ToLower(c, CultureInfo.InvariantCulture));
            else if (c == '\'' && word.Length > 0 && i + 1 < normalized.Length && char.IsLetterOrDigit(normalized[i + 1])) word.Append(c);
            else Flush();
        }
        Flush();
        return words;

        void Flush()
        {
            if (word.Length == 0) return;
            words.Add(word.ToString());
            word.Clear();
        }
    }
}
