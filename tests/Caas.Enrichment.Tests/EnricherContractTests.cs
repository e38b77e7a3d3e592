using System.Text.Json;
using Caas.Enrichment.Cli;
using Caas.Enrichment.Context;
using Caas.Enrichment.Sentiment;
using Xunit;

namespace Caas.Enrichment.Tests;

public class EnricherContractTests
{
    [Fact]
    public async Task Text_enrichers_declare_name_and_version_and_results_carry_them_as_json()
    {
        var enrichers = TestData.TextEnrichers();
        var input = new EnrichmentInput("t1", "conv-1", "u1", "Call me at +1 415 555 0132 tomorrow at 3pm, I LOVE it 😍",
            new DateTimeOffset(2026, 11, 23, 9, 30, 0, TimeSpan.Zero), "Europe/Berlin", "US");
        foreach (var enricher in enrichers)
        {
            Assert.False(string.IsNullOrWhiteSpace(enricher.Name));
            Assert.Matches(@"^\d+\.\d+\.\d+", enricher.Version);
            var result = await enricher.EnrichAsync(input, CancellationToken.None);
            Assert.Equal(enricher.Name, result.Enricher);
            Assert.Equal(enricher.Version, result.Version);
            using var json = JsonDocument.Parse(result.PayloadJson());
            Assert.Equal(JsonValueKind.Object, json.RootElement.ValueKind);
        }
        var entities = (EntitiesPayload)(await enrichers[0].EnrichAsync(input, CancellationToken.None)).Payload;
        Assert.Contains(entities.Entities, e => e.Type == "phone" && e.Value == "+14155550132");
        Assert.Contains(entities.Entities, e => e.Type == "datetime" && e.Value == "2026-11-24T15:00:00+01:00");
        var sentiment = (SentimentPayload)(await enrichers[1].EnrichAsync(input, CancellationToken.None)).Payload;
        Assert.Equal(SentimentLabel.Positive, sentiment.Label);
        Assert.Contains("\"label\":\"positive\"", (await enrichers[1].EnrichAsync(input, CancellationToken.None)).PayloadJson());
    }

    [Fact]
    public void Eval_entities_prints_per_type_scores_and_a_last_line_scripts_can_read()
    {
        var output = new StringWriter();
        var code = EnrichmentCommands.Eval("entities", TestData.File("entities", "recognizers-EmailModel.json"), null, output);
        Assert.Equal(0, code);
        var lines = output.ToString().TrimEnd().Split('\n');
        Assert.Contains(lines, l => l.StartsWith("email: precision="));
        Assert.Matches(@"^precision=\d\.\d{4} recall=\d\.\d{4} f1=\d\.\d{4}$", lines[^1].TrimEnd());
    }

    [Fact]
    public void Eval_entities_reads_the_jsonl_format_with_exclusive_utf16_ends()
    {
        var dir = TestData.NewTempDirectory();
        var path = Path.Combine(dir, "entities.jsonl");
        File.WriteAllText(path, """
            {"text": "😀 mail me at a@b.com", "entities": [{"type": "email", "start": 14, "end": 21, "value": "a@b.com"}]}
            {"text": "no entities here", "entities": []}
            """);
        var output = new StringWriter();
        Assert.Equal(0, EnrichmentCommands.Eval("entities", path, null, output));
        Assert.EndsWith("f1=1.0000", output.ToString().TrimEnd());
    }

    [Fact]
    public void Train_then_eval_intent_prints_the_four_figures_last()
    {
        var dir = TestData.NewTempDirectory();
        var train = Path.Combine(dir, "train.jsonl");
        var test = Path.Combine(dir, "test.jsonl");
        string[] greetings = ["hi there", "hello", "good morning", "hey how are you", "hello friend", "hi"];
        string[] weather = ["will it rain today", "what's the weather", "is it sunny tomorrow", "forecast for the weekend", "how cold is it outside", "weather in paris"];
        string[] oos = ["what is the capital of mars", "sing me the alphabet backwards", "how tall is a giraffe's shadow"];
        File.WriteAllLines(train, greetings.Select(t => Line(t, "greeting")).Concat(weather.Select(t => Line(t, "weather"))).Concat(oos.Select(t => Line(t, "oos"))));
        File.WriteAllLines(test, [Line("hello there", "greeting"), Line("will it rain in paris", "weather"), Line("hey", "greeting")]);
        var model = Path.Combine(dir, "model");

        var output = new StringWriter();
        Assert.Equal(0, EnrichmentCommands.Train("intent", train, model, output));
        Assert.Equal(0, EnrichmentCommands.Eval("intent", test, model, output));
        Assert.Matches(@"^accuracy=\d\.\d{4} macro_f1=\d\.\d{4} in_scope_accuracy=\d\.\d{4} oos_recall=nan$", output.ToString().TrimEnd().Split('\n')[^1].TrimEnd());
    }

    [Fact]
    public void Bad_arguments_give_exit_code_2_and_a_message()
    {
        var output = new StringWriter();
        Assert.Equal(2, EnrichmentCommands.Eval("astrology", TestData.File("entities", "recognizers-EmailModel.json"), null, output));
        Assert.Equal(2, EnrichmentCommands.Eval("intent", "/nonexistent/file.jsonl", null, output));
        Assert.Equal(2, EnrichmentCommands.Train("ocr", TestData.File("intent", "banking77-train.csv"), TestData.NewTempDirectory(), output));
        Assert.Contains("unknown task", output.ToString());
    }

    [Fact]
    public void Eval_ocr_reads_a_folder_of_images_with_truth_beside_each()
    {
        var dir = TestData.NewTempDirectory();
        var lines = new[] { "Meet me at the station at noon", "Total due: 42 dollars" };
        for (var i = 0; i < lines.Length; i++)
        {
            var image = Path.Combine(dir, $"sample{i}.png");
            TestData.Run("convert", "-background", "white", "-fill", "black", "-font", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "-pointsize", "36", $"label:{lines[i]}", "-bordercolor", "white", "-border", "24", image);
            File.WriteAllText(Path.ChangeExtension(image, ".txt"), lines[i]);
        }
        var output = new StringWriter();
        Assert.Equal(0, EnrichmentCommands.Eval("ocr", dir, null, output));
        var last = output.ToString().TrimEnd().Split('\n')[^1].TrimEnd();
        Assert.Matches(@"^cer=\d\.\d{4}$", last);
        Assert.True(double.Parse(last["cer=".Length..], System.Globalization.CultureInfo.InvariantCulture) <= 0.03, output.ToString());
    }

    private static string Line(string text, string intent) => JsonSerializer.Serialize(new { text, intent });
}
