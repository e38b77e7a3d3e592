using Caas.Streams.Search;

namespace Caas.Streams.Tests.Search;

/// <summary>The search box's parser: lenient, and whatever is typed reaches an engine as letters and digits only.</summary>
public sealed class SearchQueryTests
{
    private static string[][] Groups(SearchQuery q) => q.Groups.Select(g => g.Select(a => a.Text).ToArray()).ToArray();

    private static void Same(string[][] expected, SearchQuery q) => Assert.Equal(expected, Groups(q));

    [Fact]
    public void Words_phrases_exclusions_and_or()
    {
        var q = SearchQuery.Parse("Budget \"quarterly review\" -draft pear OR apple");
        Same([["budget"], ["quarterly review"], ["pear", "apple"]], q);
        Assert.Equal(["draft"], q.Excluded.Select(a => a.Text));
        Assert.False(q.OnlyStopWords);
    }

    [Fact]
    public void Filters_are_taken_out_of_the_text()
    {
        var q = SearchQuery.Parse("report from:bob in:c_1 after:2024-01-31 before:2024-02-02");
        Same([["report"]], q);
        Assert.Equal("bob", q.From);
        Assert.Equal("c_1", q.In);
        Assert.Equal(new DateTimeOffset(2024, 1, 31, 0, 0, 0, TimeSpan.Zero), q.After);
        Assert.Equal(new DateTimeOffset(2024, 2, 2, 0, 0, 0, TimeSpan.Zero), q.Before);
    }

    [Fact]
    public void A_malformed_filter_is_read_as_words()
    {
        var q = SearchQuery.Parse("before:yesterday after:2024-13-45 from: in:");
        Assert.Null(q.Before);
        Assert.Null(q.After);
        Assert.Null(q.From);
        Same([["before yesterday"], ["after 2024 13 45"]], q);
    }

    [Fact]
    public void An_unbalanced_quote_is_closed_at_the_end()
    {
        var q = SearchQuery.Parse("window \"near the door");
        Same([["window"], ["near the door"]], q);
        Assert.Empty(Groups(SearchQuery.Parse("\"")));
        Assert.Empty(Groups(SearchQuery.Parse("\"\"\"")));
    }

    [Fact]
    public void Only_stop_words_means_nothing_to_search_for()
    {
        var q = SearchQuery.Parse("the of AND \"to be\"");
        Assert.False(q.HasTerms);
        Assert.True(q.OnlyStopWords);
    }

    [Theory]
    [InlineData("'; DROP TABLE x; --", new[] { "drop", "table", "x" })]
    [InlineData("NEAR(a b, 2)", new[] { "near a", "b", "2" })]
    [InlineData("*", new string[0])]
    [InlineData("window* ^x col:y", new[] { "window", "x", "col y" })]
    [InlineData("a & b | !c", new[] { "b", "c" })]
    [InlineData("\u0001x\u0002", new[] { "x" })]
    public void Operators_typed_as_text_become_words(string text, string[] atoms)
    {
        var q = SearchQuery.Parse(text);
        var all = q.Groups.SelectMany(g => g).Concat(q.Excluded).Select(a => a.Text).ToList();
        Assert.Equal(atoms, all);
        Assert.All(all, a => Assert.True(a.All(c => char.IsLetterOrDigit(c) || c == ' '), a));
    }

    [Fact]
    public void Or_at_the_edges_is_ignored()
    {
        Same([["x"]], SearchQuery.Parse("OR x OR"));
        Same([["x", "y"]], SearchQuery.Parse("x OR OR y"));
    }

    [Fact]
    public void Cjk_runs_become_bigrams()
    {
        Assert.Equal("東京 京タ タワ ワー", Cjk.Grams("東京タワー"));
        Assert.Equal("東京 서울", Cjk.Grams("東京 and ok? 서울"));
        Assert.Equal("", Cjk.Grams("plain latin"));
        Assert.Equal("京", Cjk.Grams("京"));
        var q = SearchQuery.Parse("東京タワー report");
        Assert.True(q.Groups[0][0].IsCjk);
        Assert.False(q.Groups[1][0].IsCjk);
    }

    [Fact]
    public void Highlights_become_ranges_in_utf16_offsets()
    {
        var h = Highlights.FromMarked("text", "🎉 \u0001budget\u0002 and \u0001plan\u0002");
        Assert.Equal("🎉 budget and plan", h.Fragment);
        Assert.Equal(new[] { new[] { 3, 9 }, new[] { 14, 18 } }, h.Ranges);
        Assert.Equal("budget", h.Fragment[3..9]);
        Assert.Equal("ab", Highlights.Clean("a\u0001b\u0002"));
    }
}
