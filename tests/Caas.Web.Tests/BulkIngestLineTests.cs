namespace Caas.Web.Tests;

public sealed class BulkIngestLineTests(NodeFixture node) : IClassFixture<NodeFixture>
{
    private static string Line(string conversation, string id, string text, int padding = 0) =>
        System.Text.Json.JsonSerializer.Serialize(new
        {
            conversation_id = conversation, sender_id = "alice", message_id = id,
            content = new { type = "text", text }, padding = new string('p', padding),
        });

    private static async Task<List<System.Text.Json.JsonElement>> PostAsync(HttpClient client, string body)
    {
        using var response = await client.PostAsync("/v1/ingest", new StringContent(body, System.Text.Encoding.UTF8, "application/x-ndjson"));
        Assert.Equal(200, (int)response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.Clone()).ToList();
    }

    [Fact]
    public async Task A_line_over_64_KiB_is_rejected_alone_and_the_other_lines_go_on_in_order()
    {
        using var alice = node.Client("t-ndjson", "alice");
        var id = await alice.CreateGroupAsync();
        using var loader = node.Client("t-ndjson", "loader", "ingest");
        var body = string.Join("\n",
            Line(id, "nd-1", "first"),
            Line(id, "nd-2", "padded past the line limit", padding: 65 * 1024),
            Line(id, "nd-3", "third\r"),
            Line(id, "nd-4", "just under the limit", padding: 60 * 1024),
            "",
            Line(id, "nd-5", "last, over the limit and without a newline", padding: 200 * 1024));

        var answers = await PostAsync(loader, body);
        Assert.Equal([1, 2, 3, 4, 5], answers.Select(a => a.GetProperty("line").GetInt32()));
        Assert.Equal(["persisted", "rejected", "persisted", "persisted", "rejected"], answers.Select(a => a.Str("status")));
        Assert.Equal("payload_too_large", answers[1].Code());
        Assert.Equal("payload_too_large", answers[4].Code());
        Assert.Equal([1L, 2L, 3L], answers.Where(a => a.Str("status") == "persisted").Select(a => a.GetProperty("seq").GetInt64()));

        var history = (await alice.ApiGet($"/v1/messages/conversations/{id}")).Body.GetProperty("items");
        Assert.Equal(["nd-1", "nd-3", "nd-4"], history.EnumerateArray().Select(m => m.Str("message_id")).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Many_long_lines_are_each_answered_without_the_body_being_held()
    {
        using var alice = node.Client("t-ndjson-2", "alice");
        var id = await alice.CreateGroupAsync();
        using var loader = node.Client("t-ndjson-2", "loader", "ingest");
        // 8 MiB of over-long lines between two good ones
        var longLine = Line(id, "x", "x", padding: 1 << 20);
        var body = Line(id, "nd-a", "a") + "\n" + string.Concat(Enumerable.Repeat(longLine + "\n", 8)) + Line(id, "nd-b", "b") + "\n";
        var answers = await PostAsync(loader, body);
        Assert.Equal(10, answers.Count);
        Assert.Equal("persisted", answers[0].Str("status"));
        Assert.All(answers.Skip(1).Take(8), a => Assert.Equal("payload_too_large", a.Code()));
        Assert.Equal("persisted", answers[9].Str("status"));
    }
}
