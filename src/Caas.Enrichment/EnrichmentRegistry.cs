using Caas.Enrichment.Attachments;
using Caas.Enrichment.Context;
using Caas.Enrichment.Evaluation;
using Caas.Enrichment.Intent;
using Caas.Enrichment.Sentiment;

namespace Caas.Enrichment;

/// <summary>
/// The default enrichers, built once per node from <see cref="EnrichmentOptions"/>: models are loaded from the model
/// directory, or trained there from the shipped data when missing. Also the bytes-in entry points for OCR and
/// document text that the media work will call.
/// </summary>
public sealed class EnrichmentRegistry
{
    /// <summary>
    /// The shipped intent model learns from all labelled CLINC150 data: its settings were chosen on the validation
    /// split with a train-only model, and the final fit uses both splits, as a shipped model should. Measure with a
    /// train-only model (<c>caas train --data clinc150-train.jsonl</c>), not with this one, on the validation split.
    /// </summary>
    public static readonly IReadOnlyList<string> IntentTrainingFiles = ["intent/clinc150-train.jsonl", "intent/clinc150-val.jsonl"];
    public const string SentimentTrainingFile = "sentiment/sst2-train.tsv";

    public IReadOnlyList<IEnricher> Enrichers { get; }
    public IReadOnlyList<IEnricher> TextEnrichers => Enrichers.Where(e => !e.NeedsAttachment).ToList();
    public IReadOnlyList<IEnricher> AttachmentEnrichers => Enrichers.Where(e => e.NeedsAttachment).ToList();

    public TesseractOcr Ocr { get; }
    public DocumentText Documents { get; }
    public SpeechRecognizer Speech { get; private init; } = new();
    public IntentModel? Intents { get; }
    public SentimentAnalyzer Sentiment { get; }

    private EnrichmentRegistry(IReadOnlyList<IEnricher> enrichers, TesseractOcr ocr, DocumentText documents, IntentModel? intents, SentimentAnalyzer sentiment)
    {
        Enrichers = enrichers;
        Ocr = ocr;
        Documents = documents;
        Intents = intents;
        Sentiment = sentiment;
    }

    public IEnricher? Find(string name) => Enrichers.FirstOrDefault(e => e.Name == name);

    /// <summary>Text of an image by OCR.</summary>
    public Task<ExtractedText> ReadImageAsync(ReadOnlyMemory<byte> image, CancellationToken ct = default) => Ocr.ReadAsync(image, ct);

    /// <summary>Text of a PDF or DOCX file.</summary>
    public ExtractedText ReadDocument(ReadOnlyMemory<byte> document) => Documents.Read(document);

    /// <summary>Transcript of a voice note (WAV, Ogg/Opus, MP3, ...) by pocketsphinx.</summary>
    public Task<ExtractedText> TranscribeAsync(ReadOnlyMemory<byte> audio, CancellationToken ct = default) => Speech.TranscribeAsync(audio, ct);

    public static EnrichmentRegistry CreateDefault(EnrichmentOptions options, TextWriter? log = null)
    {
        var dataDirectory = options.DataDirectory;
        var lexicon = dataDirectory is not null && File.Exists(Path.Combine(dataDirectory, "sentiment", SentimentLexicon.VaderFile))
            ? SentimentLexicon.Load(Path.Combine(dataDirectory, "sentiment"))
            : throw new DirectoryNotFoundException($"no sentiment lexicon under '{dataDirectory}'; set CAAS_ENRICH_DATA to a folder with sentiment/vader_lexicon.txt");
        var lexiconSentiment = new LexiconSentiment(lexicon);

        var intents = LoadOrTrainIntent(options, log);
        var sentimentModel = LoadOrTrainSentiment(options, lexiconSentiment, log);
        var analyzer = new SentimentAnalyzer(lexiconSentiment, sentimentModel);

        var ocr = new TesseractOcr(options.TesseractPath, options.MaxAttachmentBytes, options.OcrTimeout, options.AttachmentConcurrency);
        var documents = new DocumentText(options.MaxAttachmentBytes);
        var speech = new SpeechRecognizer(options.Speech);
        var enrichers = new List<IEnricher>
        {
            new EntityEnricher(),
            new SentimentEnricher(analyzer, sentimentModel?.Info.Version ?? "vader"),
            new ConversationContextEnricher(new ConversationContextTracker(), intents),
            new OcrEnricher(ocr),
            new DocumentTextEnricher(documents),
            new SpeechEnricher(speech),
        };
        if (intents is not null) enrichers.Insert(1, new IntentEnricher(intents));
        return new EnrichmentRegistry(enrichers, ocr, documents, intents, analyzer) { Speech = speech };
    }

    public static string IntentDirectory(EnrichmentOptions options) => Path.Combine(options.ModelDirectory, "intent");
    public static string SentimentDirectory(EnrichmentOptions options) => Path.Combine(options.ModelDirectory, "sentiment");

    public static IntentModel? LoadOrTrainIntent(EnrichmentOptions options, TextWriter? log = null)
    {
        var directory = IntentDirectory(options);
        if (IntentModel.Exists(directory)) return IntentModel.Load(directory);
        if (!options.TrainMissingModels || options.DataDirectory is null) return null;
        if (IntentTrainingData(options.DataDirectory).Count == 0) return null;
        return TrainShippedIntent(options.DataDirectory, directory, log);
    }

    /// <summary>The shipped intent model's training files present under the data folder.</summary>
    public static IReadOnlyList<string> IntentTrainingData(string dataDirectory) =>
        IntentTrainingFiles.Select(f => Path.Combine(dataDirectory, f)).Where(File.Exists).ToList();

    /// <summary>Trains the shipped intent model from the data folder and saves it to <paramref name="directory"/>.</summary>
    public static IntentModel TrainShippedIntent(string dataDirectory, string directory, TextWriter? log)
    {
        var files = IntentTrainingData(dataDirectory);
        log?.WriteLine($"training the intent model from {string.Join(" + ", files)} into {directory}");
        var examples = files.SelectMany(LabelledTextFile.Read).ToList();
        var model = IntentModel.Train(examples, IntentModel.OptionsFor(examples));
        model.Save(directory);
        return model;
    }

    public static SentimentModel? LoadOrTrainSentiment(EnrichmentOptions options, LexiconSentiment lexicon, TextWriter? log = null)
    {
        var directory = SentimentDirectory(options);
        if (SentimentModel.Exists(directory)) return SentimentModel.Load(directory, lexicon);
        if (!options.TrainMissingModels || options.DataDirectory is null) return null;
        var data = Path.Combine(options.DataDirectory, SentimentTrainingFile);
        if (!File.Exists(data)) return null;
        log?.WriteLine($"training the sentiment model from {data} into {directory}");
        var model = SentimentModel.Train(LabelledTextFile.Read(data), lexicon);
        model.Save(directory);
        return model;
    }
}
