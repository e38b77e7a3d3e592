using System.Text.Json;
using Caas.Enrichment.Evaluation;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using Microsoft.ML.Transforms.Text;

namespace Caas.Enrichment.Sentiment;

/// <summary>Model metadata written as sentiment.json next to sentiment.zip.</summary>
public sealed record SentimentModelInfo(string Version, DateTimeOffset TrainedAt, int Examples, float L2);

/// <summary>
/// A binary logistic-regression sentiment model over word and character n-grams plus the lexicon's four scores, so
/// it learns film-review phrasing from SST-2 while emoji, emoticons and shouting still count through the lexicon.
/// Thread-safe: prediction engines are pooled.
/// </summary>
public sealed class SentimentModel
{
    public const string ModelFile = "sentiment.zip";
    public const string InfoFile = "sentiment.json";

    private readonly MLContext _ml;
    private readonly ITransformer _transformer;
    private readonly LexiconSentiment _lexicon;
    private readonly ObjectPoolOf<PredictionEngine<SentimentRow, SentimentOutput>> _engines;

    public SentimentModelInfo Info { get; }

    private SentimentModel(MLContext ml, ITransformer transformer, LexiconSentiment lexicon, SentimentModelInfo info)
    {
        _ml = ml;
        _transformer = transformer;
        _lexicon = lexicon;
        Info = info;
        _engines = new ObjectPoolOf<PredictionEngine<SentimentRow, SentimentOutput>>(
            () => _ml.Model.CreatePredictionEngine<SentimentRow, SentimentOutput>(_transformer));
    }

    /// <summary>Trains on positive/negative examples; neutral examples, if any, are left out of this binary model.</summary>
    public static SentimentModel Train(IReadOnlyList<LabelledText> examples, LexiconSentiment lexicon, float l2 = 0.5f)
    {
        var rows = examples
            .Where(e => e.Label is "positive" or "negative")
            .Select(e => Row(e.Text, lexicon, e.Label == "positive"))
            .ToList();
        if (rows.Count == 0) throw new ArgumentException("no positive or negative examples", nameof(examples));
        var ml = new MLContext(1);
        var pipeline = ml.Transforms.Text.FeaturizeText("TextFeatures", new TextFeaturizingEstimator.Options
            {
                CaseMode = TextNormalizingEstimator.CaseMode.Lower,
                KeepPunctuations = false,
                KeepNumbers = true,
                WordFeatureExtractor = new WordBagEstimator.Options { NgramLength = 2, UseAllLengths = true },
                CharFeatureExtractor = new WordBagEstimator.Options { NgramLength = 4, UseAllLengths = false },
                Norm = TextFeaturizingEstimator.NormFunction.L2,
            }, nameof(SentimentRow.Text))
            .Append(ml.Transforms.Concatenate("Features", "TextFeatures", nameof(SentimentRow.Lexicon)))
            .Append(ml.BinaryClassification.Trainers.LbfgsLogisticRegression(new LbfgsLogisticRegressionBinaryTrainer.Options
            {
                L2Regularization = l2,
                L1Regularization = 0,
                NumberOfThreads = 1,
            }));
        var transformer = pipeline.Fit(ml.Data.LoadFromEnumerable(rows));
        var info = new SentimentModelInfo($"sst-{DateTimeOffset.UtcNow:yyyyMMddHHmmss}", DateTimeOffset.UtcNow, rows.Count, l2);
        return new SentimentModel(ml, transformer, lexicon, info);
    }

    /// <summary>Probability that the text is positive.</summary>
    public float PositiveProbability(string text)
    {
        var engine = _engines.Rent();
        try
        {
            return engine.Predict(Row(text, _lexicon, false)).Probability;
        }
        finally
        {
            _engines.Return(engine);
        }
    }

    public IReadOnlyList<float> PositiveProbabilities(IEnumerable<string> texts)
    {
        var data = _ml.Data.LoadFromEnumerable(texts.Select(t => Row(t, _lexicon, false)));
        return _ml.Data.CreateEnumerable<SentimentOutput>(_transformer.Transform(data), reuseRowObject: false)
            .Select(o => o.Probability)
            .ToList();
    }

    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var schema = _ml.Data.LoadFromEnumerable(Array.Empty<SentimentRow>()).Schema;
        _ml.Model.Save(_transformer, schema, Path.Combine(directory, ModelFile));
        File.WriteAllText(Path.Combine(directory, InfoFile), JsonSerializer.Serialize(Info, EnrichmentJson.Options));
    }

    public static bool Exists(string directory) =>
        File.Exists(Path.Combine(directory, ModelFile)) && File.Exists(Path.Combine(directory, InfoFile));

    public static SentimentModel Load(string directory, LexiconSentiment lexicon)
    {
        var ml = new MLContext(1);
        var transformer = ml.Model.Load(Path.Combine(directory, ModelFile), out _);
        var info = JsonSerializer.Deserialize<SentimentModelInfo>(File.ReadAllText(Path.Combine(directory, InfoFile)), EnrichmentJson.Options)
            ?? throw new InvalidDataException($"unreadable {InfoFile} in {directory}");
        return new SentimentModel(ml, transformer, lexicon, info);
    }

    private static SentimentRow Row(string text, LexiconSentiment lexicon, bool label)
    {
        var scores = lexicon.Score(text);
        return new SentimentRow
        {
            Text = text ?? "",
            Label = label,
            Lexicon = [(float)scores.Compound, (float)scores.Positive, (float)scores.Negative, (float)scores.Neutral],
        };
    }

    internal sealed class SentimentRow
    {
        public string Text { get; set; } = "";
        public bool Label { get; set; }
        [VectorType(4)]
        public float[] Lexicon { get; set; } = new float[4];
    }

    internal sealed class SentimentOutput
    {
        public float Probability { get; set; }
    }
}
