using Caas.Enrichment;
using Caas.Enrichment.Attachments;
using Caas.Streams.Media;
using Caas.Streams.Pipeline;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Node;

/// <summary>
/// The node's attachment enrichers (OCR with tesseract, PDF/DOCX text, speech with pocketsphinx) over its media store,
/// for the enrichment projection; none when enrichment is off (CAAS_ENRICHMENT=off) or the node serves no media.
/// </summary>
internal static class NodeAttachmentEnrichers
{
    public static AttachmentEnrichment? Create(IServiceProvider sp, PipelineSettings settings)
    {
        var options = sp.GetRequiredService<NodeOptions>();
        if (!options.Enrichment || sp.GetService<IMediaStore>() is not { } store) return null;
        var o = options.EnrichmentSettings();
        IEnricher[] enrichers =
        [
            new OcrEnricher(new TesseractOcr(o.TesseractPath, o.MaxAttachmentBytes, o.OcrTimeout, o.AttachmentConcurrency)),
            new DocumentTextEnricher(new DocumentText(o.MaxAttachmentBytes)),
            new SpeechEnricher(new SpeechRecognizer(o.Speech)),
        ];
        // Above the enrichers' own limits (OCR's and the recogniser's timeouts): the breaker only catches a hung call.
        var callTimeout = (o.OcrTimeout > o.Speech.Timeout ? o.OcrTimeout : o.Speech.Timeout) + TimeSpan.FromMinutes(1);
        return new AttachmentEnrichment(enrichers, store, o.MaxAttachmentBytes, callTimeout, settings);
    }
}
