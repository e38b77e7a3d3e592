using Caas.Enrichment.Entities;
using Caas.Enrichment.Evaluation;
using Xunit;

namespace Caas.Enrichment.Tests;

public class EntityTests
{
    // Monday 23 November 2026, 09:30 UTC = 10:30 in Berlin.
    private static readonly EntityContext Berlin = new(new DateTimeOffset(2026, 11, 23, 9, 30, 0, TimeSpan.Zero), "Europe/Berlin", "DE");
    private static readonly EntityContext NewYork = new(new DateTimeOffset(2026, 11, 23, 9, 30, 0, TimeSpan.Zero), "America/New_York", "US");

    private static Entity Single(string text, string type, EntityContext? context = null)
    {
        var found = EntityExtractor.Extract(text, context ?? NewYork).Where(e => e.Type == type).ToList();
        Assert.True(found.Count == 1, $"expected one {type} in '{text}', found: {string.Join(", ", found)}");
        var entity = found[0];
        Assert.Equal(entity.Text, text[entity.Start..entity.End]);
        return entity;
    }

    [Theory]
    [InlineData("Call me at (415) 555-0132 please", "(415) 555-0132", "+14155550132")]
    [InlineData("my number: +44 20 7946 0958.", "+44 20 7946 0958", "+442079460958")]
    [InlineData("ring 0044 20 7946 0958 now", "0044 20 7946 0958", "+442079460958")]
    [InlineData("Tel: 415.555.0132 x204", "415.555.0132 x204", "+14155550132")]
    [InlineData("whatsapp +49 176/12345678", "+49 176/12345678", "+4917612345678")]
    public void Phone_numbers_are_found_and_normalised_to_E164(string text, string span, string e164)
    {
        var phone = Single(text, EntityTypes.Phone);
        Assert.Equal(span, phone.Text);
        Assert.Equal(e164, phone.Value);
    }

    [Fact]
    public void A_national_number_uses_the_tenant_default_region()
    {
        Assert.Equal("+4930123456", Single("ruf an: 030 123456 7", EntityTypes.Phone, Berlin).Value[..11]);
        Assert.Equal("+4917612345678", Single("Handy 0176 12345678", EntityTypes.Phone, Berlin).Value);
    }

    [Theory]
    [InlineData("on 16/04/2010 we met")]
    [InlineData("pi is 3.14159265358")]
    [InlineData("card number 4111 1111 1111 1111")]
    [InlineData("SSN 078-05-1120 is on file")]
    [InlineData("account #12345678")]
    [InlineData("the formula 45+31-339243873")]
    public void Things_that_only_look_like_phone_numbers_are_not(string text) =>
        Assert.DoesNotContain(EntityExtractor.Extract(text, NewYork), e => e.Type == EntityTypes.Phone);

    [Theory]
    [InlineData("mail Anna.Meyer+chat@Example.co.uk today", "Anna.Meyer+chat@Example.co.uk", "anna.meyer+chat@example.co.uk")]
    [InlineData("write to j_9@[129.126.118.1].", "j_9@[129.126.118.1]", "j_9@[129.126.118.1]")]
    public void Email_addresses_are_found_and_lower_cased(string text, string span, string value)
    {
        var email = Single(text, EntityTypes.Email);
        Assert.Equal(span, email.Text);
        Assert.Equal(value, email.Value);
    }

    [Theory]
    [InlineData("a..b@outlook.com")]
    [InlineData("Bob@abc.c is invalid")]
    [InlineData("me@new_type.com")]
    public void Malformed_email_addresses_are_not_found(string text) =>
        Assert.DoesNotContain(EntityExtractor.Extract(text, NewYork), e => e.Type == EntityTypes.Email);

    [Theory]
    [InlineData("see https://example.com/a/b?x=1&y=2#top.", "https://example.com/a/b?x=1&y=2#top")]
    [InlineData("docs at www.caas.dev, thanks", "www.caas.dev")]
    [InlineData("short link bit.ly/3xYz", "bit.ly/3xYz")]
    [InlineData("(see http://localhost:8080/health)", "http://localhost:8080/health")]
    public void Urls_are_found_without_trailing_punctuation(string text, string span) =>
        Assert.Equal(span, Single(text, EntityTypes.Url).Text);

