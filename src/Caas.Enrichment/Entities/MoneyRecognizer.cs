using System.Buffers;
using System.Text.RegularExpressions;

namespace Caas.Enrichment.Entities;

/// <summary>
/// Money: an amount with a currency before it ("$4.25", "USD 200", "c $ 1.34", "MAUD 60") or after it ("5 dollars",
/// "450,000 yen", "10 €", "30 MUSD"), with cents or minor units joined on ("3 dollars 50 cents", "15 dollars and 50").
/// A currency named without an amount ("the dollar fell") is reported too, with the currency alone as its value.
/// Values read "USD 12.5"; a currency with no ISO code keeps its name ("Pence 470").
/// </summary>
public static partial class MoneyRecognizer
{
    private sealed record Currency(string Code, bool NamedAlone);

    // Written forms, longest first in the pattern so "us dollars" wins over "dollars".
    private static readonly Dictionary<string, Currency> Names = new(StringComparer.OrdinalIgnoreCase)
    {
        ["$"] = new("USD", false), ["us$"] = new("USD", false), ["us $"] = new("USD", false), ["u.s $"] = new("USD", false),
        ["u.s. $"] = new("USD", false), ["usd$"] = new("USD", false), ["c $"] = new("CAD", false), ["c$"] = new("CAD", false),
        ["cad$"] = new("CAD", false), ["a$"] = new("AUD", false), ["aud$"] = new("AUD", false),
        ["nzd$"] = new("NZD", false), ["nz$"] = new("NZD", false), ["hk$"] = new("HKD", false), ["s$"] = new("SGD", false),
        ["mex$"] = new("MXN", false), ["mxn$"] = new("MXN", false), ["r$"] = new("BRL", false),
        ["€"] = new("EUR", false), ["£"] = new("GBP", false), ["¥"] = new("JPY", false), ["₹"] = new("INR", false),
        ["₿"] = new("BTC", false), ["₡"] = new("CRC", false), ["₾"] = new("GEL", false), ["₭"] = new("LAK", false),
        ["ரூ"] = new("LKR", false), ["元"] = new("CNY", false), ["₩"] = new("KRW", false), ["₽"] = new("RUB", false),
        ["₺"] = new("TRY", false), ["₪"] = new("ILS", false), ["₫"] = new("VND", false), ["฿"] = new("THB", false),
        ["₱"] = new("PHP", false), ["₦"] = new("NGN", false), ["₴"] = new("UAH", false), ["₸"] = new("KZT", false),
        ["usd"] = new("USD", true), ["eur"] = new("EUR", true), ["gbp"] = new("GBP", true), ["jpy"] = new("JPY", true),
        ["cny"] = new("CNY", true), ["rmb"] = new("CNY", true), ["inr"] = new("INR", true), ["chf"] = new("CHF", true),
        ["cad"] = new("CAD", true), ["aud"] = new("AUD", true), ["nzd"] = new("NZD", true), ["mxn"] = new("MXN", true),
        ["hkd"] = new("HKD", true), ["sgd"] = new("SGD", true), ["krw"] = new("KRW", true), ["rub"] = new("RUB", true),
        ["brl"] = new("BRL", true), ["zar"] = new("ZAR", true), ["sek"] = new("SEK", true), ["nok"] = new("NOK", true),
        ["dkk"] = new("DKK", true), ["pln"] = new("PLN", true), ["btc"] = new("BTC", true), ["aed"] = new("AED", true),
        ["dollar"] = new("USD", true), ["dollars"] = new("USD", true), ["us dollar"] = new("USD", true),
        ["us dollars"] = new("USD", true), ["u.s. dollars"] = new("USD", true), ["american dollars"] = new("USD", true),
        ["canadian dollar"] = new("CAD", true), ["canadian dollars"] = new("CAD", true),
        ["australian dollar"] = new("AUD", true), ["australian dollars"] = new("AUD", true),
        ["euro"] = new("EUR", true), ["euros"] = new("EUR", true), ["pound"] = new("GBP", false), ["pounds"] = new("GBP", false),
        ["pounds sterling"] = new("GBP", true), ["british pounds"] = new("GBP", true), ["pence"] = new("GBX", false),
        ["penny"] = new("GBX", false), ["pennies"] = new("GBX", false), ["cent"] = new("Cent", false), ["cents"] = new("Cent", false),
        ["yen"] = new("JPY", true), ["japanese yen"] = new("JPY", true), ["yuan"] = new("CNY", true),
        ["chinese yuan"] = new("CNY", true), ["renminbi"] = new("CNY", true), ["kuai"] = new("CNY", false),
        ["franc"] = new("Franc", false), ["francs"] = new("Franc", false), ["swiss franc"] = new("CHF", true),
        ["swiss francs"] = new("CHF", true), ["peseta"] = new("ESP", false), ["pesetas"] = new("ESP", false),
        ["guilder"] = new("NLG", false), ["guilders"] = new("NLG", false), ["dutch guilders"] = new("NLG", false),
        ["rupee"] = new("INR", false), ["rupees"] = new("INR", false), ["lira"] = new("TRY", false),
        ["turkish lira"] = new("TRY", true), ["bitcoin"] = new("BTC", true), ["bitcoins"] = new("BTC", true),
        ["satoshi"] = new("Satoshi", false), ["satoshis"] = new("Satoshi", false), ["sen"] = new("Sen", false),
        ["ruble"] = new("RUB", false), ["rubles"] = new("RUB", false), ["roubles"] = new("RUB", false),
        ["peso"] = new("MXN", false), ["pesos"] = new("MXN", false), ["mexican pesos"] = new("MXN", true),
        ["rand"] = new("ZAR", false), ["won"] = new("KRW", false), ["shekel"] = new("ILS", false), ["shekels"] = new("ILS", false),
        ["dirham"] = new("AED", false), ["dirhams"] = new("AED", false), ["riyal"] = new("SAR", false), ["riyals"] = new("SAR", false),
        ["baht"] = new("THB", false), ["ringgit"] = new("MYR", false), ["zloty"] = new("PLN", false), ["krona"] = new("SEK", false),
        ["kronor"] = new("SEK", false), ["krone"] = new("NOK", false), ["kroner"] = new("NOK", false), ["markka"] = new("FIM", false), ["finnish markka"] = new("FIM", true),
        ["quid"] = new("GBP", false), ["bucks"] = new("USD", false),
        ["musd"] = new("USD", false), ["meur"] = new("EUR", false), ["mgbp"] = new("GBP", false), ["maud"] = new("AUD", false),
    };

