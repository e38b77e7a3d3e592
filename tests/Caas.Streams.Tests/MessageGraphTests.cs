using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Streams.Pipeline;

namespace Caas.Streams.Tests;

public sealed class MessageGraphTests
{
    private static async Task<string> CreateGroupAsync(HttpClient client, params string[] members)
    {
        var response = await Caas.Tests.Shared.Retrying.PostAsJsonAsync(client, "/v1/conversations", new { type = "group", members });
        Assert.Equal(201, (int)response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
    }

    [Fact]
    public async Task A_hanging_or_throwing_enricher_never_holds_messages_back_and_marks_them_degraded()
    {
        var throwing = new ThrowingEnricher();
        var hanging = new HangingEnricher();
        // A budget the fast enrichers meet even on a loaded machine; the hanging one never returns within the test.
        await using var node = await PipelineNode.StartAsync("caas.pipeline.enrich-budget = 1s\ncaas.pipeline.breaker-max-failures = 3\ncaas.pipeline.breaker-reset = 10m",
            new WordCountEnricher(), hanging, throwing);
        using var alice = node.Client("t-enrich", "alice");
        var id = await CreateGroupAsync(alice);

        var outcomes = new List<IngestOutcome>();
        for (var i = 0; i < 10; i++)
            outcomes.Add(await node.Ingest.SubmitAsync(new IngestMessage("t-enrich", id, "alice", $"e{i}", new MessageContent("text", "three little words"), IngestSource.Rest)));

        Assert.All(outcomes, o => Assert.IsType<Persisted>(o));
        // all ten were stored while the hanging enricher had not returned once: the stage stopped waiting on its own
        Assert.Equal(0, Volatile.Read(ref hanging.Returned));
        // the throwing enricher's breaker opened after three failures: later messages skip it without calling it
        Assert.Equal(3, throwing.Calls);

        var page = JsonDocument.Parse(await alice.GetStringAsync($"/v1/messages/conversations/{id}?limit=1")).RootElement;
        var enrichment = page.GetProperty("items")[0].GetProperty("enrichment");
        Assert.Equal(new[] { "hangs", "throws" }, enrichment.GetProperty("degraded").EnumerateArray().Select(e => e.GetString()).Order());
        var results = enrichment.GetProperty("results").EnumerateArray().ToList();
        // the node's own enrichers ran too (intent answers "not applicable" here: no tenant or shipped model)
        Assert.Equal(new[] { "entities", "intent", "sentiment", "word-count" }, results.Select(r => r.GetProperty("name").GetString()).Order());
        var wordCount = results.Single(r => r.GetProperty("name").GetString() == "word-count");
        Assert.Equal(3, wordCount.GetProperty("data").GetProperty("words").GetInt32());
        hanging.Release();
    }

    private static async Task<JsonElement> LatestEnrichmentAsync(HttpClient client, string conversation) =>
        JsonDocument.Parse(await client.GetStringAsync($"/v1/messages/conversations/{conversation}?limit=1")).RootElement
            .GetProperty("items")[0].GetProperty("enrichment");

    [Fact]
    public async Task Messages_cut_at_their_budget_by_a_stall_do_not_switch_the_enricher_off()
    {
        // Five messages at once find the enricher stalled; each stops waiting at its budget (the enricher stops too, as
        // asked). Counted as failures, five in a row would open its breaker (three allowed) for ten minutes. The
        // breaker's own timeout is far past the budget, so its verdict on a run cut at 1 s cannot race it.
        var stalling = new StallingEnricher(stalls: 5);
        await using var node = await PipelineNode.StartAsync(
            "caas.pipeline.enrich-budget = 1s\ncaas.pipeline.breaker-call-timeout = 30s\ncaas.pipeline.breaker-max-failures = 3\n" +
            "caas.pipeline.breaker-reset = 10m", stalling);
        using var alice = node.Client("t-stall", "alice");
        var id = await CreateGroupAsync(alice);

        var stalled = await Task.WhenAll(Enumerable.Range(0, 5).Select(i =>
            node.Ingest.SubmitAsync(new IngestMessage("t-stall", id, "alice", $"s{i}", new MessageContent("text", "hello"), IngestSource.Rest))));
        Assert.All(stalled, o => Assert.IsType<Persisted>(o));
        Assert.Contains("stalls", (await LatestEnrichmentAsync(alice, id)).GetProperty("degraded").EnumerateArray().Select(e => e.GetString()));

        Assert.IsType<Persisted>(await node.Ingest.SubmitAsync(new IngestMessage("t-stall", id, "alice", "after", new MessageContent("text", "hello"),
            IngestSource.Rest)));
        var after = await LatestEnrichmentAsync(alice, id);
        Assert.Equal(6, stalling.Calls);
        Assert.DoesNotContain("stalls", after.GetProperty("degraded").EnumerateArray().Select(e => e.GetString()));
        Assert.True(after.GetProperty("results").EnumerateArray().Single(r => r.GetProperty("name").GetString() == "stalls")
            .GetProperty("data").GetProperty("ok").GetBoolean());
    }

    [Fact]
    public async Task An_enricher_that_ignores_its_budget_and_hangs_still_opens_its_breaker()
    {
        // Messages stop waiting at 200 ms; the breaker counts a call still running after 1 s as failed.
        var hanging = new HangingEnricher();
        await using var node = await PipelineNode.StartAsync(
            "caas.pipeline.enrich-budget = 200ms\ncaas.pipeline.breaker-call-timeout = 1s\ncaas.pipeline.breaker-max-failures = 3\ncaas.pipeline.breaker-reset = 10m",
            hanging);
        using var alice = node.Client("t-hang", "alice");
        var id = await CreateGroupAsync(alice);

        // Message after message until one is stored without calling it (its breaker open): three hung calls are enough.
        var skipped = false;
        for (var i = 0; i < 60 && !skipped; i++)
        {
            var before = Volatile.Read(ref hanging.Calls);
            Assert.IsType<Persisted>(await node.Ingest.SubmitAsync(new IngestMessage("t-hang", id, "alice", $"h{i}", new MessageContent("text", "hello"),
                IngestSource.Rest)));
            skipped = Volatile.Read(ref hanging.Calls) == before;
        }
        Assert.True(skipped, $"the hanging enricher was still called after {hanging.Calls} calls");
        Assert.Contains("hangs", (await LatestEnrichmentAsync(alice, id)).GetProperty("degraded").EnumerateArray().Select(e => e.GetString()));
        hanging.Release();
    }

    [Fact]
    public async Task Each_conversation_is_fifo_and_gap_free_while_many_run_at_once()
    {
        await using var node = await PipelineNode.StartAsync();
        using var alice = node.Client("t-fifo", "alice");
        var ids = new List<string>();
        for (var c = 0; c < 20; c++) ids.Add(await CreateGroupAsync(alice));

        // Offer 2,000 messages without waiting: arrival order is offer order.
        var submissions = new List<(string Conversation, int N, Task<IngestOutcome> Outcome)>();
        for (var n = 0; n < 2000; n++)
        {
            var conversation = ids[n % ids.Count];
            submissions.Add((conversation, n, node.Ingest.SubmitAsync(new IngestMessage("t-fifo", conversation, "alice", $"f{n}",
                new MessageContent("text", $"n={n}"), IngestSource.Bulk))));
        }
        await Task.WhenAll(submissions.Select(s => s.Outcome));

        foreach (var group in submissions.GroupBy(s => s.Conversation))
        {
            var seqs = group.OrderBy(s => s.N).Select(s => ((Persisted)s.Outcome.Result).Ack.Seq).ToList();
            Assert.Equal(Enumerable.Range(1, seqs.Count).Select(i => (long)i), seqs);
        }
    }

    [Fact]
    public async Task A_full_ingest_queue_answers_overloaded_and_loses_nothing_it_accepted()
    {
        await using var node = await PipelineNode.StartAsync("caas.pipeline.queue-size = 4\ncaas.pipeline.persist-in-flight = 1\ncaas.pipeline.per-conversation-in-flight = 1\ncaas.pipeline.persist-waiting = 1\ncaas.pipeline.parallelism = 1");
        using var alice = node.Client("t-full", "alice");
        var id = await CreateGroupAsync(alice);
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 300).Select(n =>
            node.Ingest.SubmitAsync(new IngestMessage("t-full", id, "alice", $"o{n}", new MessageContent("text", "x"), IngestSource.Bulk))));

