using System.Diagnostics;
using System.Globalization;
using Caas.Enrichment.Attachments;
using Caas.Enrichment.Entities;
using Caas.Enrichment.Evaluation;
using Caas.Enrichment.Intent;
using Caas.Enrichment.Sentiment;

namespace Caas.Enrichment.Cli;

/// <summary>
/// The enrichment commands of the <c>caas</c> command line: train, eval and bench. Each writes a report to
/// <c>output</c> whose last line is machine-readable (<c>key=value</c> pairs) and returns a process exit code:
/// 0 done, 1 failed, 2 bad arguments.
/// </summary>
public static class EnrichmentCommands
{
    private static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pgm", ".ppm", ".pbm"];

    /// <summary><c>caas train --task intent|sentiment --data FILE --out DIR</c></summary>
    public static int Train(string task, string dataPath, string outDir, TextWriter output)
    {
        try
        {
            if (!File.Exists(dataPath)) return BadArguments(output, $"no such data file: {dataPath}");
            var examples = LabelledTextFile.Read(dataPath);
            var watch = Stopwatch.StartNew();
            switch (task)
            {
                case "intent":
                {
                    var model = IntentModel.Train(examples, IntentModel.OptionsFor(examples));
                    model.Save(outDir);
                    output.WriteLine($"trained intent model on {examples.Count} examples, {model.Intents.Count} intents, in {watch.Elapsed.TotalSeconds:0.0} s -> {outDir}");
                    return 0;
                }
                case "sentiment":
                {
                    var lexicon = new LexiconSentiment(LoadLexicon());
                    var model = SentimentModel.Train(examples, lexicon);
                    model.Save(outDir);
                    output.WriteLine($"trained sentiment model on {model.Info.Examples} examples in {watch.Elapsed.TotalSeconds:0.0} s -> {outDir}");
                    return 0;
                }
                default:
                    return BadArguments(output, $"unknown task '{task}' (expected intent or sentiment)");
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or System.Text.Json.JsonException or ArgumentException)
        {
            output.WriteLine($"train failed: {e.Message}");
            return 1;
        }
    }

    /// <summary><c>caas eval --task intent|sentiment|entities|ocr|asr --data FILE [--model DIR]</c></summary>
    public static int Eval(string task, string dataPath, string? modelDir, TextWriter output)
    {
        try
        {
            if (!File.Exists(dataPath) && !Directory.Exists(dataPath)) return BadArguments(output, $"no such data: {dataPath}");
            return task switch
            {
                "intent" => EvalIntent(dataPath, modelDir, output),
                "sentiment" => EvalSentiment(dataPath, modelDir, output),
                "entities" => EvalEntities(dataPath, output),
                "ocr" => EvalOcr(dataPath, output),
                "asr" => SpeechEvaluation.Run(dataPath, new SpeechRecognizer(EnrichmentOptions.FromEnvironment().Speech), output),
                _ => BadArguments(output, $"unknown task '{task}' (expected intent, sentiment, entities, ocr or asr)"),
            };
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or System.Text.Json.JsonException or ArgumentException)
        {
            output.WriteLine($"eval failed: {e.Message}");
            return 1;
        }
    }

    private static int EvalIntent(string dataPath, string? modelDir, TextWriter output)
    {
        var model = LoadIntent(modelDir, output);
        if (model is null) return Failed(output, "no intent model: pass --model DIR, or set CAAS_ENRICH_DATA so the shipped one can be trained");
        var examples = LabelledTextFile.Read(dataPath);
        var predictions = model.PredictMany(examples.Select(e => e.Text));
        var pairs = examples.Select((e, i) => (e.Label, predictions[i].Intent)).ToList();
        var report = ClassificationReport.Of(pairs);
        var inScope = pairs.Where(p => p.Label != IntentModel.OutOfScope).ToList();
        var outOfScope = pairs.Where(p => p.Label == IntentModel.OutOfScope).ToList();
        var inScopeAccuracy = inScope.Count == 0 ? double.NaN : inScope.Count(p => p.Label == p.Intent) / (double)inScope.Count;
        var oosRecall = outOfScope.Count == 0 ? double.NaN : outOfScope.Count(p => p.Intent == IntentModel.OutOfScope) / (double)outOfScope.Count;
        output.WriteLine($"intent model {model.Info.Version}: {model.Intents.Count} intents, threshold {model.Info.Options.OutOfScopeThreshold:0.###}");
        output.WriteLine($"examples={examples.Count} in_scope={inScope.Count} out_of_scope={outOfScope.Count}");
        output.WriteLine($"accuracy={F(report.Accuracy)} macro_f1={F(report.MacroF1)} in_scope_accuracy={F(inScopeAccuracy)} oos_recall={F(oosRecall)}");
        return 0;
    }

    private static int EvalSentiment(string dataPath, string? modelDir, TextWriter output)
    {
        var lexicon = new LexiconSentiment(LoadLexicon());
        var model = LoadSentiment(modelDir, lexicon, output);
        var analyzer = new SentimentAnalyzer(lexicon, model);
        var examples = LabelledTextFile.Read(dataPath);
        var twoLabels = !examples.Any(e => e.Label == "neutral");
        var pairs = examples.Select(e =>
        {
            var result = analyzer.Analyze(e.Text);
            var predicted = result.Label switch
            {
                SentimentLabel.Positive => "positive",
                SentimentLabel.Negative => "negative",
                // On a two-label set a neutral answer counts by the sign of its score.
                _ when twoLabels => result.Score >= 0 ? "positive" : "negative",
                _ => "neutral",
            };
            return (e.Label, predicted);
        }).ToList();
        var report = ClassificationReport.Of(pairs);
        output.WriteLine($"sentiment: {(model is null ? "lexicon only" : $"model {model.Info.Version} over the lexicon")}; {examples.Count} examples, {(twoLabels ? "two" : "three")} labels");
        foreach (var (label, pr) in report.PerLabel.OrderBy(p => p.Key))
            output.WriteLine($"{label}: precision={F(pr.Precision)} recall={F(pr.Recall)} f1={F(pr.F1)}");
        output.WriteLine($"accuracy={F(report.Accuracy)} macro_f1={F(report.MacroF1)}");
        return 0;
    }

    private static int EvalEntities(string dataPath, TextWriter output)
    {
        var cases = EntityCaseFile.Read(dataPath);
        var report = EntityEvaluation.Run(cases, new EntityContext(DateTimeOffset.UtcNow));
        output.WriteLine($"entities: {cases.Count} cases, exact span match");
        foreach (var (type, pr) in report.PerType.OrderBy(p => p.Key))
            output.WriteLine($"{type}: precision={F(pr.Precision)} recall={F(pr.Recall)} f1={F(pr.F1)} tp={pr.TruePositives} fp={pr.FalsePositives} fn={pr.FalseNegatives}");
        output.WriteLine($"precision={F(report.Overall.Precision)} recall={F(report.Overall.Recall)} f1={F(report.Overall.F1)}");
        return 0;
    }

    private static int EvalOcr(string folder, TextWriter output)
    {
        if (!Directory.Exists(folder)) return BadArguments(output, $"ocr data must be a folder of images with .txt truth beside each: {folder}");
        var options = EnrichmentOptions.FromEnvironment();
        var ocr = new TesseractOcr(options.TesseractPath, options.MaxAttachmentBytes, options.OcrTimeout);
        var images = Directory.EnumerateFiles(folder)
            .Where(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()) && File.Exists(Path.ChangeExtension(f, ".txt")))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (images.Count == 0) return BadArguments(output, $"no image with a .txt beside it in {folder}");
        long edits = 0, length = 0;
        foreach (var image in images)
        {
            var truth = CharacterErrorRate.NormaliseWhitespace(File.ReadAllText(Path.ChangeExtension(image, ".txt")));
            var result = ocr.ReadAsync(File.ReadAllBytes(image)).GetAwaiter().GetResult();
            var read = CharacterErrorRate.NormaliseWhitespace(result.Text);
            var (e, n) = CharacterErrorRate.Of(truth, read);
            edits += e;
            length += n;
            output.WriteLine($"{Path.GetFileName(image)}: cer={F(n == 0 ? 0 : (double)e / n)}{(result.Ok ? "" : $" error={result.ErrorCode}: {result.Error}")}");
        }
        output.WriteLine($"images={images.Count} characters={length} edits={edits}");
        output.WriteLine($"cer={F(length == 0 ? 0 : (double)edits / length)}");
        return 0;
    }

