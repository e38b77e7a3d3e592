using Caas.Enrichment.Evaluation;
using Caas.Enrichment.Intent;
using Xunit;

namespace Caas.Enrichment.Tests;

/// <summary>One small CLINC150 model shared by the intent tests: 15 intents plus out-of-scope, trained in seconds.</summary>
public sealed class SmallIntentModel
{
    public IReadOnlyList<LabelledText> Validation { get; }
    public IntentModel Model { get; }

    public SmallIntentModel()
    {
        var train = LabelledTextFile.Read(TestData.File("intent", "clinc150-train.jsonl"));
        var intents = train.Select(e => e.Label).Where(l => l != IntentModel.OutOfScope).Distinct().Take(15).Append(IntentModel.OutOfScope).ToHashSet();
        Model = IntentModel.Train(train.Where(e => intents.Contains(e.Label)).ToList(), IntentModel.ShippedOptions with { Iterations = 20 });
        Validation = LabelledTextFile.Read(TestData.File("intent", "clinc150-val.jsonl")).Where(e => intents.Contains(e.Label)).ToList();
    }
}

public class IntentTests(SmallIntentModel small) : IClassFixture<SmallIntentModel>
{
    [Fact]
    public void A_model_trained_on_a_slice_of_clinc150_is_accurate_on_its_validation_split()
    {
        var predictions = small.Model.PredictMany(small.Validation.Select(e => e.Text));
        var inScope = small.Validation.Select((e, i) => (e.Label, predictions[i].Intent)).Where(p => p.Label != IntentModel.OutOfScope).ToList();
        var accuracy = inScope.Count(p => p.Label == p.Intent) / (double)inScope.Count;
        Assert.Equal(300, inScope.Count);
        Assert.True(accuracy >= 0.88, $"in-scope accuracy {accuracy:0.000}");
    }

    [Fact]
    public void Out_of_scope_questions_are_mostly_answered_oos()
    {
        var oos = small.Validation.Where(e => e.Label == IntentModel.OutOfScope).ToList();
        var predictions = small.Model.PredictMany(oos.Select(e => e.Text));
        var recall = predictions.Count(p => p.Intent == IntentModel.OutOfScope) / (double)oos.Count;
        Assert.True(recall >= 0.5, $"oos recall {recall:0.000}");
    }

    [Fact]
    public void Single_and_batch_predictions_agree_and_survive_save_and_load()
    {
        var dir = TestData.NewTempDirectory();
        small.Model.Save(dir);
        var loaded = IntentModel.Load(dir);
        foreach (var example in small.Validation.Take(40))
        {
            var original = small.Model.Predict(example.Text);
            var reloaded = loaded.Predict(example.Text);
            Assert.Equal(original.Intent, reloaded.Intent);
            Assert.Equal(original.Confidence, reloaded.Confidence, 4);
        }
        Assert.Equal(small.Model.Info.Version, loaded.Info.Version);
    }

    [Fact]
    public void A_loaded_model_is_warmed_up_with_an_engine_per_concurrent_caller_that_predictions_then_reuse()
    {
        var dir = TestData.NewTempDirectory();
        small.Model.Save(dir);
        var loaded = IntentModel.Load(dir);
        Assert.Equal(0, loaded.PooledEngines);
        loaded.WarmUp(3);
        Assert.Equal(3, loaded.PooledEngines);
        foreach (var example in small.Validation.Take(10))
            Assert.Equal(small.Model.Predict(example.Text).Intent, loaded.Predict(example.Text).Intent);
        Assert.Equal(3, loaded.PooledEngines); // one caller at a time took a warm engine and gave it back
    }

    [Fact]
    public async Task The_shipped_model_is_ready_only_once_it_is_warm()
    {
        var models = TestData.NewTempDirectory();
        small.Model.Save(Path.Combine(models, "intent"));
        var shipped = ShippedIntentModel.Start(new EnrichmentOptions { ModelDirectory = models }, (_, _) => { });
        for (var i = 0; i < 1200 && shipped.State != ShippedIntentModel.Ready; i++) await Task.Delay(100);
        Assert.Equal(ShippedIntentModel.Ready, shipped.State);
        Assert.Equal(Environment.ProcessorCount, shipped.Model!.PooledEngines);
    }

