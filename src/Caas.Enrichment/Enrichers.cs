using Caas.Enrichment.Attachments;
using Caas.Enrichment.Context;
using Caas.Enrichment.Entities;
using Caas.Enrichment.Intent;
using Caas.Enrichment.Sentiment;

namespace Caas.Enrichment;

/// <summary>Entities found in a message.</summary>
public sealed record EntitiesPayload(IReadOnlyList<Entity> Entities);

/// <summary>The message's intent; <c>oos</c> when no known intent is likely enough.</summary>
/// <param name="Model">Which model answered: <c>tenant:v3</c> (the tenant's own, version 3) or <c>shipped</c>.</param>
public sealed record IntentPayload(string Intent, double Confidence, IReadOnlyList<IntentScore> Alternatives, string? Model = null);

/// <summary>The enricher had nothing to say about this message (no model for its tenant); not a failure.</summary>
public sealed record NotApplicablePayload(bool NotApplicable, string Reason);

public sealed record SentimentPayload(SentimentLabel Label, double Score, double LexiconCompound);

/// <summary>Text from an attachment; <see cref="Skipped"/> when the message had nothing this enricher reads.</summary>
public sealed record AttachmentTextPayload(bool Skipped, ExtractedText? Extracted);

public sealed class EntityEnricher : IEnricher
{
    public string Name => "entities";
    public string Version => "1.0.0";

    public ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        var context = new EntityContext(input.SentAt, input.TimeZoneId, input.DefaultPhoneRegion);
        // Off the caller's thread, so the enrich stage can stop waiting at its budget however long the text takes;
        // the token stops the extraction between recognisers.
        return new ValueTask<EnrichmentResult>(Task.Run(() =>
            EnrichmentResult.From(this, new EntitiesPayload(EntityExtractor.Extract(input.Text, context, ct: ct))), ct));
    }
}

/// <summary>
/// Intent from the tenant's own model when it has one (see <see cref="TenantIntentModels"/>), else from the shipped
/// model, else "not applicable" (a result, not a failure). The result's version names the model that answered.
/// </summary>
public sealed class IntentEnricher : IEnricher
{
    private const string CodeVersion = "1.1.0";
    private readonly Func<IntentModel?> _shipped;
    private readonly TenantIntentModels? _tenants;

    public IntentEnricher(IntentModel model) : this(() => model, null)
    {
    }

    /// <param name="shipped">The shipped model, or null while it loads or when there is none.</param>
    /// <param name="tenants">Tenants' own models, or null when tenants cannot train one.</param>
    public IntentEnricher(Func<IntentModel?> shipped, TenantIntentModels? tenants)
    {
        _shipped = shipped;
        _tenants = tenants;
    }

    public string Name => "intent";
    public string Version => _shipped() is { } m ? $"{CodeVersion}+{m.Info.Version}" : CodeVersion;

    /// <summary>The shipped model (null until it is ready).</summary>
    public IntentModel? Shipped => _shipped();

    public ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        if (_tenants?.Get(input.TenantId) is { } own)
            return ValueTask.FromResult(Answer(own.Model, $"{CodeVersion}+tenant-v{own.Version}", $"tenant:v{own.Version}", input.Text));
        if (_shipped() is { } shipped)
            return ValueTask.FromResult(Answer(shipped, $"{CodeVersion}+{shipped.Info.Version}", "shipped", input.Text));
        return ValueTask.FromResult(new EnrichmentResult(Name, CodeVersion, new NotApplicablePayload(true, "no_intent_model")));
    }

    private EnrichmentResult Answer(IntentModel model, string version, string source, string text)
    {
        var prediction = model.Predict(text);
        return new EnrichmentResult(Name, version,
            new IntentPayload(prediction.Intent, Math.Round(prediction.Confidence, 4), prediction.Alternatives, source));
    }
}

