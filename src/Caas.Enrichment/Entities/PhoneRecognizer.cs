using System.Text.RegularExpressions;
using PhoneNumbers;

namespace Caas.Enrichment.Entities;

/// <summary>
/// Phone numbers as people write them in chat: "+1 (541) 754-3010", "0176/12345678", "(+45) 12 34 56 78", with an
/// optional extension. Candidates come from a permissive pattern, are rejected when the context says they are something
/// else (dates, decimals, card or account numbers, formulas, SSNs), and are normalised to E.164 by libphonenumber with
/// the tenant's default region; a number libphonenumber cannot place keeps its digits as its value.
/// </summary>
public static partial class PhoneRecognizer
{
    private static readonly PhoneNumberUtil Util = PhoneNumberUtil.GetInstance();

    // Digits joined by single separators (space, hyphen, dot, slash, spaced hyphen) and bracketed groups; an
    // optional leading "+" or "(+45)"; an optional extension.
    [GeneratedRegex(@"(?:\(\s?\+?\d{1,5}\s?\)\s?[\-.]?\s?|\+\s?)?(?:\(\s?\d{1,5}\s?\)\s?[\-.]?\s?)?\d(?:\d|\(\s?\d{1,4}\s?\)|[ ]?[\-./][ ]?(?=[\d(])|[ ](?=[\d(])|\)(?=\d))*\d(?:\s?(?:[xX]|ext\.?)\s?\d{1,6}(?!\d))?", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex Candidate();

    [GeneratedRegex(@"(?<!\d)(?:\d{1,2}[/\-.]\d{1,2}[/\-.](?:19|20)?\d{2}|(?:19|20)\d{2}[/\-](?:19|20)?\d{2}(?:[/\-]\d{1,2})?)(?!\d)", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex DateLike();

    [GeneratedRegex(@"^\d{3}-\d{2}-\d{4}$", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex SocialSecurityNumber();

    [GeneratedRegex(@"^\d+\.\d+$", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex Decimal();

    [GeneratedRegex(@"\b(?:card|account|acct|ssn|iban|invoice|order|omb|no\.)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex NonPhoneContext();

    [GeneratedRegex(@"\b(?:phone|tel|mobile|cell|call|fax|whatsapp|text me|reach|dial)\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex PhoneContext();

    [GeneratedRegex(@"[xX]|ext", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex ExtensionMark();

    public static IEnumerable<Entity> Recognize(string text, string defaultRegion = "US")
    {
        foreach (Match m in Candidate().Matches(text))
        {
            var (start, value) = (m.Index, m.Value);
            var dateCut = DateLike().Match(value);
            if (dateCut.Success && IsCalendarDate(dateCut.Value))
            {
                // "(914)349-8600 04/21/2020": the number ends where the date begins.
                if (dateCut.Index == 0) continue;
                value = value[..dateCut.Index].TrimEnd(' ', '-', '/', '.');
            }
            if (!IsPhone(text, start, value)) continue;
            yield return new Entity(EntityTypes.Phone, start, start + value.Length, value, Normalise(value, defaultRegion));
        }
    }

    private static bool IsPhone(string text, int start, string candidate)
    {
        var end = start + candidate.Length;
        var before = start > 0 ? text[start - 1] : ' ';
        var beforeTwo = start > 1 ? text[start - 2] : ' ';
        var after = end < text.Length ? text[end] : ' ';
        var afterTwo = end + 1 < text.Length ? text[end + 1] : ' ';

        if (char.IsDigit(before) || before is '#' or '+' or '*' or '=' or '/' or '.' or ',' or '$' or '€' or '£' or '%' or '_' or '\\') return false;
        if (char.IsLetter(before) && char.IsDigit(candidate[0])) return false;
        // "OFFICE-1(516)733-3989" and "#Name#-123 456 7890" are numbers; "P0-001-0000" and "E-151673398" are codes.
        if (before == '-' && !candidate.Contains('(') && (char.IsLetterOrDigit(beforeTwo) || !candidate.Any(c => c is ' ' or '-' or '.'))) return false;
        if (before == ')' && !char.IsWhiteSpace(beforeTwo) && candidate[0] != '(') return false;
        if (char.IsLetterOrDigit(after) || after is '%' or '*' or '=' or '+' or '_' or '@') return false;
        if (after is ':' && char.IsDigit(afterTwo)) return false;
        if (after is '.' or ',' && char.IsDigit(afterTwo)) return false;
        if (after == ' ' && NextTokenIsHex(text, end + 1)) return false;

        var extension = ExtensionMark().Match(candidate);
        var main = extension.Success ? candidate[..extension.Index] : candidate;
        var digits = main.Count(char.IsDigit);
        var international = candidate.StartsWith('+') || candidate.StartsWith("(+") || candidate.StartsWith("00") || candidate.StartsWith("(00");
        if (digits < 7 || digits > (international ? 16 : 15)) return false;
        if (!BracketsBalanced(main)) return false;
        if (Decimal().IsMatch(main)) return false;
        if (SocialSecurityNumber().IsMatch(main)) return false;
        if (LooksLikeLocalNumberWithBadExchange(main)) return false;
        if (main.Contains('.') && main.Split('.', StringSplitOptions.TrimEntries).Any(g => g.Count(char.IsDigit) < 3)) return false;
        if (CardLikeGroups(main)) return false;

        var context = text[Math.Max(0, start - 30)..start];
        if (NonPhoneContext().IsMatch(context) && !PhoneContext().IsMatch(LastClause(context))) return false;
        return true;
    }

    private static string LastClause(string context)
    {
        var cut = context.LastIndexOfAny([',', ';', '.', '\n']);
        var andAt = context.LastIndexOf(" and ", StringComparison.OrdinalIgnoreCase);
        var from = Math.Max(cut, andAt);
        return from >= 0 ? context[(from + 1)..] : context;
    }

    // A North American local number ("223-4567") never has an exchange starting with 1.
    private static bool LooksLikeLocalNumberWithBadExchange(string main) =>
        main.Length == 8 && main[3] == '-' && main[0] == '1' && main.Count(char.IsDigit) == 7;

    // Four groups of four digits is a payment card, not a phone.
    private static bool CardLikeGroups(string main)
    {
        var groups = main.Split([' ', '-'], StringSplitOptions.RemoveEmptyEntries);
        return groups.Length >= 4 && groups.Take(3).All(g => g.Length == 4 && g.All(char.IsDigit)) && main.Count(char.IsDigit) >= 15;
    }

    private static bool NextTokenIsHex(string text, int from)
    {
        if (from >= text.Length) return false;
        var end = from;
        while (end < text.Length && char.IsLetterOrDigit(text[end])) end++;
        var token = text[from..end];
        return token.Length is >= 2 and <= 4 && token.Any(char.IsLetter) && token.Any(char.IsDigit) && token.All(Uri.IsHexDigit);
    }

    private static bool IsCalendarDate(string written)
    {
        var parts = written.Split(['/', '-', '.']).Select(p => int.Parse(p, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        if (parts[0] > 31) return true; // year first: "2009/2010", "2020-04-16"
        var (a, b) = (parts[0], parts[1]);
        return a is >= 1 and <= 31 && b is >= 1 and <= 31 && (a <= 12 || b <= 12);
    }

    private static bool BracketsBalanced(string s)
    {
        // "123)456-7890": an area code that lost its opening bracket is still a phone number.
        if (s.Length > 4 && s[3] == ')' && s[..3].All(char.IsDigit) && !s.Contains('(')) s = s[4..];
        var depth = 0;
        foreach (var c in s)
        {
            if (c == '(') { if (++depth > 1) return false; }
            else if (c == ')') { if (--depth < 0) return false; }
        }
        return depth == 0;
    }

    /// <summary>E.164 when libphonenumber can place the number, else "+" and the digits for an international prefix, else the digits.</summary>
    public static string Normalise(string written, string defaultRegion = "US")
    {
        var extension = ExtensionMark().Match(written);
        var main = extension.Success ? written[..extension.Index] : written;
        var compact = new string(main.Where(c => char.IsDigit(c) || c == '+').ToArray());
        if (compact.StartsWith("00")) compact = "+" + compact[2..];
        try
        {
            var number = Util.Parse(compact, defaultRegion);
            if (Util.IsPossibleNumber(number))
                return Util.Format(number, PhoneNumberFormat.E164);
        }
        catch (NumberParseException)
        {
            // Not placeable in any region: keep the digits as written.
        }
        return compact;
    }
}
