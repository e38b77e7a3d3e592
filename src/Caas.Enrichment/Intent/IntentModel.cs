using System.Text.Json;
using Caas.Enrichment.Evaluation;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using Microsoft.ML.Transforms.Text;

namespace Caas.Enrichment.Intent;

/// <summary>The intent a message expresses, with the classifier's confidence; <see cref="IntentModel.OutOfScope"/> when unsure.</summary>
public sealed record IntentPrediction(string Intent, float Confidence, string TopIntent, IReadOnlyList<IntentScore> Alternatives);

public sealed record IntentScore(string Intent, float Confidence);

/// <summary>
/// Settings of one training run, stored beside the model so a prediction can be traced to how it was made.
/// The defaults are the shipped settings, chosen on clinc150-val (see README.md for what else was tried).
/// </summary>
public sealed record IntentTrainingOptions
{
    public int WordNgrams { get; init; } = 2;
    public int CharNgrams { get; init; } = 4;
    public bool CharAllLengths { get; init; } = true;
    public bool TfIdf { get; init; }
    /// <summary>Word and character n-grams normalised as separate blocks, so the many character n-grams do not drown the words.</summary>
    public bool SeparateBlocks { get; init; } = true;
    /// <summary>Expand contractions and strip common suffixes before featurizing.</summary>
    public bool Normalise { get; init; } = true;
    /// <summary>
    /// "ova-svm" (one Platt-calibrated linear SVM per intent), "maxent" (SDCA multinomial logistic regression) or
    /// "hinge" (SDCA multiclass SVM; scores are softmaxed margins).
    /// </summary>
    public string Loss { get; init; } = "ova-svm";
    /// <summary>L2 regularisation (the SVM's lambda).</summary>
    public float L2 { get; init; } = 3e-5f;
    public int Iterations { get; init; } = 10;
    /// <summary>Below this top-class probability the answer is out of scope.</summary>
    public float OutOfScopeThreshold { get; init; } = 0.35f;
    public int Seed { get; init; } = 1;
}

/// <summary>Model metadata written as intent.json next to intent.zip.</summary>
public sealed record IntentModelInfo(string Version, DateTimeOffset TrainedAt, int Examples, int Intents, bool HasOutOfScopeLabel, IntentTrainingOptions Options);

/// <summary>
/// A linear intent classifier: ML.NET text featurization (word 1-2-grams and character 1-4-grams, L2-normalised blocks)
/// and, as shipped, one Platt-calibrated linear SVM per intent, whose scores are computed from its weights
/// (<see cref="LinearIntentHead"/>). Thread-safe: prediction engines are pooled because ML.NET's are not.
/// </summary>
public sealed class IntentModel
{
    public const string OutOfScope = "oos";
    public const string ModelFile = "intent.zip";
    public const string InfoFile = "intent.json";

    /// <summary>The settings the shipped CLINC150 model is trained with, chosen on clinc150-val.</summary>
    public static IntentTrainingOptions ShippedOptions { get; } = new();

    /// <summary>
    /// The shipped settings; a set without out-of-scope examples gets no threshold, since nothing taught the model
    /// what "none of these" looks like and every answer under a threshold would simply be wrong.
    /// </summary>
    public static IntentTrainingOptions OptionsFor(IReadOnlyList<LabelledText> examples) =>
        examples.Any(e => e.Label == OutOfScope) ? ShippedOptions : ShippedOptions with { OutOfScopeThreshold = 0 };

    private readonly MLContext _ml;
    private readonly ITransformer _transformer;
    private readonly string[] _labels;
    private readonly ObjectPoolOf<PredictionEngine<IntentRow, IntentScores>> _engines;

    public IntentModelInfo Info { get; }

    private IntentModel(MLContext ml, ITransformer transformer, IntentModelInfo info)
    {
        _ml = ml;
        _transformer = transformer;
        Info = info;
        _labels = ReadLabels(transformer);
        _engines = new ObjectPoolOf<PredictionEngine<IntentRow, IntentScores>>(
            () => _ml.Model.CreatePredictionEngine<IntentRow, IntentScores>(_transformer));
        if (!string.Equals(Environment.GetEnvironmentVariable("CAAS_INTENT_SCORER"), "mlnet", StringComparison.OrdinalIgnoreCase)
            && LinearIntentHead.Split(transformer, FeatureCount(transformer)) is var (featurizer, head) && head.Intents == _labels.Length)
        {
            _head = head;
            _featurizers = new ObjectPoolOf<Featurizing>(() => new Featurizing(_ml.Model.CreatePredictionEngine<IntentRow, FeatureRow>(featurizer)));
        }
    }

