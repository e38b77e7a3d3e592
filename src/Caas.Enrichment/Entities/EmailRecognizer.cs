using System.Text.RegularExpressions;

namespace Caas.Enrichment.Entities;

/// <summary>E-mail addresses: a dotted local part, then a host name with a real top-level domain, or a bracketed IP literal.</summary>
public static partial class EmailRecognizer
{
    // Local part: no leading, trailing or doubled dots. Host labels: letters, digits, inner hyphens (no underscore).
    [GeneratedRegex(@"(?<![A-Za-z0-9_.+\-])[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*@(?:(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-])|\[\d{1,3}(?:\.\d{1,3}){3}\])", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex Pattern();

    public static IEnumerable<Entity> Recognize(string text)
    {
        foreach (Match m in Pattern().Matches(text))
            yield return new Entity(EntityTypes.Email, m.Index, m.Index + m.Length, m.Value, m.Value.ToLowerInvariant());
    }
}