    // Prefix forms that count in millions ("30 MUSD", "MAUD 60").
    private static readonly HashSet<string> MillionCodes = new(StringComparer.OrdinalIgnoreCase) { "musd", "meur", "mgbp", "maud" };

    private static readonly HashSet<string> MinorUnits = new(StringComparer.OrdinalIgnoreCase) { "cent", "cents", "pence", "penny", "pennies" };

    // Currencies that have cents, so "15 dollars 50" reads as 15.50.
    private static readonly HashSet<string> Decimal = new(StringComparer.OrdinalIgnoreCase) { "USD", "CAD", "AUD", "NZD", "HKD", "SGD", "MXN", "EUR", "GBP", "CHF", "Franc" };

    // "hk$" is also written "hk $"; multi-word names take any single space.
    private static readonly string CurrencyAlternatives = string.Join("|",
        Names.Keys.OrderByDescending(k => k.Length)
            .Select(k => k.Length > 2 && k.EndsWith('$') && char.IsLetter(k[^2]) ? Regex.Escape(k[..^1]) + @"\s?\$" : Regex.Escape(k))
            .Select(k => k.Replace(@"\ ", @"\s?")));

    private const string MinorWords =
        @"(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[\s\-](?:one|two|three|four|five|six|seven|eight|nine)(?![\w]))?|" +
        "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen";

    private const string NotScaled = @"(?![\w])(?!\s+(?:hundred|thousand|million|billion|times)\b)";

    private const string MinorAmount =
        @"\d{1,2}(?![\d.,]\d)|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[\s\-](?:one|two|three|four|five|six|seven|eight|nine)(?![\w]))?|" +
        "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen";

