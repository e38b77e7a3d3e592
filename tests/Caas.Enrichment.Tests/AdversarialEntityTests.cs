using Caas.Enrichment.Entities;
using Xunit;

namespace Caas.Enrichment.Tests;

/// <summary>
/// Text built to make backtracking patterns blow up: long whitespace runs after a date (the old date pattern's
/// <c>\s*,?\s*</c> was quadratic in them), repeated digits, separators and number words. Every pattern runs under
/// <see cref="EntityPatterns.Timeout"/>, so a pattern that is not linear throws
/// <see cref="System.Text.RegularExpressions.RegexMatchTimeoutException"/> here; the assertions are on the results.
/// </summary>
public class AdversarialEntityTests
{
    private static readonly EntityContext NewYork = new(new DateTimeOffset(2026, 11, 23, 9, 30, 0, TimeSpan.Zero), "America/New_York", "US");
    private const int Run = EntityExtractor.MaxScannedChars - 100;

    private static string Repeat(string s, int times) => string.Concat(Enumerable.Repeat(s, times));

    private static Entity OnlyDate(string text)
    {
        var found = EntityExtractor.Extract(text, NewYork);
        return Assert.Single(found, e => e.Type == EntityTypes.DateTime);
    }

    [Theory]
    [InlineData(" ")]
    [InlineData("\t")]
    [InlineData("\n")]
    [InlineData(" \t\r\n")]
    public void A_whitespace_run_after_a_date_leaves_the_date_as_it_reads_without_it(string whitespace)
    {
        var expected = OnlyDate("see you today x");
        var run = Repeat(whitespace, Run / whitespace.Length);
        var date = OnlyDate("see you today" + run + "x");
        Assert.Equal("today", date.Text);
        Assert.Equal(expected.Value, date.Value);
        Assert.Equal(expected.Start, date.Start);
    }

    [Fact]
    public void A_weekday_followed_by_a_run_of_tabs_and_a_comma_is_still_one_weekday()
    {
        var expected = OnlyDate("monday, x");
        var date = OnlyDate("monday" + new string('\t', Run / 2) + "," + new string(' ', Run / 2) + "x");
        Assert.Equal("monday", date.Text);
        Assert.Equal(expected.Value, date.Value);
    }

    [Fact]
    public void A_date_a_whitespace_run_and_a_time_still_resolve_to_that_date_and_time()
    {
        var expected = OnlyDate("tomorrow at 5pm");
        var date = OnlyDate("tomorrow" + new string(' ', Run) + "at 5pm");
        Assert.Equal(expected.Value, date.Value);
    }

    [Fact]
    public void Many_dates_each_followed_by_a_whitespace_run_are_each_found()
    {
        var block = "tomorrow" + new string(' ', 2_000) + ",";
        var found = EntityExtractor.Extract(Repeat(block, 9), NewYork);
        var dates = found.Where(e => e.Type == EntityTypes.DateTime).ToList();
        Assert.Equal(9, dates.Count);
        Assert.All(dates, d => Assert.Equal(OnlyDate("tomorrow").Value, d.Value));
    }

    [Fact]
    public void A_run_of_single_digits_is_a_run_of_numbers()
    {
        var found = EntityExtractor.Extract(Repeat("7 ", Run / 2), NewYork, new HashSet<string> { EntityTypes.Number });
        Assert.Equal(Run / 2, found.Count);
        Assert.All(found, e => Assert.Equal("7", e.Value));
    }

    [Theory]
    [InlineData("1")]
    [InlineData("1,")]
    [InlineData("1.")]
    [InlineData("1-")]
    [InlineData("1/")]
    [InlineData("(1")]
    [InlineData("1 dollars ")]
    [InlineData("one ")]
    [InlineData("one-")]
    [InlineData("a.")]
    [InlineData("a@")]
    [InlineData("1 Aa ")]
    [InlineData("#1 ")]
    [InlineData("5 pm ")]
    [InlineData("next ")]
    [InlineData("7922816251426433759354395033 million dollars ")]
    [InlineData("$7922816251426433759354395033 billion ")]
    public void Repeated_fragments_are_recognised_without_running_over_the_timeout(string fragment)
    {
        var text = Repeat(fragment, Run / fragment.Length);
        var found = EntityExtractor.Extract(text, NewYork);
        // whatever is found is a real span of the text, in order, without overlaps
        for (var i = 0; i < found.Count; i++)
        {
            Assert.Equal(found[i].Text, text[found[i].Start..found[i].End]);
            if (i > 0) Assert.True(found[i - 1].End <= found[i].Start);
        }
    }

    [Fact]
    public void A_cancelled_extraction_stops_between_recognisers()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => EntityExtractor.Extract("call 415 555 0132 tomorrow", NewYork, null, cancelled.Token));
    }
}
