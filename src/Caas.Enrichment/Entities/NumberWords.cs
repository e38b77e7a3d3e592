using System.Globalization;
using System.Text.RegularExpressions;

namespace Caas.Enrichment.Entities;

/// <summary>
/// Reads amounts as people write them: "1,250.50", "12,34,567.89" (Indian grouping), "1.6 million", "35 lakh",
/// "five million", "thirteen", "forty-five", "a quarter million", "three quarters billion", "half".
/// </summary>
public static partial class NumberWords
{
    private static readonly Dictionary<string, decimal> Units = new(StringComparer.OrdinalIgnoreCase)
    {
        ["zero"] = 0, ["one"] = 1, ["two"] = 2, ["three"] = 3, ["four"] = 4, ["five"] = 5, ["six"] = 6, ["seven"] = 7,
        ["eight"] = 8, ["nine"] = 9, ["ten"] = 10, ["eleven"] = 11, ["twelve"] = 12, ["thirteen"] = 13, ["fourteen"] = 14,
        ["fifteen"] = 15, ["sixteen"] = 16, ["seventeen"] = 17, ["eighteen"] = 18, ["nineteen"] = 19, ["twenty"] = 20,
        ["thirty"] = 30, ["forty"] = 40, ["fifty"] = 50, ["sixty"] = 60, ["seventy"] = 70, ["eighty"] = 80, ["ninety"] = 90,
        ["a"] = 1, ["an"] = 1, ["half"] = 0.5m, ["quarter"] = 0.25m, ["quarters"] = 0.25m, ["dozen"] = 12,
    };

    private static readonly Dictionary<string, decimal> Scales = new(StringComparer.OrdinalIgnoreCase)
    {
        ["hundred"] = 100m, ["thousand"] = 1_000m, ["k"] = 1_000m, ["million"] = 1_000_000m, ["mn"] = 1_000_000m,
        ["m"] = 1_000_000m, ["billion"] = 1_000_000_000m, ["bn"] = 1_000_000_000m, ["b"] = 1_000_000_000m,
        ["trillion"] = 1_000_000_000_000m, ["lakh"] = 100_000m, ["lakhs"] = 100_000m, ["crore"] = 10_000_000m, ["crores"] = 10_000_000m,
    };

    private const string WordAlternatives =
        "zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|" +
        "eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|trillion|" +
        "half|quarters?|lakhs?|crores?|dozen";

    /// <summary>A digit amount, optionally followed by a scale word: "1,234.5", "12,34,567.89", "1.6 million", "35 lakh".</summary>
    public const string DigitAmount = @"(?:\d{1,3}(?:,\d{3})+|\d{1,2}(?:,\d{2})+,\d{3}|\d+)(?:\.\d+)?(?:\s?(?:hundred|thousand|million|billion|trillion|lakhs?|crores?|mn|bn)\b)?";

    /// <summary>A run of number words: "a quarter million", "thirteen", "forty-five", "one hundred and twenty".</summary>
    /// <remarks>At most twelve words: long enough for "three hundred and forty five thousand six hundred", and a
    /// bound that keeps a message of nothing but number words from making the patterns backtrack quadratically.</remarks>
    public const string WordAmount = @"(?:(?:a|an)\s+)?(?:" + WordAlternatives + @")(?:(?:\s+and\s+|[\s\-]+)(?:" + WordAlternatives + @")){0,11}";

    [GeneratedRegex(@"^(?<digits>(?:\d{1,3}(?:,\d{3})+|\d{1,2}(?:,\d{2})+,\d{3}|\d+)(?:\.\d+)?)(?:\s?(?<scale>\w+))?$", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex DigitsWithScale();

    /// <summary>The value of an amount in digits or words, or null when it is not one.</summary>
    public static decimal? Parse(string written)
    {
        var text = written.Trim();
        if (text.Length == 0) return null;
        var digits = DigitsWithScale().Match(text);
        if (digits.Success)
        {
            // Beyond decimal's range (a run of thirty digits) is not an amount anyone wrote.
            if (!decimal.TryParse(digits.Groups["digits"].Value.Replace(",", ""), NumberStyles.Number, CultureInfo.InvariantCulture, out var value))
                return null;
            if (digits.Groups["scale"].Success)
            {
                if (!Scales.TryGetValue(digits.Groups["scale"].Value, out var scale)) return null;
                try
                {
                    value *= scale;
                }
                catch (OverflowException)
                {
                    return null;
                }
            }
            return value;
        }
        return ParseWords(text);
    }

    private static decimal? ParseWords(string text)
    {
        var words = text.ToLowerInvariant().Split([' ', '-', '\t'], StringSplitOptions.RemoveEmptyEntries)
            .Where(w => w != "and")
            .ToList();
        if (words.Count == 0) return null;
        decimal total = 0, current = 0;
        var seen = false;
        for (var i = 0; i < words.Count; i++)
        {
            var word = words[i];
            if (Units.TryGetValue(word, out var unit))
            {
                // "three quarters" multiplies, "a quarter" is the quarter itself.
                if (word is "quarter" or "quarters" or "half" && current > 0 && words[i - 1] is not ("a" or "an")) current *= unit;
                else if (word is "quarter" or "quarters" or "half" && current == 1 && i > 0 && words[i - 1] is "a" or "an") current = unit;
                else current += unit;
                seen = true;
            }
            else if (Scales.TryGetValue(word, out var scale))
            {
                if (!seen) current = 1;
                if (scale == 100) current *= 100;
                else
                {
                    total += current * scale;
                    current = 0;
                }
                seen = true;
            }
            else return null;
        }
        return seen ? total + current : null;
    }

    public static string Format(decimal value) => value.ToString("0.############", CultureInfo.InvariantCulture);
}
