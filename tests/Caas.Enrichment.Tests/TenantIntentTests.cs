using System.Diagnostics;
using Caas.Enrichment.Evaluation;
using Caas.Enrichment.Intent;
using Microsoft.Data.Sqlite;
using Xunit;

namespace Caas.Enrichment.Tests;

/// <summary>Tenants' own intent models: upload parsing, the store on a real SQLite file, pick-up by other nodes.</summary>
public class TenantIntentTests
{
    private static readonly string[] Weather = ["what is the weather in {0}", "will it rain in {0}", "forecast for {0}", "is it sunny in {0}", "how cold is {0} today"];
    private static readonly string[] Flights = ["book a flight to {0}", "plane tickets to {0}", "fly me to {0}", "find flights to {0}", "a seat on a plane to {0}"];
    private static readonly string[] Places = ["paris", "rome", "oslo", "lima"];

    private static List<LabelledText> Examples(string suffix = "") =>
        Weather.SelectMany(t => Places.Select(p => new LabelledText(string.Format(t, p), "weather" + suffix)))
            .Concat(Flights.SelectMany(t => Places.Select(p => new LabelledText(string.Format(t, p), "flight" + suffix))))
            .ToList();

    [Fact]
    public void Csv_with_a_header_quotes_and_a_quoted_line_break_parses_and_counts_lines()
    {
        var csv = "text,intent\n\"hello, there\",greet\n\"say \"\"hi\"\"\",greet\nhey,greet\n\"bye\nnow\",leave\nciao,leave\nlater,leave\n";
        var (examples, problem) = IntentTrainingData.Parse(csv, IntentDataFormat.Csv);
        Assert.Null(problem);
        Assert.Equal(6, examples!.Count);
        Assert.Equal(new LabelledText("hello, there", "greet"), examples[0]);
        Assert.Equal("say \"hi\"", examples[1].Text);
        Assert.Equal("bye\nnow", examples[3].Text);

        var (_, bad) = IntentTrainingData.Parse("text,intent\n\"a\nb\",x\nc,x,y\n", IntentDataFormat.Csv);
        Assert.Equal((IntentDataProblem.Malformed, 4), (bad!.Code, bad.Line));
    }

    [Theory]
    [InlineData("{\"text\":\"a\",\"intent\":\"x\"}\nnot json", IntentDataProblem.Malformed, 2)]
    [InlineData("{\"text\":\"a\",\"intent\":\"x\"}\n\n[1,2]", IntentDataProblem.Malformed, 3)]
    [InlineData("{\"text\":\"\",\"intent\":\"x\"}", IntentDataProblem.Malformed, 1)]
    [InlineData("{\"text\":\"a\",\"intent\":7}", IntentDataProblem.Malformed, 1)]
    [InlineData("{\"text\":\"a\",\"intent\":\"x\"}\n{\"text\":\"b\",\"intent\":\"x\"}\n{\"text\":\"c\",\"intent\":\"x\"}", IntentDataProblem.TooFewLabels, null)]
    [InlineData("{\"text\":\"a\",\"intent\":\"x\"}\n{\"text\":\"b\",\"intent\":\"x\"}\n{\"text\":\"c\",\"intent\":\"x\"}\n{\"text\":\"d\",\"intent\":\"y\"}", IntentDataProblem.TooFewExamples, null)]
    public void Bad_json_lines_name_their_code_and_line(string body, string code, int? line)
    {
        var (examples, problem) = IntentTrainingData.Parse(body, IntentDataFormat.JsonLines);
        Assert.Null(examples);
        Assert.Equal(code, problem!.Code);
        Assert.Equal(line, problem.Line);
    }

    private static TenantIntentModelStore SqliteStore()
    {
        var file = Path.Combine(TestData.NewTempDirectory(), "readmodel.db");
        return new TenantIntentModelStore(async ct =>
        {
            var c = new SqliteConnection($"Data Source={file};Pooling=False");
            await c.OpenAsync(ct);
            return c;
        }, postgres: false);
    }

