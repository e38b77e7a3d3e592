using System.Text.Json;
using static Caas.Web.Tests.Search.SearchHttp;

namespace Caas.Web.Tests.Search;

public sealed class PostgresTermSuggestionTests(PostgresSearchNode node) : TermSuggestionTests(node), IClassFixture<PostgresSearchNode>;

public sealed class SqliteTermSuggestionTests(SqliteSearchNode node) : TermSuggestionTests(node), IClassFixture<SqliteSearchNode>;

/// <summary>Term completions come from message text in the caller's own conversations only, on both engines.</summary>
public abstract class TermSuggestionTests(SearchNodeFixture node)
{
    private static List<string> Terms(JsonElement body) => body.Items().Where(i => i.Str("kind") == "term").Select(i => i.Str("value")).ToList();

    [Fact]
    public async Task Terms_are_completed_from_the_callers_conversations_only_most_frequent_first()
    {
        using var alice = node.Client("t-terms", "alice");
        using var carol = node.Client("t-terms", "carol");
        var room = await alice.CreateGroupAsync("bob");
        var secret = await carol.CreateGroupAsync("dave");
        await alice.PostMessageAsync(room, "the Xylophone concert", "tt-1");
        await alice.PostMessageAsync(room, "xylophone repair tomorrow", "tt-2");
        await alice.PostMessageAsync(room, "so many xylophones", "tt-3");
        await carol.PostMessageAsync(secret, "the xylograph is secret", "tt-4");
        await alice.SearchUntilAsync("/v1/search/messages?q=xylophones", b => b.Ids().Contains("tt-3"));
        await carol.SearchUntilAsync("/v1/search/messages?q=xylograph", b => b.Ids().Contains("tt-4"));

        var mine = await alice.SearchUntilAsync("/v1/search/suggestions?q=" + Q("when is the xylo"), b => Terms(b).Count >= 2);
        Assert.Equal(["xylophone", "xylophones"], Terms(mine));
        var theirs = (await carol.ApiGet("/v1/search/suggestions?q=xylo")).Body;
        Assert.Equal(["xylograph"], Terms(theirs));
    }

    [Fact]
    public async Task Operators_and_short_prefixes_suggest_no_terms_and_never_fail()
    {
        using var alice = node.Client("t-bad", "alice");
        var room = await alice.CreateGroupAsync("bob");
        await alice.PostMessageAsync(room, "zanzibar zanzibar", "tb-1");
        await alice.SearchUntilAsync("/v1/search/messages?q=zanzibar", b => b.Ids().Contains("tb-1"));
        await alice.SearchUntilAsync("/v1/search/suggestions?q=zanz", b => Terms(b).Contains("zanzibar"));

        Assert.Equal(400, (await alice.ApiGet("/v1/search/suggestions?q=")).Status);
        Assert.Equal(400, (await alice.ApiGet("/v1/search/suggestions?q=" + new string('z', 2000))).Status);
        foreach (var q in new[] { "z", "zanz*", "NEAR(", "'; DROP", "zan:*", "zan&", "\"zan", "(" })
        {
            var (status, body) = await alice.ApiGet("/v1/search/suggestions?q=" + Q(q));
            Assert.True(status == 200, $"{q}: {status} {body}");
            Assert.DoesNotContain("zanzibar", Terms(body).Where(_ => q is not "\"zan"));
        }
        Assert.Equal(["zanzibar"], Terms((await alice.ApiGet("/v1/search/suggestions?q=" + Q("\"zan"))).Body));
    }
}
