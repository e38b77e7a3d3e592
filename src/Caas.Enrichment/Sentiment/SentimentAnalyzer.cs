namespace Caas.Enrichment.Sentiment;

public enum SentimentLabel { Negative, Neutral, Positive }

/// <summary>A message's sentiment: its label, a score in -1..1 (negative to positive), and the lexicon's own compound.</summary>
public sealed record SentimentResult(SentimentLabel Label, double Score, double LexiconCompound);

/// <summary>
/// Decides a message's sentiment from the lexicon alone, or from the trained model (which also sees the lexicon's
/// scores) when one is loaded. Scores inside the neutral band are neutral: chat is mostly neither.
/// </summary>
public sealed class SentimentAnalyzer(LexiconSentiment lexicon, SentimentModel? model = null, double neutralBand = SentimentAnalyzer.DefaultNeutralBand)
{
    public const double DefaultNeutralBand = 0.3;

    /// <summary>VADER's own threshold for its compound score.</summary>
    private const double LexiconNeutralBand = 0.05;

    public bool HasModel => model is not null;

    public SentimentResult Analyze(string? text)
    {
        var lexiconScores = lexicon.Score(text);
        if (string.IsNullOrWhiteSpace(text)) return new SentimentResult(SentimentLabel.Neutral, 0, 0);
        if (model is null)
            return new SentimentResult(LabelOf(lexiconScores.Compound, LexiconNeutralBand), lexiconScores.Compound, lexiconScores.Compound);
        var score = 2.0 * model.PositiveProbability(text) - 1.0;
        return new SentimentResult(LabelOf(score, neutralBand), Math.Round(score, 4), lexiconScores.Compound);
    }

    public static SentimentLabel LabelOf(double score, double band) =>
        score >= band ? SentimentLabel.Positive : score <= -band ? SentimentLabel.Negative : SentimentLabel.Neutral;
}