    private static readonly string Amount = "(?:" + NumberWords.DigitAmount + "|" + NumberWords.WordAmount + ")";

    private static readonly Regex Prefixed = new(
        @"(?<![\w$€£])(?<cur>" + CurrencyAlternatives + @")\s?(?<amount>" + NumberWords.DigitAmount + @")(?![\d])(?:\s(?<scale>million|billion|thousand|trillion)\b)?" +
        @"(?:\s+and\s+(?<minor>" + MinorWords + @")" + NotScaled + ")?",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Compiled, EntityPatterns.Timeout);

    private static readonly Regex Suffixed = new(
        @"(?<![\w.,])(?<amount>" + Amount + @")(?:\s?-\s?|\s?)(?:(?<cur>" + CurrencyAlternatives + @")(?:\s(?<scale>million|billion|thousand|trillion)\b)?)(?![\w$€£])" +
        @"(?:(?:\s+and\s+|\s+)(?<minor>" + MinorAmount + @")(?:\s?(?<minorcur>cents?|pence|penny)(?![\w])|" + NotScaled + @"(?!\s?(?:" + CurrencyAlternatives + @")(?![\w]))))?",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Compiled, EntityPatterns.Timeout);

    private static readonly Regex Alone = new(
        @"(?<![\w$])(?<cur>dollars?|euros?|yen|yuan|rmb|usd|eur|gbp)(?![\w$])",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Compiled, EntityPatterns.Timeout);

    // Every entity the three patterns yield names its currency as one of Names' keys, ignoring case ordinally (Lookup
    // and Alone look the matched text up in Names), so the text holds that key's first word, or "$" for the names with
    // a dollar sign. A text with none of these, ignoring case, has no money in it, and most messages have none: the
    // patterns, which try an amount at every position, are not run on it (below 1 µs against 25–30 µs for a short
    // message). The patterns' own case folding is wider (they take the Kelvin sign for k), but a currency written so is
    // not found in Names, so it never made an entity.
    private static readonly SearchValues<string> CurrencyWords = SearchValues.Create(
        Names.Keys.Select(k => k.Contains('$') ? "$" : k.Split(' ')[0]).Distinct(StringComparer.OrdinalIgnoreCase).ToArray(),
        StringComparison.OrdinalIgnoreCase);

    /// <summary>False only when <paramref name="text"/> cannot hold money (no currency written in it).</summary>
    public static bool MayHoldMoney(ReadOnlySpan<char> text) => text.IndexOfAny(CurrencyWords) >= 0;

    public static IEnumerable<Entity> Recognize(string text) => MayHoldMoney(text) ? Scan(text) : [];

    /// <summary>The currency names as written (the tests check the filter above against every one).</summary>
    internal static IEnumerable<string> CurrencyNames => Names.Keys;

    /// <summary>The three patterns over the whole text, without the filter.</summary>
    internal static IEnumerable<Entity> Scan(string text)
    {
        var found = new List<Entity>();
        foreach (Match m in Suffixed.Matches(text))
        {
            var entity = WithinRange(() => FromSuffixed(text, m));
            if (entity is not null) found.Add(entity);
        }
        foreach (Match m in Prefixed.Matches(text))
        {
            var entity = WithinRange(() => FromPrefixed(text, m));
            if (entity is not null && !found.Any(f => Overlaps(f, entity))) found.Add(entity);
        }
        foreach (Match m in Alone.Matches(text))
        {
            var entity = new Entity(EntityTypes.Money, m.Index, m.Index + m.Length, m.Value, Names[m.Groups["cur"].Value].Code);
            if (!found.Any(f => Overlaps(f, entity))) found.Add(entity);
        }
        return found.OrderBy(e => e.Start);
    }

    private static bool Overlaps(Entity a, Entity b) => a.Start < b.End && b.Start < a.End;