    // The one-versus-all SVM's head computed from its weights (see LinearIntentHead), over pooled featurizers; null for
    // other kinds of model, which keep ML.NET's whole prediction engine, and with CAAS_INTENT_SCORER=mlnet (comparison).
    private readonly LinearIntentHead? _head;
    private readonly ObjectPoolOf<Featurizing>? _featurizers;

    /// <summary>Prediction engines waiting in the pool (created by <see cref="WarmUp"/> or by earlier predictions).</summary>
    internal int PooledEngines => _featurizers?.Count ?? _engines.Count;

    /// <summary>Whether predictions take the linear head (the one-versus-all SVM) rather than ML.NET's scorer.</summary>
    internal bool ScoresWithLinearHead => _head is not null;

    /// <summary>How predictions are scored, for the bench's output.</summary>
    public string Scorer => _head is { } head
        ? $"linear head ({head.Intents} intents x {head.Features} features, {head.WeightBytes / (1024.0 * 1024):0.0} MB of weights)"
        : "ML.NET's prediction engine";

    private static int FeatureCount(ITransformer transformer)
    {
        var schema = transformer.GetOutputSchema(new MLContext().Data.LoadFromEnumerable(Array.Empty<IntentRow>()).Schema);
        return schema.GetColumnOrNull("Features")?.Type is VectorDataViewType { Size: > 0 } vector ? vector.Size : 0;
    }

    private sealed class Featurizing(PredictionEngine<IntentRow, FeatureRow> engine)
    {
        public PredictionEngine<IntentRow, FeatureRow> Engine { get; } = engine;
        public IntentRow Input { get; } = new();
        public FeatureRow Output = new();
    }

    public IReadOnlyList<string> Intents => _labels;

    public static IntentModel Train(IReadOnlyList<LabelledText> examples, IntentTrainingOptions? options = null)
    {
        options ??= new IntentTrainingOptions();
        if (examples.Count == 0) throw new ArgumentException("no training examples", nameof(examples));
        var ml = new MLContext(options.Seed);
        var data = ml.Data.LoadFromEnumerable(examples.Select(e => new IntentRow { Text = Prepare(e.Text, options), Label = e.Label }));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(Features(ml, options))
            .AppendCacheCheckpoint(ml)
            .Append(Trainer(ml, options));
        var transformer = pipeline.Fit(data);
        var labels = examples.Select(e => e.Label).Distinct().ToList();
        var info = new IntentModelInfo(
            Version: $"clf-{DateTimeOffset.UtcNow:yyyyMMddHHmmss}",
            TrainedAt: DateTimeOffset.UtcNow,
            Examples: examples.Count,
            Intents: labels.Count,
            HasOutOfScopeLabel: labels.Contains(OutOfScope),
            Options: options);
        return new IntentModel(ml, transformer, info);
    }

    private static IEstimator<ITransformer> Trainer(MLContext ml, IntentTrainingOptions options) => options.Loss switch
    {
        // One linear SVM per intent (Pegasos), Platt-calibrated so the top score is a probability the threshold can cut.
        "ova-svm" => ml.MulticlassClassification.Trainers.OneVersusAll(ml.BinaryClassification.Trainers.LinearSvm(new LinearSvmTrainer.Options
        {
            Lambda = options.L2,
            NumberOfIterations = options.Iterations,
        })),
        "hinge" => ml.MulticlassClassification.Trainers.SdcaNonCalibrated(new SdcaNonCalibratedMulticlassTrainer.Options
        {
            Loss = new HingeLoss(),
            L2Regularization = options.L2,
            MaximumNumberOfIterations = options.Iterations,
            NumberOfThreads = 1,
        }),
        _ => ml.MulticlassClassification.Trainers.SdcaMaximumEntropy(new SdcaMaximumEntropyMulticlassTrainer.Options
        {
            L2Regularization = options.L2,
            MaximumNumberOfIterations = options.Iterations,
            NumberOfThreads = 1,
        }),
    };

    private static IEstimator<ITransformer> Features(MLContext ml, IntentTrainingOptions options)
    {
        if (!options.SeparateBlocks || options.CharNgrams == 0)
            return ml.Transforms.Text.FeaturizeText("Features", Featurization(options), nameof(IntentRow.Text));
        var words = Featurization(options);
        words.CharFeatureExtractor = null;
        var chars = Featurization(options);
        chars.WordFeatureExtractor = null;
        return ml.Transforms.Text.FeaturizeText("WordFeatures", words, nameof(IntentRow.Text))
            .Append(ml.Transforms.Text.FeaturizeText("CharFeatures", chars, nameof(IntentRow.Text)))
            .Append(ml.Transforms.Concatenate("Features", "WordFeatures", "CharFeatures"));
    }