    /// <summary>
    /// <c>caas bench --enrich</c>: each text enricher, then all of them in turn, on one core over a typical chat
    /// message; prints throughput and p50/p99 latency. OCR is measured apart: it runs in its own pool, off the hot path.
    /// All of them first run in turn for <paramref name="warmup"/> (10 s by default, as every bench warms up), so that
    /// what is timed is the JIT's final code, not its first tiers.
    /// </summary>
    public static int Bench(TextWriter output, TimeSpan? warmup = null)
    {
        var options = EnrichmentOptions.FromEnvironment();
        EnrichmentRegistry registry;
        try
        {
            registry = EnrichmentRegistry.CreateDefault(options, output);
        }
        catch (DirectoryNotFoundException e)
        {
            return Failed(output, e.Message);
        }
        var process = Process.GetCurrentProcess();
        var affinity = OperatingSystem.IsLinux() || OperatingSystem.IsWindows() ? process.ProcessorAffinity : 0;
        if (OperatingSystem.IsLinux() || OperatingSystem.IsWindows()) process.ProcessorAffinity = 1;
        try
        {
            var messages = BenchMessages();
            var text = registry.TextEnrichers;
            output.WriteLine($"enricher bench: {messages.Count} typical messages, one core, {BenchIterations} calls each after warm-up");
            if (text.OfType<IntentEnricher>().FirstOrDefault()?.Shipped is { } intent) output.WriteLine($"intent scorer: {intent.Scorer}");
            var warmFor = warmup ?? TimeSpan.FromSeconds(10);
            var warming = Stopwatch.StartNew();
            var warmCalls = 0L;
            while (warming.Elapsed < warmFor)
            {
                var input = Fresh(messages[(int)(warmCalls++ % messages.Count)]);
                foreach (var enricher in text) enricher.EnrichAsync(input, CancellationToken.None).AsTask().GetAwaiter().GetResult();
            }
            output.WriteLine(FormattableString.Invariant($"warm-up: {warmCalls} messages through every enricher in {warming.Elapsed.TotalSeconds:F1} s"));
            foreach (var enricher in text)
            {
                var latencies = Measure(messages, input => enricher.EnrichAsync(input, CancellationToken.None).AsTask().GetAwaiter().GetResult());
                output.WriteLine(Line(enricher.Name, latencies));
            }
            var together = Measure(messages, input =>
            {
                foreach (var enricher in text) enricher.EnrichAsync(input, CancellationToken.None).AsTask().GetAwaiter().GetResult();
            });
            output.WriteLine(Line("all-text", together));
            output.WriteLine($"throughput={F(1000.0 / together.Average())} p99_ms={F(Percentile(together, 0.99))}");
            return 0;
        }
        finally
        {
            if (OperatingSystem.IsLinux() || OperatingSystem.IsWindows()) process.ProcessorAffinity = affinity;
        }
    }