    [Fact]
    public async Task A_version_trained_on_one_node_is_live_there_at_once_and_on_another_node_after_its_version_check()
    {
        var store = SqliteStore();
        var nodeA = new TenantIntentModels(store, TimeSpan.FromMilliseconds(100));
        var nodeB = new TenantIntentModels(store, TimeSpan.FromMilliseconds(100));
        var queue = new IntentTrainingQueue(store, nodeA, capacity: 1);
        Assert.Null(nodeB.Get("acme"));

        var ticket = await queue.TrySubmitAsync("acme", Examples());
        Assert.NotNull(ticket);
        Assert.Equal(1, ticket.Version);
        // One training at a time per node: a second while the first waits or runs is refused.
        Assert.Null(await queue.TrySubmitAsync("acme", Examples()));
        await ticket.Completion.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, nodeA.Get("acme")!.Version);
        Assert.Equal("weather", nodeA.Get("acme")!.Model.Predict("is it going to rain in madrid").Intent);
        Assert.Equal(1, (await EventuallyAsync(() => nodeB.Get("acme"))).Version);
        Assert.Null(nodeB.Get("globex"));

        var second = await queue.TrySubmitAsync("acme", Examples("-2"));
        await second!.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(2, second.Version);
        Assert.Equal(2, (await EventuallyAsync(() => nodeB.Get("acme") is { Version: 2 } m ? m : null)).Version);
        Assert.Equal("flight-2", nodeB.Get("acme")!.Model.Predict("a flight to madrid please").Intent);

        var rows = await store.ListAsync("acme");
        Assert.Equal([2, 1], rows.Select(r => r.Version));
        Assert.All(rows, r => Assert.Equal(TenantIntentModelStatus.Ready, r.Status));
        Assert.Equal([true, false], rows.Select(r => r.Live));
        Assert.Empty(await store.ListAsync("globex"));

        // Rolling back is a live-version change every node follows.
        var (live, _) = await store.ActivateAsync("acme", 1);
        Assert.NotNull(live);
        Assert.Equal(1, (await EventuallyAsync(() => nodeB.Get("acme") is { Version: 1 } m ? m : null)).Version);
        Assert.Equal((null, null), await store.ActivateAsync("acme", 7));
    }

    [Fact]
    public async Task The_intent_enricher_answers_from_the_tenant_model_else_declares_itself_not_applicable()
    {
        var store = SqliteStore();
        var node = new TenantIntentModels(store);
        var queue = new IntentTrainingQueue(store, node);
        await (await queue.TrySubmitAsync("acme", Examples()))!.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        var enricher = new IntentEnricher(() => null, node);

        var own = await enricher.EnrichAsync(EnrichmentInput.ForText("book a flight to madrid") with { TenantId = "acme" }, default);
        var payload = Assert.IsType<IntentPayload>(own.Payload);
        Assert.Equal(("flight", "tenant:v1"), (payload.Intent, payload.Model));
        Assert.EndsWith("+tenant-v1", own.Version);

        var other = await enricher.EnrichAsync(EnrichmentInput.ForText("book a flight to madrid") with { TenantId = "globex" }, default);
        Assert.Equal(new NotApplicablePayload(true, "no_intent_model"), other.Payload);
        Assert.Contains("\"notApplicable\":true", other.PayloadJson());
        // Its speed is measured by `caas bench --enrich`, never asserted here (a timed test fails on a busy machine).
    }

    [Fact]
    public void Held_out_accuracy_is_measured_on_every_tenth_example_of_each_intent()
    {
        var metrics = IntentTrainingQueue.Measure(Examples());
        Assert.Equal(4, metrics.HeldOutExamples);
        Assert.Null(metrics.HeldOutAccuracy);
        var more = Examples().Concat(Examples()).Concat(Examples()).ToList();
        var measured = IntentTrainingQueue.Measure(more);
        Assert.Equal(12, measured.HeldOutExamples);
        Assert.True(measured.HeldOutAccuracy >= 0.8, $"{measured.HeldOutAccuracy}");
    }

    private static async Task<T> EventuallyAsync<T>(Func<T?> probe) where T : class
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(20))
        {
            if (probe() is { } value) return value;
            await Task.Delay(50);
        }
        throw new Xunit.Sdk.XunitException("not within 20 s");
    }
}
