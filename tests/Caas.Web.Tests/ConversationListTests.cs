using System.Text.Json;

namespace Caas.Web.Tests;

public sealed class ConversationListTests(NodeFixture node) : IClassFixture<NodeFixture>
{
    /// <summary>Reads the list until it shows what is expected (the read model trails writes), with a generous bound.</summary>
    private static async Task<List<JsonElement>> ListUntilAsync(HttpClient client, Func<List<JsonElement>, bool> done, string query = "")
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var items = (await client.ApiGet("/v1/conversations" + query)).Body.GetProperty("items").EnumerateArray().Select(i => i.Clone()).ToList();
            if (done(items) || DateTime.UtcNow > until) return items;
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task The_list_is_sorted_by_last_activity_with_a_preview_and_unread_counts()
    {
        using var alice = node.Client("t-list", "alice");
        using var bob = node.Client("t-list", "bob");
        var first = await alice.CreateGroupAsync("bob");
        var second = await alice.CreateGroupAsync("bob");
        var third = await alice.CreateGroupAsync("bob");

        await bob.PostMessageAsync(first, "one from bob", "l-1");
        await alice.PostMessageAsync(first, "alice answers", "l-2");
        await bob.PostMessageAsync(first, "bob again", "l-3");
        await bob.PostMessageAsync(first, "regrettable", "l-4");
        Assert.Equal(200, (await bob.ApiDelete("/v1/messages/l-4")).Status);

        var items = await ListUntilAsync(alice, l => l.Count == 3 && l[0].Str("id") == first
                                                     && l[0].GetProperty("last_message").GetProperty("deleted").GetBoolean());
        // the newest activity first: the conversation with messages, then the others newest-created first
        Assert.Equal([first, third, second], items.Select(i => i.Str("id")));
        var top = items[0];
        var last = top.GetProperty("last_message");
        Assert.Equal("l-4", last.Str("message_id"));
        Assert.Equal(JsonValueKind.Null, last.GetProperty("content").ValueKind); // a tombstone
        Assert.Equal(last.Str("created_at"), top.Str("last_message_at"));
        // alice has read nothing: bob's live messages count, not her own, not the tombstone
        Assert.Equal(2, top.GetProperty("unread_count").GetInt64());
        Assert.Equal(JsonValueKind.Null, items[1].GetProperty("last_message").ValueKind);
        Assert.Equal(JsonValueKind.Null, items[1].GetProperty("last_message_at").ValueKind);
        Assert.Equal(0, items[1].GetProperty("unread_count").GetInt64());

        Assert.Equal(200, (await alice.ApiPut($"/v1/conversations/{first}/read", new { seq = 3 })).Status);
        Assert.Equal(0, (await alice.ApiGet("/v1/conversations")).Body.GetProperty("items")[0].GetProperty("unread_count").GetInt64());
        Assert.Equal(1, (await bob.ApiGet("/v1/conversations")).Body.GetProperty("items")[0].GetProperty("unread_count").GetInt64());

        // a message in the oldest conversation moves it to the top
        await bob.PostMessageAsync(second, "wake up", "l-5");
        items = await ListUntilAsync(alice, l => l.Count == 3 && l[0].Str("id") == second);
        Assert.Equal([second, first, third], items.Select(i => i.Str("id")));
        Assert.Equal("wake up", items[0].GetProperty("last_message").GetProperty("content").Str("text"));

        // pages of one follow the same order through the cursor
        var paged = new List<string>();
        string? cursor = null;
        do
        {
            var (status, page) = await alice.ApiGet("/v1/conversations?limit=1" + (cursor is null ? "" : "&cursor=" + cursor));
            Assert.Equal(200, status);
            paged.AddRange(page.GetProperty("items").EnumerateArray().Select(i => i.Str("id")));
            cursor = page.GetProperty("next_cursor").GetString();
        }
        while (cursor is not null && paged.Count < 10);
        Assert.Equal([second, first, third], paged);
        Assert.Equal(400, (await alice.ApiGet("/v1/conversations?cursor=bm90LWEtY3Vyc29y")).Status);
    }
}
