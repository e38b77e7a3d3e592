using Caas.Enrichment.Evaluation;
using Caas.Enrichment.Sentiment;
using Xunit;

namespace Caas.Enrichment.Tests;

public class SentimentTests
{
    private static readonly SentimentLexicon Lexicon = SentimentLexicon.Load(TestData.File("sentiment"));
    private static readonly LexiconSentiment Vader = new(Lexicon);

    [Fact]
    public void Plain_positive_and_negative_messages()
    {
        Assert.True(Vader.Score("I love this, it is wonderful").Compound > 0.5);
        Assert.True(Vader.Score("this is awful and I hate it").Compound < -0.5);
        Assert.Equal(0, Vader.Score("the meeting is at 5 in room 3").Compound);
    }

    [Fact]
    public void Negation_flips_and_intensifiers_and_capitals_and_exclamations_raise()
    {
        var good = Vader.Score("the food was good").Compound;
        Assert.True(Vader.Score("the food was not good").Compound < 0);
        Assert.True(Vader.Score("the food was very good").Compound > good);
        Assert.True(Vader.Score("the food was GOOD").Compound > good);
        Assert.True(Vader.Score("the food was good!!!").Compound > good);
        Assert.True(Vader.Score("the food was slightly good").Compound < good);
    }

    [Fact]
    public void The_clause_after_but_weighs_more()
    {
        Assert.True(Vader.Score("the staff was nice but the room was terrible").Compound < 0);
        Assert.True(Vader.Score("the room was terrible but the staff was wonderful").Compound > 0);
    }

    [Fact]
    public void Emoji_and_emoticons_carry_sentiment()
    {
        Assert.True(Vader.Score("😍").Compound > 0.3);
        Assert.True(Vader.Score("😡😡").Compound < -0.3);
        Assert.True(Vader.Score("see you there :)").Compound > 0);
        Assert.True(Vader.Score("missed the bus :(").Compound < 0);
        Assert.True(Vader.Score("❤️").Compound > 0, "a heart with a variation selector is still a heart");
    }

    [Fact]
    public void Empty_and_symbol_only_messages_are_neutral()
    {
        var analyzer = new SentimentAnalyzer(Vader);
        Assert.Equal(SentimentLabel.Neutral, analyzer.Analyze("").Label);
        Assert.Equal(SentimentLabel.Neutral, analyzer.Analyze(null).Label);
        Assert.Equal(SentimentLabel.Neutral, analyzer.Analyze("... ---").Label);
    }

    [Fact]
    public void A_model_trained_on_an_sst2_slice_beats_the_lexicon_alone_on_dev()
    {
        var train = LabelledTextFile.Read(TestData.File("sentiment", "sst2-train.tsv")).Take(2000).ToList();
        var dev = LabelledTextFile.Read(TestData.File("sentiment", "sst2-dev.tsv"));
        var model = SentimentModel.Train(train, Vader, l2: 1f);
        var probabilities = model.PositiveProbabilities(dev.Select(d => d.Text));
        var modelAccuracy = dev.Where((d, i) => (probabilities[i] >= 0.5 ? "positive" : "negative") == d.Label).Count() / (double)dev.Count;
        var lexiconAccuracy = dev.Count(d => (Vader.Score(d.Text).Compound >= 0 ? "positive" : "negative") == d.Label) / (double)dev.Count;
        Assert.True(modelAccuracy >= 0.70, $"model accuracy {modelAccuracy:0.000}");
        Assert.True(modelAccuracy > lexiconAccuracy, $"model {modelAccuracy:0.000} vs lexicon {lexiconAccuracy:0.000}");

        var analyzer = new SentimentAnalyzer(Vader, model);
        Assert.Equal(SentimentLabel.Positive, analyzer.Analyze("a wonderful , moving and funny film").Label);
        Assert.Equal(SentimentLabel.Negative, analyzer.Analyze("a dull , tedious mess").Label);
    }
}