    [Theory]
    [InlineData("It costs $1,250.50 total", "$1,250.50", "USD 1250.5")]
    [InlineData("about 20 euros", "20 euros", "EUR 20")]
    [InlineData("price: EUR 125", "EUR 125", "EUR 125")]
    [InlineData("only 3 dollars 50 cents", "3 dollars 50 cents", "USD 3.5")]
    [InlineData("raised £ 50 million", "£ 50 million", "GBP 50000000")]
    [InlineData("five million yen", "five million yen", "JPY 5000000")]
    [InlineData("paid 100元", "100元", "CNY 100")]
    public void Money_has_amount_and_currency(string text, string span, string value)
    {
        var money = Single(text, EntityTypes.Money);
        Assert.Equal(span, money.Text);
        Assert.Equal(value, money.Value);
    }

    [Theory]
    [InlineData("we have 1,234 users", "1,234", "1234")]
    [InlineData("growth of -3.5% this year", "-3.5%", "-3.5%")]
    [InlineData("twenty five people came", "twenty five", "25")]
    public void Numbers_are_read_in_digits_and_words(string text, string span, string value)
    {
        var number = Single(text, EntityTypes.Number);
        Assert.Equal(span, number.Text);
        Assert.Equal(value, number.Value);
    }

    [Theory]
    [InlineData("see you tomorrow at 3pm", "tomorrow at 3pm", "2026-11-24T15:00:00+01:00")]
    [InlineData("let's meet next Friday", "next Friday", "2026-12-04")]
    [InlineData("ping me in 2 hours", "in 2 hours", "2026-11-23T12:30:00+01:00")]
    [InlineData("at 9:15 am I'm free", "at 9:15 am", "2026-11-24T09:15:00+01:00")]
    [InlineData("due on May 1st 2027", "May 1st 2027", "2027-05-01")]
    [InlineData("sent 3 days ago", "3 days ago", "2026-11-20T10:30:00+01:00")]
    public void Dates_and_times_resolve_against_message_time_in_the_user_zone(string text, string span, string value)
    {
        var when = Single(text, EntityTypes.DateTime, Berlin);
        Assert.Equal(span, when.Text);
        Assert.Equal(value, when.Value);
    }

    [Fact]
    public void The_same_words_resolve_differently_in_another_zone()
    {
        // 09:30 UTC is 04:30 in New York: "tomorrow" is still the 24th, at 15:00 Eastern.
        Assert.Equal("2026-11-24T15:00:00-05:00", Single("tomorrow at 3pm", EntityTypes.DateTime, NewYork).Value);
        var lateEvening = NewYork with { SentAt = new DateTimeOffset(2026, 11, 24, 3, 0, 0, TimeSpan.Zero) };
        Assert.Equal("2026-11-24T15:00:00-05:00", Single("tomorrow at 3pm", EntityTypes.DateTime, lateEvening).Value);
    }

    [Theory]
    [InlineData("I moved to 221B Baker Street last week", "221B Baker Street", "221B Baker Street")]
    [InlineData("ship to 1600 Pennsylvania Ave NW please", "1600 Pennsylvania Ave NW", "1600 Pennsylvania Avenue NW")]
    [InlineData("I'm in Apt 4B", "Apt 4B", "Apartment 4B")]
    [InlineData("office: Suite 300", "Suite 300", "Suite 300")]
    public void Address_fragments_are_found(string text, string span, string value)
    {
        var address = Single(text, EntityTypes.Address);
        Assert.Equal(span, address.Text);
        Assert.Equal(value, address.Value);
    }

