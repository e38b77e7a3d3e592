namespace Caas.Enrichment.Attachments;

/// <summary>Text taken out of an attachment, or why none could be: a value, never an exception, so one bad file cannot stall the stage.</summary>
public sealed record ExtractedText(bool Ok, string Text, int Pages, string Method, string? ErrorCode = null, string? Error = null)
{
    public static ExtractedText Success(string text, int pages, string method) => new(true, text, pages, method);

    public static ExtractedText Failure(string method, string code, string message) => new(false, "", 0, method, code, message);
}

/// <summary>Stable error codes of attachment extraction, as stored with the message.</summary>
public static class ExtractionErrors
{
    public const string TooLarge = "attachment_too_large";
    public const string Empty = "attachment_empty";
    public const string UnsupportedType = "unsupported_content_type";
    public const string CorruptImage = "corrupt_image";
    public const string CorruptDocument = "corrupt_document";
    public const string EncryptedDocument = "encrypted_document";
    public const string OcrUnavailable = "ocr_unavailable";
    public const string Timeout = "extraction_timeout";
    public const string AudioTooLong = "audio_too_long";
    public const string CorruptAudio = "corrupt_audio";
    /// <summary>ffmpeg, pocketsphinx or its model is missing: the speech enricher answers "not applicable".</summary>
    public const string AsrUnavailable = "asr_unavailable";
    public const string AsrFailed = "asr_failed";
    public const string AsrBreakerOpen = "asr_breaker_open";
}

/// <summary>What kind of file the bytes are, by their first bytes rather than the declared MIME type, which senders get wrong.</summary>
public enum FileKind { Unknown, Png, Jpeg, Gif, Bmp, Tiff, Webp, Pnm, Pdf, Zip, OleCompound }

public static class FileSniffer
{
    public static ReadOnlySpan<byte> PngSignature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    public static FileKind Sniff(ReadOnlySpan<byte> b)
    {
        if (b.StartsWith(PngSignature)) return FileKind.Png;
        if (b.Length >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return FileKind.Jpeg;
        if (b.StartsWith("GIF87a"u8) || b.StartsWith("GIF89a"u8)) return FileKind.Gif;
        if (b.StartsWith("BM"u8) && b.Length > 14) return FileKind.Bmp;
        if (b.StartsWith("II*\0"u8) || b.StartsWith("MM\0*"u8)) return FileKind.Tiff;
        if (b.Length >= 12 && b.StartsWith("RIFF"u8) && b[8..12].SequenceEqual("WEBP"u8)) return FileKind.Webp;
        if (b.Length >= 2 && b[0] == (byte)'P' && b[1] is >= (byte)'1' and <= (byte)'6') return FileKind.Pnm;
        if (b.IndexOf("%PDF-"u8) is >= 0 and < 1024) return FileKind.Pdf;
        if (b.StartsWith("PK"u8) && b.Length >= 4 && b[2] == 3 && b[3] == 4) return FileKind.Zip;
        if (b.StartsWith(new byte[] { 0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1 })) return FileKind.OleCompound;
        return FileKind.Unknown;
    }

    public static bool IsImage(FileKind kind) =>
        kind is FileKind.Png or FileKind.Jpeg or FileKind.Gif or FileKind.Bmp or FileKind.Tiff or FileKind.Webp or FileKind.Pnm;
}