    internal static string Prepare(string? text, IntentTrainingOptions options) =>
        options.Normalise ? IntentText.Normalise(text ?? "") : text ?? "";

    private static TextFeaturizingEstimator.Options Featurization(IntentTrainingOptions options) => new()
    {
        CaseMode = TextNormalizingEstimator.CaseMode.Lower,
        KeepDiacritics = false,
        KeepPunctuations = false,
        KeepNumbers = true,
        WordFeatureExtractor = new WordBagEstimator.Options { NgramLength = options.WordNgrams, UseAllLengths = true, Weighting = Weighting(options) },
        CharFeatureExtractor = options.CharNgrams > 0
            ? new WordBagEstimator.Options { NgramLength = options.CharNgrams, UseAllLengths = options.CharAllLengths, Weighting = Weighting(options) }
            : null,
        Norm = TextFeaturizingEstimator.NormFunction.L2,
    };

    private static NgramExtractingEstimator.WeightingCriteria Weighting(IntentTrainingOptions options) =>
        options.TfIdf ? NgramExtractingEstimator.WeightingCriteria.TfIdf : NgramExtractingEstimator.WeightingCriteria.Tf;

    public IntentPrediction Predict(string text, int alternatives = 3)
    {
        // The intent and conversation-context enrichers both ask about the same message string; answer the second
        // from the first. Keyed by reference, so entries vanish with the message.
        if (alternatives == DefaultAlternatives && text is not null && _recent.TryGetValue(text, out var known)) return known;
        var prediction = Score(text, alternatives);
        if (alternatives == DefaultAlternatives && text is not null) _recent.AddOrUpdate(text, prediction);
        return prediction;
    }

    /// <summary>
    /// Creates the pooled prediction engines that <paramref name="engines"/> concurrent callers use and runs one
    /// prediction on each, before the model goes live. Otherwise the first message after a load pays for creating an
    /// engine and for the JIT of the whole prediction path (measured in a process of its own: 77–117 ms for the first
    /// call after loading the shipped model, 0.13–0.45 ms for the next; the enrichment budget is 50 ms, so intent can be
    /// skipped for the first messages).
    /// </summary>
    public void WarmUp(int engines)
    {
        const string sample = "what is my account balance";
        var text = Prepare(sample, Info.Options);
        if (_featurizers is not null)
            Warm(_featurizers, engines, f =>
            {
                f.Input.Text = text;
                f.Engine.Predict(f.Input, ref f.Output);
            });
        else Warm(_engines, engines, engine => engine.Predict(new IntentRow { Text = text }));
        Score(sample, DefaultAlternatives); // the head, the decision and the ranking
    }

    // Takes `count` items out of the pool at once (so each is a distinct, newly made one when the pool is new), runs
    // each once, and gives them all back.
    private static void Warm<T>(ObjectPoolOf<T> pool, int count, Action<T> run) where T : class
    {
        var rented = new List<T>(count);
        try
        {
            for (var i = 0; i < count; i++)
            {
                rented.Add(pool.Rent());
                run(rented[^1]);
            }
        }
        finally
        {
            foreach (var item in rented) pool.Return(item);
        }
    }

    private const int DefaultAlternatives = 3;
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<string, IntentPrediction> _recent = new();

    private IntentPrediction Score(string? text, int alternatives) => Decide(Scores(text), alternatives);

    /// <summary>Every intent's probability for one message, in <see cref="Intents"/> order.</summary>
    internal float[] Scores(string? text)
    {
        if (_head is not null) return ScoreWithHead(text);
        var engine = _engines.Rent();
        try
        {
            return engine.Predict(new IntentRow { Text = Prepare(text, Info.Options) }).Score ?? [];
        }
        finally
        {
            _engines.Return(engine);
        }
    }

    private float[] ScoreWithHead(string? text)
    {
        var featurizing = _featurizers!.Rent();
        try
        {
            featurizing.Input.Text = Prepare(text, Info.Options);
            featurizing.Engine.Predict(featurizing.Input, ref featurizing.Output);
            return _head!.Score(featurizing.Output.Features);
        }
        finally
        {
            _featurizers.Return(featurizing);
        }
    }

    private IntentPrediction Decide(float[] scores, int alternatives)
    {
        var best = 0;
        for (var i = 1; i < scores.Length; i++)
            if (scores[i] > scores[best]) best = i;
        var top = _labels.Length == 0 ? OutOfScope : _labels[best];
        var confidence = scores.Length == 0 ? 0f : scores[best];
        var intent = confidence < Info.Options.OutOfScopeThreshold ? OutOfScope : top;
        return new IntentPrediction(intent, confidence, top, Ranked(scores, alternatives));
    }