/// <summary>Sentiment; starts with whatever analyzer is at hand (the lexicon) and may be upgraded once a model has loaded.</summary>
public sealed class SentimentEnricher(SentimentAnalyzer analyzer, string modelVersion) : IEnricher
{
    private volatile Current _current = new(analyzer, $"1.0.0+{modelVersion}");

    private sealed record Current(SentimentAnalyzer Analyzer, string Version);

    public string Name => "sentiment";
    public string Version => _current.Version;

    /// <summary>Swaps in a better analyzer (the trained model over the lexicon) without a restart.</summary>
    public void Upgrade(SentimentAnalyzer better, string betterVersion) => _current = new Current(better, $"1.0.0+{betterVersion}");

    public ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        var current = _current;
        var result = current.Analyzer.Analyze(input.Text);
        return ValueTask.FromResult(new EnrichmentResult(Name, current.Version, new SentimentPayload(result.Label, result.Score, result.LexiconCompound)));
    }
}

public sealed class ConversationContextEnricher(ConversationContextTracker tracker, IntentModel? intents) : IEnricher
{
    public string Name => "conversation-context";
    public string Version => "1.0.0";

    public ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        var intent = intents?.Predict(input.Text).Intent;
        var key = $"{input.TenantId}/{input.ConversationId}";
        return ValueTask.FromResult(EnrichmentResult.From(this, tracker.Observe(key, input.Text, intent)));
    }
}

/// <summary>OCR of image attachments; runs in the attachment pool, off the text hot path.</summary>
public sealed class OcrEnricher(TesseractOcr ocr) : IEnricher
{
    public string Name => "ocr";
    public string Version => "1.0.0+tesseract";
    public bool NeedsAttachment => true;

    public async ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        if (input.Attachment is not { } attachment || !FileSniffer.IsImage(FileSniffer.Sniff(attachment.Bytes.Span)))
            return EnrichmentResult.From(this, new AttachmentTextPayload(true, null));
        var text = await ocr.ReadAsync(attachment.Bytes, ct).ConfigureAwait(false);
        return EnrichmentResult.From(this, new AttachmentTextPayload(false, text));
    }
}

/// <summary>Text of PDF and DOCX attachments.</summary>
public sealed class DocumentTextEnricher(DocumentText documents) : IEnricher
{
    public string Name => "document-text";
    public string Version => "1.0.0+pdfpig-openxml";
    public bool NeedsAttachment => true;

    public ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        if (input.Attachment is not { } attachment || FileSniffer.Sniff(attachment.Bytes.Span) is not (FileKind.Pdf or FileKind.Zip or FileKind.OleCompound))
            return ValueTask.FromResult(EnrichmentResult.From(this, new AttachmentTextPayload(true, null)));
        return ValueTask.FromResult(EnrichmentResult.From(this, new AttachmentTextPayload(false, documents.Read(attachment.Bytes))));
    }
}

/// <summary>
/// Transcripts of voice notes (pocketsphinx); runs in the attachment pool, off the text hot path. A message without a
/// recording, or a node without ffmpeg, pocketsphinx or its model, gets "not applicable" (a result, not a failure).
/// </summary>
public sealed class SpeechEnricher(SpeechRecognizer speech) : IEnricher
{
    public string Name => "speech";
    public string Version => "1.0.0+pocketsphinx";
    public bool NeedsAttachment => true;

    public async ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        if (input.Attachment is not { } attachment || AudioSniffer.Sniff(attachment.Bytes.Span) == AudioKind.Unknown)
            return EnrichmentResult.From(this, new NotApplicablePayload(true, "not_audio"));
        var text = await speech.TranscribeAsync(attachment.Bytes, ct).ConfigureAwait(false);
        if (text.ErrorCode == ExtractionErrors.AsrUnavailable)
            return EnrichmentResult.From(this, new NotApplicablePayload(true, ExtractionErrors.AsrUnavailable));
        return EnrichmentResult.From(this, new AttachmentTextPayload(false, text));
    }
}