    [Fact]
    public void Overlapping_candidates_keep_the_most_specific_entity()
    {
        var text = "mail bob@example.com or pay $20 at https://shop.example.com/p/5551234567";
        var found = EntityExtractor.Extract(text, NewYork);
        Assert.Equal([EntityTypes.Email, EntityTypes.Money, EntityTypes.Url], found.Select(e => e.Type));
        for (var i = 1; i < found.Count; i++) Assert.True(found[i - 1].End <= found[i].Start);
    }

    [Fact]
    public void Spans_are_utf16_offsets_after_emoji_and_non_latin_text()
    {
        var text = "😀👍🏽 电话 +86 189-1111-1111，邮箱 тест@пример.рф или ivan@example.ru 💸 €10";
        var found = EntityExtractor.Extract(text, NewYork);
        foreach (var e in found) Assert.Equal(e.Text, text[e.Start..e.End]);
        Assert.Contains(found, e => e.Type == EntityTypes.Phone && e.Value == "+8618911111111");
        Assert.Contains(found, e => e.Type == EntityTypes.Email && e.Text == "ivan@example.ru");
        Assert.Contains(found, e => e.Type == EntityTypes.Money && e.Value == "EUR 10");
    }

    [Fact]
    public void Empty_and_whitespace_messages_have_no_entities()
    {
        Assert.Empty(EntityExtractor.Extract("", NewYork));
        Assert.Empty(EntityExtractor.Extract(null, NewYork));
        Assert.Empty(EntityExtractor.Extract(" \n\t ", NewYork));
        Assert.Empty(EntityExtractor.Extract("🙂🙂🙂", NewYork));
    }

    [Fact]
    public void A_huge_message_is_scanned_up_to_the_limit_only()
    {
        // Speed is the bench's to measure, not a unit test's: here only that nothing past the limit is read.
        var chunk = "call +1 415 555 0132 or mail a@b.com about $5 tomorrow. ";
        var text = string.Concat(Enumerable.Repeat(chunk, 20_000)); // about 1.1 million characters
        var found = EntityExtractor.Extract(text, NewYork);
        Assert.NotEmpty(found);
        Assert.All(found, e => Assert.True(e.End <= EntityExtractor.MaxScannedChars));
    }

    [Fact]
    public void Money_filter_skips_only_texts_the_patterns_find_nothing_in()
    {
        // Every currency name, as written, in upper case, title case, before and after an amount, alone, in a sentence,
        // with the Kelvin sign for k (which the patterns' case folding takes for k and ordinal case does not), the long s
        // for s, and a no-break space for a space.
        static string Title(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];
        var texts = new List<string>();
        foreach (var name in MoneyRecognizer.CurrencyNames)
            foreach (var written in new[] { name, name.ToUpperInvariant(), Title(name), name.Replace('k', '\u212A'), name.Replace('s', '\u017F'), name.Replace(' ', '\u00A0') })
                texts.AddRange([$"{written}4.25", $"{written} 200", $"5 {written}", $"450,000 {written} and 50", $"the {written} fell",
                    $"it cost fifteen {written} and fifty cents", $"{written}"]);
        var withMoney = 0;
        foreach (var text in texts)
        {
            var expected = MoneyRecognizer.Scan(text).ToList();
            Assert.Equal(expected, MoneyRecognizer.Recognize(text).ToList());
            if (expected.Count > 0)
            {
                withMoney++;
                Assert.True(MoneyRecognizer.MayHoldMoney(text), text);
            }
        }
        // The filter is not vacuous: most of these hold money, and ordinary messages are skipped.
        Assert.True(withMoney > texts.Count / 2, $"{withMoney} of {texts.Count}");
        foreach (var plain in new[] { "benchmark message 12345", "what is my account balance", "call me at 3pm tomorrow", "" })
        {
            Assert.False(MoneyRecognizer.MayHoldMoney(plain), plain);
            Assert.Empty(MoneyRecognizer.Scan(plain));
        }
    }

    [Fact]
    public void Money_filter_agrees_with_the_patterns_on_the_currency_specs()
    {
        var cases = EntityCaseFile.Read(TestData.File("entities", "recognizers-CurrencyModel.json"));
        Assert.True(cases.Count > 15);
        foreach (var c in cases)
            Assert.Equal(MoneyRecognizer.Scan(c.Text).ToList(), MoneyRecognizer.Recognize(c.Text).ToList());
    }