    private static Entity? FromPrefixed(string text, Match m)
    {
        var curText = m.Groups["cur"].Value;
        var currency = Lookup(curText);
        if (currency is null) return null;
        // A bare number word after a code is not an amount ("usd one"), and "sen" needs a digit amount.
        var amount = NumberWords.Parse(m.Groups["amount"].Value);
        if (amount is null) return null;
        if (MinorUnits.Contains(curText)) return null;
        if (m.Groups["scale"].Success) amount *= NumberWords.Parse("1 " + m.Groups["scale"].Value) ?? 1;
        if (MillionCodes.Contains(curText)) amount *= 1_000_000m;
        var end = m.Index + m.Length;
        if (m.Groups["minor"].Success)
        {
            var minor = NumberWords.Parse(m.Groups["minor"].Value);
            if (minor is >= 1 and < 100 && Decimal.Contains(currency.Code)) amount += minor.Value / 100m;
            else end = m.Groups["scale"].Success ? m.Groups["scale"].Index + m.Groups["scale"].Length : m.Groups["amount"].Index + m.Groups["amount"].Length;
        }
        return new Entity(EntityTypes.Money, m.Index, end, text[m.Index..end], $"{currency.Code} {NumberWords.Format(amount.Value)}");
    }

    /// <summary>An amount scaled beyond decimal's range ("7922816251426433759354395033 million dollars") is no amount.</summary>
    private static Entity? WithinRange(Func<Entity?> read)
    {
        try
        {
            return read();
        }
        catch (OverflowException)
        {
            return null;
        }
    }

    private static Entity? FromSuffixed(string text, Match m)
    {
        var curText = m.Groups["cur"].Value;
        var currency = Lookup(curText);
        if (currency is null) return null;
        var amount = NumberWords.Parse(m.Groups["amount"].Value);
        if (amount is null) return null;
        var amountText = m.Groups["amount"].Value;
        // "a dollar" in prose is usually money, but a lone article before a symbol ("a $") is not.
        if (amountText.Equals("a", StringComparison.OrdinalIgnoreCase) || amountText.Equals("an", StringComparison.OrdinalIgnoreCase)) return null;
        // "$ 20,000.00 $ 37,305.97", "$10 dollars": an amount right after a symbol belongs to that symbol.
        if (PrecededByCurrency(text, m.Index)) return null;
        if (m.Groups["scale"].Success) amount *= NumberWords.Parse("1 " + m.Groups["scale"].Value) ?? 1;
        if (MillionCodes.Contains(curText)) amount *= 1_000_000m;
        var end = m.Groups["scale"].Success ? m.Groups["scale"].Index + m.Groups["scale"].Length : m.Groups["cur"].Index + m.Groups["cur"].Length;
        var minor = m.Groups["minor"];
        if (minor.Success && !MinorUnits.Contains(curText) && Decimal.Contains(currency.Code))
        {
            var minorValue = NumberWords.Parse(minor.Value);
            if (minorValue is >= 1 and < 100)
            {
                amount += minorValue.Value / 100m;
                end = m.Groups["minorcur"].Success ? m.Groups["minorcur"].Index + m.Groups["minorcur"].Length : minor.Index + minor.Length;
            }
        }
        return new Entity(EntityTypes.Money, m.Index, end, text[m.Index..end], $"{currency.Code} {NumberWords.Format(amount.Value)}");
    }

    // Scans back from the amount without copying the text before it: this runs once per candidate amount.
    private static bool PrecededByCurrency(string text, int index)
    {
        var symbolAt = index - 1;
        while (symbolAt >= 0 && char.IsWhiteSpace(text[symbolAt])) symbolAt--;
        if (symbolAt < 0 || text[symbolAt] is not ('$' or '€' or '£' or '¥' or '₹' or '₿')) return false;
        if (symbolAt == index - 1) return true;
        // "10 $ 30 $": that symbol already closed the amount before it.
        var beforeSymbol = symbolAt - 1;
        while (beforeSymbol >= 0 && char.IsWhiteSpace(text[beforeSymbol])) beforeSymbol--;
        return beforeSymbol < 0 || !char.IsDigit(text[beforeSymbol]);
    }

    private static Currency? Lookup(string written)
    {
        var key = Regex.Replace(written, @"\s+", " ", RegexOptions.None, EntityPatterns.Timeout);
        if (Names.TryGetValue(key, out var currency)) return currency;
        return Names.TryGetValue(key.Replace(" ", ""), out currency) ? currency : null;
    }
}