    private const int BenchIterations = 5_000;

    private static IReadOnlyList<EnrichmentInput> BenchMessages()
    {
        var sentAt = new DateTimeOffset(2026, 11, 23, 9, 30, 0, TimeSpan.Zero);
        string[] texts =
        [
            "Hey, can you call me at +1 (415) 555-0132 tomorrow at 3pm? The invoice was $1,250.00, details at https://example.com/inv/42 😊",
            "what's the weather like in boston this weekend",
            "I am still waiting on my card, it's been 2 weeks :(",
            "ok sounds good, see you next Friday",
            "Please send the contract to anna.meyer@example.org before 5pm",
            "My new address is 221B Baker Street, Apt 4",
        ];
        return texts.Select((t, i) => new EnrichmentInput("tenant", $"conversation-{i % 3}", "sender", t, sentAt, "Europe/Berlin", "US")).ToList();
    }

    private static List<double> Measure(IReadOnlyList<EnrichmentInput> messages, Action<EnrichmentInput> run)
    {
        for (var i = 0; i < 500; i++) run(Fresh(messages[i % messages.Count]));
        var latencies = new List<double>(BenchIterations);
        var watch = new Stopwatch();
        for (var i = 0; i < BenchIterations; i++)
        {
            // Every call gets its own message string, as in the pipeline, so nothing is answered from a cache.
            var input = Fresh(messages[i % messages.Count]);
            watch.Restart();
            run(input);
            latencies.Add(watch.Elapsed.TotalMilliseconds);
        }
        return latencies;
    }

    private static EnrichmentInput Fresh(EnrichmentInput input) => input with { Text = new string(input.Text.AsSpan()) };

    private static string Line(string name, List<double> latencies) =>
        $"{name,-22} throughput={1000.0 / latencies.Average(),10:0}/s p50_ms={F(Percentile(latencies, 0.5))} p99_ms={F(Percentile(latencies, 0.99))}";

    private static double Percentile(List<double> values, double q)
    {
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];
    }

    private static IntentModel? LoadIntent(string? modelDir, TextWriter output)
    {
        if (modelDir is not null)
        {
            var nested = Path.Combine(modelDir, "intent");
            if (IntentModel.Exists(modelDir)) return IntentModel.Load(modelDir);
            if (IntentModel.Exists(nested)) return IntentModel.Load(nested);
            throw new FileNotFoundException($"no {IntentModel.ModelFile} in {modelDir}");
        }
        return EnrichmentRegistry.LoadOrTrainIntent(EnrichmentOptions.FromEnvironment(), output);
    }

    private static SentimentModel? LoadSentiment(string? modelDir, LexiconSentiment lexicon, TextWriter output)
    {
        if (modelDir is not null)
        {
            var nested = Path.Combine(modelDir, "sentiment");
            if (SentimentModel.Exists(modelDir)) return SentimentModel.Load(modelDir, lexicon);
            if (SentimentModel.Exists(nested)) return SentimentModel.Load(nested, lexicon);
            throw new FileNotFoundException($"no {SentimentModel.ModelFile} in {modelDir}");
        }
        return EnrichmentRegistry.LoadOrTrainSentiment(EnrichmentOptions.FromEnvironment(), lexicon, output);
    }

    private static SentimentLexicon LoadLexicon()
    {
        var data = ShippedData.Require(ShippedData.Locate());
        return SentimentLexicon.Load(Path.Combine(data, "sentiment"));
    }

    private static int BadArguments(TextWriter output, string message)
    {
        output.WriteLine(message);
        return 2;
    }

    private static int Failed(TextWriter output, string message)
    {
        output.WriteLine(message);
        return 1;
    }

    private static string F(double value) => double.IsNaN(value) ? "nan" : value.ToString("0.0000", CultureInfo.InvariantCulture);
}