    /// <summary>
    /// The <paramref name="count"/> highest scores, highest first, ties in intent order: what a stable sort of every
    /// score, descending, then taking the first <paramref name="count"/>, gives (NaN last), without sorting 151 scores and
    /// allocating a record for each per message (about 10 µs of the intent enricher's 50 µs on CLINC150 texts).
    /// </summary>
    internal List<IntentScore> Ranked(float[] scores, int count)
    {
        var ranked = new List<IntentScore>(Math.Max(0, Math.Min(count, scores.Length)));
        if (count <= 0) return ranked;
        Span<int> best = stackalloc int[Math.Min(count, scores.Length)];
        var kept = 0;
        var order = Comparer<float>.Default;
        for (var i = 0; i < scores.Length; i++)
        {
            // The first place whose score this one beats (strictly: an equal score stays behind, as in a stable sort).
            var at = kept;
            while (at > 0 && order.Compare(scores[i], scores[best[at - 1]]) > 0) at--;
            if (at >= best.Length) continue;
            var last = Math.Min(kept, best.Length - 1);
            for (var j = last; j > at; j--) best[j] = best[j - 1];
            best[at] = i;
            if (kept < best.Length) kept++;
        }
        for (var j = 0; j < kept; j++) ranked.Add(new IntentScore(_labels[best[j]], scores[best[j]]));
        return ranked;
    }

    /// <summary>Scores many texts in one pass (evaluation); much faster than one prediction engine call each.</summary>
    public IReadOnlyList<IntentPrediction> PredictMany(IEnumerable<string> texts) =>
        ScoreMany(texts).Select(s => Decide(s, 1)).ToList();

    /// <summary>Every intent's probability for each message, by ML.NET's whole pipeline (its own scorer included).</summary>
    internal IReadOnlyList<float[]> ScoreMany(IEnumerable<string> texts)
    {
        var data = _ml.Data.LoadFromEnumerable(texts.Select(t => new IntentRow { Text = Prepare(t, Info.Options) }));
        var scored = _transformer.Transform(data);
        return _ml.Data.CreateEnumerable<IntentScores>(scored, reuseRowObject: false).Select(s => s.Score ?? []).ToList();
    }

    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var schema = _ml.Data.LoadFromEnumerable(Array.Empty<IntentRow>()).Schema;
        _ml.Model.Save(_transformer, schema, Path.Combine(directory, ModelFile));
        File.WriteAllText(Path.Combine(directory, InfoFile), JsonSerializer.Serialize(Info, EnrichmentJson.Options));
    }

    /// <summary>The model as bytes (the ML.NET zip) and its metadata as JSON, for storing in a database.</summary>
    public (byte[] Model, string InfoJson) ToBytes()
    {
        using var buffer = new MemoryStream();
        var schema = _ml.Data.LoadFromEnumerable(Array.Empty<IntentRow>()).Schema;
        _ml.Model.Save(_transformer, schema, buffer);
        return (buffer.ToArray(), JsonSerializer.Serialize(Info, EnrichmentJson.Options));
    }

    public static IntentModel FromBytes(byte[] model, string infoJson)
    {
        var ml = new MLContext(1);
        using var buffer = new MemoryStream(model, writable: false);
        var transformer = ml.Model.Load(buffer, out _);
        var info = JsonSerializer.Deserialize<IntentModelInfo>(infoJson, EnrichmentJson.Options)
            ?? throw new InvalidDataException("unreadable intent model metadata");
        return new IntentModel(ml, transformer, info);
    }

    public static bool Exists(string directory) =>
        File.Exists(Path.Combine(directory, ModelFile)) && File.Exists(Path.Combine(directory, InfoFile));

    public static IntentModel Load(string directory)
    {
        var ml = new MLContext(1);
        var transformer = ml.Model.Load(Path.Combine(directory, ModelFile), out _);
        var info = JsonSerializer.Deserialize<IntentModelInfo>(File.ReadAllText(Path.Combine(directory, InfoFile)), EnrichmentJson.Options)
            ?? throw new InvalidDataException($"unreadable {InfoFile} in {directory}");
        return new IntentModel(ml, transformer, info);
    }

    private static string[] ReadLabels(ITransformer transformer)
    {
        var schema = transformer.GetOutputSchema(new MLContext().Data.LoadFromEnumerable(Array.Empty<IntentRow>()).Schema);
        var names = default(VBuffer<ReadOnlyMemory<char>>);
        schema["Score"].GetSlotNames(ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }

    internal sealed class IntentRow
    {
        public string Text { get; set; } = "";
        public string Label { get; set; } = "";
    }

    internal sealed class FeatureRow
    {
        public VBuffer<float> Features { get; set; }
    }

    internal sealed class IntentScores
    {
        public float[]? Score { get; set; }
    }
}