    [Fact]
    public void The_linear_head_scores_what_ml_nets_own_scorer_scores_before_and_after_save_and_load()
    {
        var dir = TestData.NewTempDirectory();
        small.Model.Save(dir);
        var texts = small.Validation.Select(e => e.Text).Take(150)
            .Concat(["", "   ", "🙂🙂", "什么时候开门", new string('x', 20_000), "Book me a FLIGHT to Paris!!! 😀 https://x.example"])
            .ToList();
        foreach (var model in new[] { small.Model, IntentModel.Load(dir) })
        {
            Assert.True(model.ScoresWithLinearHead);
            // ML.NET's batch transform runs its one-versus-all scorer; Predict and Scores take the head.
            var reference = model.ScoreMany(texts);
            for (var i = 0; i < texts.Count; i++)
            {
                var head = model.Scores(texts[i]);
                Assert.Equal(reference[i].Length, head.Length);
                Assert.Equal(model.Intents.Count, head.Length);
                for (var k = 0; k < head.Length; k++)
                    Assert.True(Math.Abs(reference[i][k] - head[k]) <= 1e-5f, $"text {i}, intent {k}: {reference[i][k]} against {head[k]}");
                Assert.Equal(model.PredictMany([texts[i]])[0].TopIntent, model.Predict(texts[i]).TopIntent);
            }
        }
    }

    [Fact]
    public void Empty_and_odd_messages_get_an_answer_not_an_exception()
    {
        foreach (var text in new[] { "", "   ", "🙂🙂", new string('x', 100_000), "什么时候开门" })
        {
            var prediction = small.Model.Predict(text);
            Assert.InRange(prediction.Confidence, 0f, 1f);
            Assert.Contains(prediction.Intent, small.Model.Intents.Append(IntentModel.OutOfScope));
        }
    }

    [Fact]
    public void A_set_without_oos_examples_gets_no_threshold()
    {
        var examples = new[] { new LabelledText("hi", "greet"), new LabelledText("bye", "leave") };
        Assert.Equal(0f, IntentModel.OptionsFor(examples).OutOfScopeThreshold);
        Assert.True(IntentModel.OptionsFor([.. examples, new LabelledText("what", IntentModel.OutOfScope)]).OutOfScopeThreshold > 0);
    }

    [Fact]
    public void Labelled_files_are_read_in_every_shipped_format()
    {
        var dir = TestData.NewTempDirectory();
        File.WriteAllText(Path.Combine(dir, "a.jsonl"), "{\"text\": \"book a flight\", \"intent\": \"book_flight\"}\n\n{\"text\": \"hi\", \"intent\": \"greet\"}\n");
        File.WriteAllText(Path.Combine(dir, "b.csv"), "text,category\n\"Where is my card, again?\",card_arrival\nhello,greet\n");
        File.WriteAllText(Path.Combine(dir, "c.tsv"), "1\tgreat film\n0\tdull\nneutral\tit is a film\n");
        Assert.Equal(new LabelledText("book a flight", "book_flight"), LabelledTextFile.Read(Path.Combine(dir, "a.jsonl"))[0]);
        Assert.Equal(new LabelledText("Where is my card, again?", "card_arrival"), LabelledTextFile.Read(Path.Combine(dir, "b.csv"))[0]);
        Assert.Equal(["positive", "negative", "neutral"], LabelledTextFile.Read(Path.Combine(dir, "c.tsv")).Select(e => e.Label));
    }

    [Fact]
    public void The_ranked_alternatives_are_what_a_stable_descending_sort_gives_ties_and_nan_included()
    {
        var model = small.Model;
        var intents = model.Intents.Count;
        var random = new Random(7);
        for (var round = 0; round < 500; round++)
        {
            // Few distinct values, so ties are common; some NaN.
            var scores = Enumerable.Range(0, intents).Select(_ => random.Next(10) switch
            {
                0 => float.NaN,
                var v => v / 10f,
            }).ToArray();
            foreach (var count in new[] { 0, 1, 3, 5, intents, intents + 4 })
            {
                var expected = scores.Select((s, i) => new IntentScore(model.Intents[i], s)).OrderByDescending(s => s.Confidence).Take(count).ToList();
                Assert.Equal(expected, model.Ranked(scores, count));
            }
        }
        // And the model's own answers, as Predict returns them.
        foreach (var text in small.Validation.Take(50).Select(e => e.Text))
        {
            var scores = model.Scores(text);
            var expected = scores.Select((s, i) => new IntentScore(model.Intents[i], s)).OrderByDescending(s => s.Confidence).Take(3).ToList();
            Assert.Equal(expected, model.Predict(new string(text.AsSpan())).Alternatives);
        }
    }
}
