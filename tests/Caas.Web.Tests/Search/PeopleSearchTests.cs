using System.Text.Json;
using static Caas.Web.Tests.Search.SearchHttp;

namespace Caas.Web.Tests.Search;

public sealed class PostgresPeopleSearchTests(PostgresSearchNode node) : PeopleSearchTests(node), IClassFixture<PostgresSearchNode>;

public sealed class SqlitePeopleSearchTests(SqliteSearchNode node) : PeopleSearchTests(node), IClassFixture<SqliteSearchNode>;

/// <summary>People by display name (from profiles, projected from the user-session events) and by id, on both engines.</summary>
public abstract class PeopleSearchTests(SearchNodeFixture node)
{
    private static List<string> UserIds(JsonElement body) => body.Items().Select(i => i.Str("user_id")).ToList();

    [Fact]
    public async Task People_are_found_by_display_name_prefix_substring_and_typo_within_their_tenant()
    {
        using var alice = node.Client("p-names", "alice");
        using var member = node.Client("p-names", "u-7731");
        using var stranger = node.Client("p-other", "u-9001");
        await alice.CreateGroupAsync("u-7731");
        Assert.Equal(200, (await member.ApiPut("/v1/users/me", new { display_name = "Bartholomew Quigley" })).Status);
        // the same name in another tenant is never found
        Assert.Equal(200, (await stranger.ApiPut("/v1/users/me", new { display_name = "Bartholomew Quigley" })).Status);

        var found = await alice.SearchUntilAsync("/v1/search/users?q=quig", b => UserIds(b).Contains("u-7731"));
        var hit = Assert.Single(found.Items());
        Assert.Equal("u-7731", hit.Str("user_id"));
        Assert.Equal("Bartholomew Quigley", hit.Str("display_name"));
        var h = hit.GetProperty("highlights")[0];
        Assert.Equal("display_name", h.Str("field"));
        Assert.Equal("Quig", h.Str("fragment")[h.GetProperty("ranges")[0][0].GetInt32()..h.GetProperty("ranges")[0][1].GetInt32()]);

        Assert.Equal(["u-7731"], UserIds((await alice.ApiGet("/v1/search/users?q=barth")).Body));   // prefix
        Assert.Equal(["u-7731"], UserIds((await alice.ApiGet("/v1/search/users?q=bartolomew")).Body)); // typo
        Assert.Equal(["u-7731"], UserIds((await alice.ApiGet("/v1/search/users?q=quiglee")).Body));    // typo
        Assert.Equal(["u-7731"], UserIds((await alice.ApiGet("/v1/search/users?q=u-77")).Body));       // id still
        Assert.Empty((await alice.ApiGet("/v1/search/users?q=u-9001")).Body.Items());

        var all = (await alice.ApiGet("/v1/search?q=quigley")).Body;
        Assert.Equal(["u-7731"], UserIds(all.GetProperty("users")));
        var suggestions = (await alice.ApiGet("/v1/search/suggestions?q=quig")).Body.Items();
        Assert.Contains(suggestions, s => s.Str("kind") == "user" && s.Str("value") == "Bartholomew Quigley" && s.Str("id") == "u-7731");

        // a rename replaces the indexed name
        Assert.Equal(200, (await member.ApiPut("/v1/users/me", new { display_name = "Octavia Ramsbottom" })).Status);
        await alice.SearchUntilAsync("/v1/search/users?q=ramsbot", b => UserIds(b).Contains("u-7731"));
        Assert.Empty((await alice.ApiGet("/v1/search/users?q=quigley")).Body.Items());
    }

    [Fact]
    public async Task A_member_without_a_profile_is_found_by_id_until_their_last_membership_ends()
    {
        using var alice = node.Client("p-people", "alice");
        using var member = node.Client("p-people", "u-5151");
        var first = await alice.CreateGroupAsync("u-5151");
        var second = await alice.CreateGroupAsync("u-5151");
        await alice.SearchUntilAsync("/v1/search/users?q=u-515", b => UserIds(b).Contains("u-5151"));
        await member.SearchUntilAsync("/v1/search/conversations?q=g", b => b.Items().Count == 2);
        Assert.Equal(["u-5151"], UserIds((await alice.ApiGet("/v1/search/users?q=u-5152")).Body)); // typo of the id

        // one membership left: still a person of the tenant
        Assert.Equal(204, (await alice.ApiDelete($"/v1/conversations/{first}/members/u-5151")).Status);
        // the read model has applied the removal once the member's own conversation search (read-model memberships) drops it
        await member.SearchUntilAsync("/v1/search/conversations?q=g", b => b.Items().Count == 1);
        Assert.Equal(second, Assert.Single((await member.ApiGet("/v1/search/conversations?q=g")).Body.Items()).Str("conversation_id"));
        Assert.Equal(["u-5151"], UserIds((await alice.ApiGet("/v1/search/users?q=u-515")).Body));

        // the last one gone: nobody to find (no profile either)
        Assert.Equal(204, (await alice.ApiDelete($"/v1/conversations/{second}/members/u-5151")).Status);
        await alice.SearchUntilAsync("/v1/search/users?q=u-515", b => !UserIds(b).Contains("u-5151"));
        Assert.Empty((await alice.ApiGet("/v1/search/users?q=u-5151")).Body.Items());
    }

