namespace Caas.Enrichment;

/// <summary>A message as the enrich stage sees it: its text, when and by whom it was sent, and an optional attachment.</summary>
/// <param name="TimeZoneId">IANA id of the sender's zone ("Europe/Berlin"); relative dates resolve in it.</param>
/// <param name="DefaultPhoneRegion">ISO 3166 region ("US", "GB") for phone numbers written without a country code.</param>
public sealed record EnrichmentInput(
    string TenantId,
    string ConversationId,
    string SenderId,
    string Text,
    DateTimeOffset SentAt,
    string TimeZoneId = "UTC",
    string DefaultPhoneRegion = "US",
    Attachment? Attachment = null)
{
    public static EnrichmentInput ForText(string text, DateTimeOffset? sentAt = null) =>
        new("tenant", "conversation", "sender", text, sentAt ?? DateTimeOffset.UtcNow);
}

/// <summary>Attachment bytes with their declared MIME type ("image/png", "application/pdf").</summary>
public sealed record Attachment(ReadOnlyMemory<byte> Bytes, string ContentType, string? FileName = null);
