using Caas.Enrichment.Attachments;
using Caas.Enrichment.Context;
using Caas.Enrichment.Entities;
using Caas.Enrichment.Intent;
using Caas.Enrichment.Sentiment;

namespace Caas.Enrichment;

/// <summary>Entities found in a message.</summary>
public sealed record EntitiesPayload(IReadOnlyList<Entity> Entities);

/// <summary>The message's intent; <c>oos</c> when no known intent is likely enough.</summary>
public sealed record IntentPayload(string Intent, double Confidence, IReadOnlyList<IntentScore> Alternatives);

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
        var entities = EntityExtractor.Extract(input.Text, context);
        return ValueTask.FromResult(EnrichmentResult.From(this, new EntitiesPayload(entities)));
    }
}

public sealed class IntentEnricher(IntentModel model) : IEnricher
{
    public string Name => "intent";
    public string Version => $"1.0.0+{model.Info.Version}";

    public ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        var prediction = model.Predict(input.Text);
        return ValueTask.FromResult(EnrichmentResult.From(this,
            new IntentPayload(prediction.Intent, Math.Round(prediction.Confidence, 4), prediction.Alternatives)));
    }
}

public sealed class SentimentEnricher(SentimentAnalyzer analyzer, string modelVersion) : IEnricher
{
    public string Name => "sentiment";
    public string Version => $"1.0.0+{modelVersion}";

    public ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        var result = analyzer.Analyze(input.Text);
        return ValueTask.FromResult(EnrichmentResult.From(this, new SentimentPayload(result.Label, result.Score, result.LexiconCompound)));
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
