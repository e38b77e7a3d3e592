using System.Text.RegularExpressions;

namespace Caas.Enrichment.Entities;

/// <summary>
/// URLs with a scheme (http, https, ftp), with www., or bare host names whose last label is a known top-level domain
/// ("bit.ly", "abc.com.cn"), so "7.am" or "working..is" in prose are not taken for links.
/// </summary>
public static partial class UrlRecognizer
{
    private const string Label = @"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9\-])?";
    private const string PathChars = @"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]";

    [GeneratedRegex(@"(?:(?<![A-Za-z0-9])(?<scheme>(?:https?|ftp)://)(?<host>(?:" + Label + @"\.)*" + Label + @"|\d{1,3}(?:\.\d{1,3}){3})|(?<![\w@.\-/:])(?<host>(?:" + Label + @"\.)+(?<tld>[A-Za-z]{2,24})(?![A-Za-z0-9\-]|://)))(?<port>:\d{1,5})?(?<path>[/?#]" + PathChars + @"*)?", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex Pattern();

    [GeneratedRegex(@"^\d{1,2}\.(?:am|pm)$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex ClockLike();

    public static IEnumerable<Entity> Recognize(string text)
    {
        foreach (Match m in Pattern().Matches(text))
        {
            var end = m.Index + m.Length;
            // An e-mail's domain is not a link on its own.
            if (end < text.Length && text[end] == '@') continue;
            var scheme = m.Groups["scheme"];
            var host = m.Groups["host"].Value;
            if (scheme.Success)
            {
                if (!IsSchemeHost(host)) continue;
            }
            else
            {
                var lastLabel = host[(host.LastIndexOf('.') + 1)..];
                if (!TopLevelDomains.Known.Contains(lastLabel)) continue;
                // "7.am" in prose is a time; "visit 27.pm" is a site.
                if (ClockLike().IsMatch(host) && !IsAfterVisit(text, m.Index)) continue;
            }
            var value = TrimTrailingPunctuation(m.Value);
            if (value.Length == 0) continue;
            yield return new Entity(EntityTypes.Url, m.Index, m.Index + value.Length, value, value.ToLowerInvariant());
        }
    }

    private static bool IsAfterVisit(string text, int index) =>
        text[..index].TrimEnd().EndsWith("visit", StringComparison.OrdinalIgnoreCase);

    private static bool IsSchemeHost(string host) =>
        host == "localhost" || host.Contains('.') && host[(host.LastIndexOf('.') + 1)..] is var tld && (tld.All(char.IsDigit) || TopLevelDomains.Known.Contains(tld));

    // Sentence punctuation after a link belongs to the sentence ("see abc.com.", "(at abc.com)").
    private static string TrimTrailingPunctuation(string url)
    {
        var end = url.Length;
        while (end > 0)
        {
            var c = url[end - 1];
            if (c is '.' or ',' or ';' or ':' or '!' or '?' or '\'' or '"') { end--; continue; }
            if (c == ')' && url[..end].Count(ch => ch == '(') < url[..end].Count(ch => ch == ')')) { end--; continue; }
            if (c == ']' && url[..end].Count(ch => ch == '[') < url[..end].Count(ch => ch == ']')) { end--; continue; }
            break;
        }
        return url[..end];
    }
}

internal static class TopLevelDomains
{
    // Generic and sponsored TLDs in common use plus every two-letter country code; enough to tell "bit.ly" from "e.g".
    public static readonly HashSet<string> Known = new(StringComparer.OrdinalIgnoreCase)
    {
        "com", "org", "net", "edu", "gov", "mil", "int", "info", "biz", "name", "pro", "aero", "coop", "museum", "mobi",
        "asia", "tel", "travel", "jobs", "cat", "app", "dev", "io", "ai", "academy", "aws", "cloud", "online", "site",
        "store", "tech", "shop", "blog", "news", "xyz", "top", "club", "live", "website", "space", "link", "email",
        "page", "design", "media", "agency", "studio", "digital", "world", "today", "network", "systems", "solutions",
        "ac", "ad", "ae", "af", "ag", "al", "am", "ao", "aq", "ar", "as", "at", "au", "aw", "ax", "az", "ba", "bb", "bd",
        "be", "bf", "bg", "bh", "bi", "bj", "bm", "bn", "bo", "br", "bs", "bt", "bw", "by", "bz", "ca", "cc", "cd", "cf",
        "cg", "ch", "ci", "ck", "cl", "cm", "cn", "co", "cr", "cu", "cv", "cw", "cx", "cy", "cz", "de", "dj", "dk", "dm",
        "do", "dz", "ec", "ee", "eg", "er", "es", "et", "eu", "fi", "fj", "fk", "fm", "fo", "fr", "ga", "gd", "ge", "gf",
        "gg", "gh", "gi", "gl", "gm", "gn", "gp", "gq", "gr", "gs", "gt", "gu", "gw", "gy", "hk", "hm", "hn", "hr", "ht",
        "hu", "id", "ie", "il", "im", "in", "iq", "ir", "is", "it", "je", "jm", "jo", "jp", "ke", "kg", "kh", "ki", "km",
        "kn", "kp", "kr", "kw", "ky", "kz", "la", "lb", "lc", "li", "lk", "lr", "ls", "lt", "lu", "lv", "ly", "ma", "mc",
        "md", "me", "mg", "mh", "mk", "ml", "mm", "mn", "mo", "mp", "mq", "mr", "ms", "mt", "mu", "mv", "mw", "mx", "my",
        "mz", "na", "nc", "ne", "nf", "ng", "ni", "nl", "no", "np", "nr", "nu", "nz", "om", "pa", "pe", "pf", "pg", "ph",
        "pk", "pl", "pm", "pn", "pr", "ps", "pt", "pw", "py", "qa", "re", "ro", "rs", "ru", "rw", "sa", "sb", "sc", "sd",
        "se", "sg", "sh", "si", "sk", "sl", "sm", "sn", "so", "sr", "ss", "st", "su", "sv", "sx", "sy", "sz", "tc", "td",
        "tf", "tg", "th", "tj", "tk", "tl", "tm", "tn", "to", "tr", "tt", "tv", "tw", "tz", "ua", "ug", "uk", "us", "uy",
        "uz", "va", "vc", "ve", "vg", "vi", "vn", "vu", "wf", "ws", "ye", "yt", "za", "zm", "zw",
    };
}