        var overloaded = outcomes.OfType<Rejected>().Where(r => r.Rejection.Code == ErrorCodes.Overloaded).ToList();
        var persisted = outcomes.OfType<Persisted>().ToList();
        Assert.NotEmpty(overloaded);
        Assert.All(overloaded, r => Assert.Equal(1, r.Rejection.RetryAfterSeconds));
        Assert.Equal(300, overloaded.Count + persisted.Count);
        Assert.Equal(Enumerable.Range(1, persisted.Count).Select(i => (long)i), persisted.Select(p => p.Ack.Seq).Order());
    }

    [Fact]
    public async Task An_interactive_message_behind_a_backlog_is_refused_at_once_and_bulk_is_not()
    {
        // A graph that persists one message at a time, and a budget no backlog can meet: while bulk messages fill it,
        // a REST or hub message is expected to wait past the budget.
        await using var node = await PipelineNode.StartAsync("caas.pipeline.persist-in-flight = 1\ncaas.pipeline.per-conversation-in-flight = 1\n" +
                                                             "caas.pipeline.interactive-wait-budget = 1ms\ncaas.pipeline.interactive-shed-min-in-graph = 8");
        using var alice = node.Client("t-shed", "alice");
        var id = await CreateGroupAsync(alice);
        var bulk = Enumerable.Range(0, 200).Select(n =>
            node.Ingest.SubmitAsync(new IngestMessage("t-shed", id, "alice", $"b{n}", new MessageContent("text", "x"), IngestSource.Bulk))).ToList();

        foreach (var source in new[] { IngestSource.Rest, IngestSource.Hub })
        {
            var refused = Assert.IsType<Rejected>(await node.Ingest.SubmitAsync(
                new IngestMessage("t-shed", id, "alice", $"i-{source}", new MessageContent("text", "now"), source)));
            Assert.Equal(ErrorCodes.Overloaded, refused.Rejection.Code);
            Assert.InRange(refused.Rejection.RetryAfterSeconds ?? 0, 1, 30);
        }
        // Bulk behind the same backlog waits its turn, and everything bulk is stored.
        bulk.Add(node.Ingest.SubmitAsync(new IngestMessage("t-shed", id, "alice", "b-late", new MessageContent("text", "x"), IngestSource.Bulk)));
        var outcomes = await Task.WhenAll(bulk);
        Assert.All(outcomes, o => Assert.IsType<Persisted>(o));

        // Once the graph is (nearly) empty, the refused message goes through with its id: nothing of it was kept.
        var retried = Assert.IsType<Persisted>(await node.Ingest.SubmitAsync(
            new IngestMessage("t-shed", id, "alice", "i-Rest", new MessageContent("text", "now"), IngestSource.Rest)));
        Assert.False(retried.Ack.Repeat);
        Assert.Equal(202, retried.Ack.Seq);
    }

    [Fact]
    public async Task Bulk_ndjson_answers_every_line_in_order_and_a_replay_is_all_duplicates()
    {
        await using var node = await PipelineNode.StartAsync();
        using var alice = node.Client("t-bulk", "alice");
        var a = await CreateGroupAsync(alice, "bob");
        var b = await CreateGroupAsync(alice);
        var body = new StringBuilder();
        for (var i = 0; i < 1000; i++)
            body.AppendLine(JsonSerializer.Serialize(new { conversation_id = i % 2 == 0 ? a : b, sender_id = i % 4 == 0 ? "bob" : "alice", message_id = $"bulk-{i}", content = new { type = "text", text = $"line {i}" } }));
        body.AppendLine("{not json");
        body.AppendLine(JsonSerializer.Serialize(new { conversation_id = b, sender_id = "bob", message_id = "bulk-x", content = new { type = "text", text = "bob is not in b" } }));
        body.AppendLine(JsonSerializer.Serialize(new { conversation_id = a, sender_id = "alice", content = new { type = "image", text = "x" } }));

        using var ingest = node.Client("t-bulk", "loader", "ingest");
        var lines = await PostNdjsonAsync(ingest, body.ToString());
        Assert.Equal(1003, lines.Count);
        Assert.Equal(Enumerable.Range(1, 1003), lines.Select(l => l.GetProperty("line").GetInt32()));
        Assert.All(lines.Take(1000), l => Assert.Equal("persisted", l.GetProperty("status").GetString()));
        Assert.Equal("malformed_json", lines[1000].GetProperty("code").GetString());
        Assert.Equal("not_found", lines[1001].GetProperty("code").GetString());
        Assert.Equal("validation_failed", lines[1002].GetProperty("code").GetString());
        Assert.Equal(Enumerable.Range(1, 500).Select(i => (long)i), lines.Take(1000).Where((_, i) => i % 2 == 0).Select(l => l.GetProperty("seq").GetInt64()));

        var again = await PostNdjsonAsync(ingest, body.ToString());
        Assert.All(again.Take(1000), l => Assert.Equal("duplicate", l.GetProperty("status").GetString()));
        var conversation = JsonDocument.Parse(await alice.GetStringAsync($"/v1/conversations/{a}")).RootElement;
        Assert.Equal(500, conversation.GetProperty("last_seq").GetInt64());

        using var member = node.Client("t-bulk", "alice");
        Assert.Equal(403, (int)(await member.PostAsync("/v1/ingest", new StringContent("{}"))).StatusCode);
        var tooMany = string.Concat(Enumerable.Repeat("{}\n", 10_001));
        // the body is streamed, so a line past the limit is answered on its own line, after the others
        var answers = await PostNdjsonAsync(ingest, tooMany);
        Assert.Equal(10_001, answers.Count);
        Assert.All(answers.Take(10_000), l => Assert.Equal("validation_failed", l.GetProperty("code").GetString()));
        Assert.Equal("payload_too_large", answers[^1].GetProperty("code").GetString());
    }

    private static async Task<List<JsonElement>> PostNdjsonAsync(HttpClient client, string ndjson)
    {
        using var response = await client.PostAsync("/v1/ingest", new StringContent(ndjson, Encoding.UTF8, "application/x-ndjson"));
        Assert.Equal(200, (int)response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
    }
}