    [Fact]
    public async Task A_person_with_a_profile_and_no_conversation_is_found_and_erasure_removes_the_name()
    {
        using var admin = node.Client("p-erase", "root", "admin");
        using var alice = node.Client("p-erase", "alice");
        using var loner = node.Client("p-erase", "loner");
        Assert.Equal(200, (await loner.ApiPut("/v1/users/me", new { display_name = "Zebulon Hartmann" })).Status);
        await alice.SearchUntilAsync("/v1/search/users?q=zebul", b => UserIds(b).Contains("loner"));

        var (status, report) = await admin.ApiDelete("/v1/admin/users/loner");
        Assert.Equal(200, status);
        Assert.True(report.GetProperty("search_entries_erased").GetInt64() >= 1, report.ToString());
        Assert.Empty((await alice.ApiGet("/v1/search/users?q=zebulon")).Body.Items());
        Assert.Empty((await alice.ApiGet("/v1/search/users?q=hartman")).Body.Items());
    }

    [Fact]
    public async Task Reindex_rebuilds_the_display_names_from_the_journal_and_the_live_projection_goes_on()
    {
        using var admin = node.Client("p-reindex", "root", "admin");
        using var alice = node.Client("p-reindex", "alice");
        using var carol = node.Client("p-reindex", "carol");
        using var dave = node.Client("p-reindex", "dave");
        Assert.Equal(200, (await carol.ApiPut("/v1/users/me", new { display_name = "Philippa Wraxall" })).Status);
        Assert.Equal(200, (await dave.ApiPut("/v1/users/me", new { display_name = "Temporary Name" })).Status);
        Assert.Equal(200, (await dave.ApiPut("/v1/users/me", new { display_name = "Ignatius Fairweather" })).Status);
        await alice.SearchUntilAsync("/v1/search/users?q=fairweather", b => UserIds(b).Contains("dave"));
        await alice.SearchUntilAsync("/v1/search/users?q=wraxall", b => UserIds(b).Contains("carol"));

        // The table loses the tenant's rows (a restore gone wrong, a hand-run DELETE): the people search finds nobody.
        var store = (Caas.Streams.ReadModel.ReadModelStore)node.Services.GetService(typeof(Caas.Streams.ReadModel.ReadModelStore))!;
        await using (var c = await store.OpenAsync())
        await using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "DELETE FROM search_profiles WHERE tenant_id = 'p-reindex'";
            Assert.Equal(2, await cmd.ExecuteNonQueryAsync());
        }
        Assert.Empty((await alice.ApiGet("/v1/search/users?q=wraxall")).Body.Items());

        var (status, started) = await admin.ApiPost("/v1/admin/search/reindex", null);
        Assert.Equal(202, status);
        var before = started.GetProperty("status").GetProperty("profiles");
        Assert.Equal(JsonValueKind.Object, before.ValueKind);
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        JsonElement profiles;
        do
        {
            await Task.Delay(100);
            profiles = (await admin.ApiGet("/v1/admin/search/reindex")).Body.GetProperty("profiles");
        }
        while (!(profiles.Str("state") == "idle" && profiles.GetProperty("rebuilds").GetInt32() > before.GetProperty("rebuilds").GetInt32())
               && DateTime.UtcNow < until);
        Assert.Equal("idle", profiles.Str("state"));

        // Rebuilt from the events: the latest name of each, not the replaced one.
        Assert.Equal(["carol"], UserIds((await alice.ApiGet("/v1/search/users?q=wraxall")).Body));
        Assert.Equal(["dave"], UserIds((await alice.ApiGet("/v1/search/users?q=fairweather")).Body));
        Assert.Empty((await alice.ApiGet("/v1/search/users?q=temporary")).Body.Items());
        // The live projection resumed after the swap.
        Assert.Equal(200, (await carol.ApiPut("/v1/users/me", new { display_name = "Philippa Quenby" })).Status);
        await alice.SearchUntilAsync("/v1/search/users?q=quenby", b => UserIds(b).Contains("carol"));
        Assert.Empty((await alice.ApiGet("/v1/search/users?q=wraxall")).Body.Items());
    }

    [Fact]
    public async Task Bad_people_queries_are_a_400_or_an_empty_200()
    {
        using var alice = node.Client("p-bad", "alice");
        using var bob = node.Client("p-bad", "bob");
        Assert.Equal(200, (await bob.ApiPut("/v1/users/me", new { display_name = "Bob Builder" })).Status);
        await alice.SearchUntilAsync("/v1/search/users?q=builder", b => UserIds(b).Contains("bob"));

        Assert.Equal(400, (await alice.ApiGet("/v1/search/users?q=")).Status);
        Assert.Equal(400, (await alice.ApiGet("/v1/search/users?q=" + new string('b', 2000))).Status);
        // LIKE and FTS operators are text: they match nothing rather than everything
        foreach (var q in new[] { "%", "_", "'; DROP TABLE search_profiles; --", "NEAR(", "*", "\"" })
        {
            var (status, body) = await alice.ApiGet("/v1/search/users?q=" + Q(q));
            Assert.Equal(200, status);
            Assert.Empty(body.Items());
        }
        Assert.Equal(["bob"], UserIds((await alice.ApiGet("/v1/search/users?q=builder")).Body));
    }
}
