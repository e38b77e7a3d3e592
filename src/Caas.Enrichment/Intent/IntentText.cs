using System.Text;
using System.Text.RegularExpressions;

namespace Caas.Enrichment.Intent;

/// <summary>
/// Light normalisation before featurizing: lower case, contractions spelled out, and common English suffixes cut, so
/// "what's", "booking" and "flights" meet "what is", "book" and "flight" in training and at prediction.
/// </summary>
public static partial class IntentText
{
    [GeneratedRegex(@"[\p{L}\p{N}]+(?:'[\p{L}]+)?")]
    private static partial Regex Tokens();

    private static readonly Dictionary<string, string> Contractions = new(StringComparer.Ordinal)
    {
        ["what's"] = "what is", ["it's"] = "it is", ["i'm"] = "i am", ["don't"] = "do not", ["can't"] = "can not",
        ["won't"] = "will not", ["isn't"] = "is not", ["doesn't"] = "does not", ["didn't"] = "did not", ["i've"] = "i have",
        ["i'd"] = "i would", ["i'll"] = "i will", ["you're"] = "you are", ["that's"] = "that is", ["there's"] = "there is",
        ["how's"] = "how is", ["where's"] = "where is", ["who's"] = "who is", ["let's"] = "let us", ["aren't"] = "are not",
        ["wasn't"] = "was not", ["haven't"] = "have not", ["couldn't"] = "could not", ["shouldn't"] = "should not",
    };

    public static string Normalise(string text)
    {
        var output = new StringBuilder(text.Length + 8);
        foreach (Match m in Tokens().Matches(text.ToLowerInvariant().Replace('’', '\'')))
        {
            if (output.Length > 0) output.Append(' ');
            output.Append(Contractions.TryGetValue(m.Value, out var spelled) ? spelled : Stem(m.Value.Replace("'s", "")));
        }
        return output.ToString();
    }

    private static string Stem(string w)
    {
        if (w.Length <= 4 || !w.All(char.IsLetter)) return w;
        if (w.EndsWith("ies", StringComparison.Ordinal)) return w[..^3] + "y";
        if (w.EndsWith("ing", StringComparison.Ordinal) && w.Length > 5) return w[..^3];
        if (w.EndsWith("ed", StringComparison.Ordinal) && w.Length > 5) return w[..^2];
        if (w.EndsWith("es", StringComparison.Ordinal) && (w.EndsWith("ches", StringComparison.Ordinal) || w.EndsWith("shes", StringComparison.Ordinal) || w.EndsWith("xes", StringComparison.Ordinal) || w.EndsWith("sses", StringComparison.Ordinal))) return w[..^2];
        if (w.EndsWith('s') && !w.EndsWith("ss", StringComparison.Ordinal) && !w.EndsWith("us", StringComparison.Ordinal) && !w.EndsWith("is", StringComparison.Ordinal)) return w[..^1];
        return w;
    }
}
