using System.Text.RegularExpressions;

namespace Caas.Enrichment.Entities;

/// <summary>Plain numbers in digits ("1,250", "-3.5", "42%") or words ("twenty five", "a hundred"); the value is invariant decimal text.</summary>
public static partial class NumberRecognizer
{
    private static readonly Regex Digits = new(
        @"(?<![\w.,\-])(?<sign>-)?(?<amount>" + NumberWords.DigitAmount + @")(?<percent>\s?%)?(?![\w])",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Compiled, EntityPatterns.Timeout);

    private static readonly Regex Words = new(
        @"(?<![\w\-])(?<amount>" + NumberWords.WordAmount + @")(?![\w\-])",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Compiled, EntityPatterns.Timeout);

    public static IEnumerable<Entity> Recognize(string text)
    {
        foreach (Match m in Digits.Matches(text))
        {
            var value = NumberWords.Parse(m.Groups["amount"].Value);
            if (value is null) continue;
            if (m.Groups["sign"].Success) value = -value;
            var formatted = NumberWords.Format(value.Value) + (m.Groups["percent"].Success ? "%" : "");
            yield return new Entity(EntityTypes.Number, m.Index, m.Index + m.Length, m.Value, formatted);
        }
        foreach (Match m in Words.Matches(text))
        {
            // "a" or "half" alone is an article or a word, not a number.
            var words = m.Value.Split([' ', '-'], StringSplitOptions.RemoveEmptyEntries);
            if (words.All(w => w.ToLowerInvariant() is "a" or "an" or "half" or "quarter" or "quarters" or "and")) continue;
            var start = m.Index;
            var written = m.Value;
            if (words[0].ToLowerInvariant() is "a" or "an" && words.Length > 1 && words[1].ToLowerInvariant() is not ("hundred" or "thousand" or "million" or "billion" or "dozen" or "quarter" or "half"))
            {
                var skip = written.IndexOf(words[1], StringComparison.Ordinal);
                start += skip;
                written = written[skip..];
            }
            var value = NumberWords.Parse(written);
            if (value is null) continue;
            yield return new Entity(EntityTypes.Number, start, start + written.Length, written, NumberWords.Format(value.Value));
        }
    }
}
