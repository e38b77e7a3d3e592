using System.Text.Json;
using System.Text.Json.Serialization;

namespace Caas.Enrichment;

/// <summary>
/// What one enricher added to one message. The payload is a plain record of the enricher's own, serialised with
/// <see cref="EnrichmentJson.Options"/>; it may hold personal data (phones, e-mails) and so lives and dies with the message.
/// </summary>
public sealed record EnrichmentResult(string Enricher, string Version, object Payload)
{
    public static EnrichmentResult From(IEnricher enricher, object payload) => new(enricher.Name, enricher.Version, payload);

    public string PayloadJson() => JsonSerializer.Serialize(Payload, Payload.GetType(), EnrichmentJson.Options);
}

public static class EnrichmentJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };
}