    [Theory]
    [InlineData("recognizers-PhoneNumberModel.json", EntityTypes.Phone)]
    [InlineData("recognizers-EmailModel.json", EntityTypes.Email)]
    [InlineData("recognizers-URLModel.json", EntityTypes.Url)]
    [InlineData("recognizers-CurrencyModel.json", EntityTypes.Money)]
    public void Recognizers_specs_score_at_least_the_target_F1(string file, string type)
    {
        var cases = EntityCaseFile.Read(TestData.File("entities", file));
        Assert.True(cases.Count > 15);
        var report = EntityEvaluation.Run(cases, NewYork);
        Assert.True(report.PerType[type].F1 >= 0.95, $"{type} F1 {report.PerType[type].F1:0.000}");
    }

    [Fact]
    public void Spec_reader_skips_dotnet_unsupported_cases_and_makes_end_exclusive()
    {
        var dir = TestData.NewTempDirectory();
        var path = Path.Combine(dir, "spec.json");
        File.WriteAllText(path, """
            [ { "Input": "call 555-0100", "NotSupported": "dotnet, javascript", "Results": [] },
              { "Input": "Tel: 000 111 82-2100.", "Results": [ { "Text": "000 111 82-2100", "Start": 5, "End": 19, "TypeName": "phonenumber" } ] } ]
            """);
        var cases = EntityCaseFile.Read(path);
        var only = Assert.Single(cases);
        var expected = Assert.Single(only.Entities);
        Assert.Equal((EntityTypes.Phone, 5, 20), (expected.Type, expected.Start, expected.End));
    }
}

/// <summary>
/// The backstop against catastrophic backtracking is the patterns' match timeout (EntityPatterns, 30 s of wall time), so
/// these run alone: in parallel with the model-training tests of this assembly, a linear 20,000-character scan (about
/// a second here) was starved past 30 s on a loaded machine.
/// </summary>
[CollectionDefinition(nameof(PatternBacktrackingTests), DisableParallelization = true)]
public sealed class PatternBacktrackingCollection;

[Collection(nameof(PatternBacktrackingTests))]
public class PatternBacktrackingTests : IClassFixture<PatternBacktrackingTests.WarmPatterns>
{
    /// <summary>
    /// Runs every pattern once on a short text first: the generated matchers are large methods, and their first call
    /// (the JIT, inside the match, under the timeout's clock) took many seconds on a loaded machine. A warm-up that
    /// itself runs out of time is simply run again; the theory then times matching only.
    /// </summary>
    public sealed class WarmPatterns
    {
        public WarmPatterns()
        {
            const string sample = "call (1) 415 555 0132 or x@y.com, $1,000 one and a. next friday at 3pm http://a.b/c 1 Main St";
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    EntityExtractor.Extract(sample, EntityContext.Default);
                    return;
                }
                catch (System.Text.RegularExpressions.RegexMatchTimeoutException) when (attempt < 3)
                {
                }
            }
        }
    }

    [Theory]
    [InlineData("1 ")]
    [InlineData("one and ")]
    [InlineData("$1,")]
    [InlineData("a.")]
    [InlineData("(1) ")]
    [InlineData("next friday at ")]
    [InlineData("x@y.")]
    public void Repetitive_input_cannot_make_the_patterns_backtrack_for_long(string unit)
    {
        var text = string.Concat(Enumerable.Repeat(unit, EntityExtractor.MaxScannedChars / unit.Length));
        // No clock here: a pattern that backtracks for long throws RegexMatchTimeoutException (EntityPatterns).
        var found = EntityExtractor.Extract(text, new EntityContext(new DateTimeOffset(2026, 11, 23, 9, 30, 0, TimeSpan.Zero), "America/New_York", "US"));
        Assert.All(found, e => Assert.Equal(e.Text, text[e.Start..e.End]));
    }
}
