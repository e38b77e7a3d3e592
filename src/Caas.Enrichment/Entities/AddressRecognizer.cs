using System.Text.RegularExpressions;

namespace Caas.Enrichment.Entities;

/// <summary>
/// Street-address fragments: a house number and a street with its kind ("221B Baker Street", "1600 Pennsylvania Ave NW"),
/// and unit designators ("Apt 4B", "Suite 300", "Unit 12", "Flat 2", "Floor 3"). The value spells the abbreviations out.
/// </summary>
public static partial class AddressRecognizer
{
    private static readonly Dictionary<string, string> Spelled = new(StringComparer.OrdinalIgnoreCase)
    {
        ["st"] = "Street", ["ave"] = "Avenue", ["av"] = "Avenue", ["rd"] = "Road", ["blvd"] = "Boulevard", ["ln"] = "Lane",
        ["dr"] = "Drive", ["ct"] = "Court", ["pl"] = "Place", ["pkwy"] = "Parkway", ["hwy"] = "Highway", ["sq"] = "Square",
        ["ter"] = "Terrace", ["cres"] = "Crescent", ["apt"] = "Apartment", ["ste"] = "Suite", ["fl"] = "Floor", ["bldg"] = "Building",
        ["rm"] = "Room", ["n"] = "North", ["s"] = "South", ["e"] = "East", ["w"] = "West",
    };

    [GeneratedRegex(@"(?<![\w])\d{1,5}[A-Za-z]?(?:-\d{1,4})?\s+(?:(?:N|S|E|W|North|South|East|West)\.?\s+)?(?:[A-Z][a-zA-Z'\-]*\.?\s+|\d{1,3}(?:st|nd|rd|th)\s+){1,3}(?:Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Parkway|Pkwy|Highway|Hwy|Square|Sq|Terrace|Ter|Crescent|Cres|Close|Row|Alley|Circle|Trail)\b\.?(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex Street();

    [GeneratedRegex(@"(?<![\w])(?:Apartment|Apt|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|Building|Bldg)\.?\s*#?\s*\d{1,5}[A-Za-z]?(?![\w])|(?<![\w#])#\d{1,5}[A-Za-z]?(?![\w])(?=\s*,|\s*$)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex Unit();

    [GeneratedRegex(@"[A-Za-z]+\.?|[^A-Za-z]+", RegexOptions.None, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex Words();

    public static IEnumerable<Entity> Recognize(string text)
    {
        foreach (Match m in Street().Matches(text))
            yield return Make(m);
        foreach (Match m in Unit().Matches(text))
            yield return Make(m);
    }

    private static Entity Make(Match m)
    {
        var value = Words().Replace(m.Value, w =>
        {
            var bare = w.Value.TrimEnd('.');
            return Spelled.TryGetValue(bare, out var spelled) && bare.Length < spelled.Length ? spelled : w.Value;
        });
        value = Regex.Replace(value, @"\s+", " ", RegexOptions.None, EntityPatterns.Timeout).Replace("# ", "#");
        return new Entity(EntityTypes.Address, m.Index, m.Index + m.Length, m.Value, value);
    }
}
