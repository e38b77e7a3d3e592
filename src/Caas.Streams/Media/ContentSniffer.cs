using System.Text;

namespace Caas.Streams.Media;

/// <summary>
/// A file's content type from its first bytes (magic numbers), never from the client's claim. Executables are
/// recognised so they can be refused; text is plain UTF-8 without control bytes; anything else unknown is
/// application/octet-stream.
/// </summary>
public static class ContentSniffer
{
    /// <summary>How many leading bytes the sniffer looks at.</summary>
    public const int HeadBytes = 512;

    public const string OctetStream = "application/octet-stream";
    public const string Executable = "application/x-executable";
    public const string Docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

    public static string Sniff(ReadOnlySpan<byte> head)
    {
        if (head.IsEmpty) return OctetStream;
        if (Has(head, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])) return "image/png";
        if (Has(head, [0xFF, 0xD8, 0xFF])) return "image/jpeg";
        if (head.StartsWith("GIF87a"u8) || head.StartsWith("GIF89a"u8)) return "image/gif";
        if (head.Length >= 12 && head.StartsWith("RIFF"u8) && head[8..12].SequenceEqual("WEBP"u8)) return "image/webp";
        if (head.Length >= 12 && head.StartsWith("RIFF"u8) && head[8..12].SequenceEqual("WAVE"u8)) return "audio/wav";
        if (head.StartsWith("BM"u8) && head.Length >= 14) return "image/bmp";
        if (head.StartsWith("%PDF-"u8)) return "application/pdf";
        if (head.StartsWith("OggS"u8)) return "audio/ogg";
        if (head.StartsWith("ID3"u8) || (head.Length >= 2 && head[0] == 0xFF && (head[1] & 0xE0) == 0xE0 && (head[1] & 0x06) != 0)) return "audio/mpeg";
        if (head.StartsWith("fLaC"u8)) return "audio/flac";
        if (head.Length >= 12 && head[4..8].SequenceEqual("ftyp"u8))
            return head[8..12].SequenceEqual("M4A "u8) ? "audio/mp4" : head[8..12].SequenceEqual("qt  "u8) ? "video/quicktime" : "video/mp4";
        if (Has(head, [0x1A, 0x45, 0xDF, 0xA3])) return "video/webm";
        if (Has(head, [0x50, 0x4B, 0x03, 0x04]))
            return head.IndexOf("word/"u8) >= 0 || head.IndexOf("[Content_Types].xml"u8) >= 0 ? Docx : "application/zip";
        // Programs: ELF, PE (MZ), Mach-O (both byte orders, fat), scripts with a shebang, Java classes.
        if (Has(head, [0x7F, (byte)'E', (byte)'L', (byte)'F']) || head.StartsWith("MZ"u8) || head.StartsWith("#!"u8)
            || Has(head, [0xFE, 0xED, 0xFA, 0xCE]) || Has(head, [0xFE, 0xED, 0xFA, 0xCF])
            || Has(head, [0xCE, 0xFA, 0xED, 0xFE]) || Has(head, [0xCF, 0xFA, 0xED, 0xFE]) || Has(head, [0xCA, 0xFE, 0xBA, 0xBE]))
            return Executable;
        if (IsText(head))
        {
            var text = Encoding.UTF8.GetString(head).TrimStart('\uFEFF', ' ', '\t', '\r', '\n').ToLowerInvariant();
            if (text.StartsWith("<svg", StringComparison.Ordinal) || (text.StartsWith("<?xml", StringComparison.Ordinal) && text.Contains("<svg", StringComparison.Ordinal)))
                return "image/svg+xml";
            if (text.StartsWith("<!doctype html", StringComparison.Ordinal) || text.StartsWith("<html", StringComparison.Ordinal)
                || text.StartsWith("<script", StringComparison.Ordinal) || text.StartsWith("<head", StringComparison.Ordinal) || text.StartsWith("<body", StringComparison.Ordinal))
                return "text/html";
            return "text/plain";
        }
        return OctetStream;
    }

    private static bool Has(ReadOnlySpan<byte> head, ReadOnlySpan<byte> magic) => head.StartsWith(magic);

    /// <summary>UTF-8 without control bytes but tab and line ends (a multi-byte character cut at the end is fine).</summary>
    private static bool IsText(ReadOnlySpan<byte> head)
    {
        foreach (var b in head)
            if (b < 0x20 && b is not (byte)'\t' and not (byte)'\n' and not (byte)'\r' and not 0x0C) return false;
        var decoder = Encoding.UTF8.GetDecoder();
        var cut = head.Length;
        // Drop a trailing partial sequence before validating.
        for (var i = Math.Max(0, head.Length - 3); i < head.Length; i++)
            if ((head[i] & 0xC0) == 0xC0) { cut = i; break; }
        try
        {
            _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetCharCount(head[..cut]);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    /// <summary>
    /// Whether the client's declared type fits the sniffed one: equal, or no real claim (empty, octet-stream), or the
    /// same container (an MP4 or Ogg or WebM file holds audio or video), or a DOCX declared for a generic zip head.
    /// </summary>
    public static bool Matches(string? declared, string sniffed)
    {
        var d = Normalize(declared);
        if (d.Length == 0 || d == OctetStream || d == sniffed) return true;
        if (Container(d) is { } dc && dc == Container(sniffed)) return true;
        if (d == Docx && sniffed == "application/zip") return true;
        if (d is "image/jpg" or "image/pjpeg" && sniffed == "image/jpeg") return true;
        if (d is "audio/x-wav" or "audio/wave" or "audio/vnd.wave" && sniffed == "audio/wav") return true;
        if (d is "audio/mp3" && sniffed == "audio/mpeg") return true;
        return false;
    }

    public static string Normalize(string? contentType) => (contentType ?? string.Empty).Split(';')[0].Trim().ToLowerInvariant();

    private static string? Container(string type) => type switch
    {
        "video/mp4" or "audio/mp4" or "audio/x-m4a" or "audio/aac" or "video/quicktime" => "mp4",
        "audio/ogg" or "video/ogg" or "audio/opus" or "application/ogg" => "ogg",
        "video/webm" or "audio/webm" or "video/x-matroska" => "webm",
        _ => null,
    };

    /// <summary>Types a browser could run or render as a page: served as attachments, sandboxed, never sniffed.</summary>
    public static bool IsActive(string contentType) => contentType is "image/svg+xml" or "text/html" or "application/xhtml+xml" or "text/xml" or "application/xml";

    /// <summary>Whether <paramref name="contentType"/> is in an allowlist of exact types and <c>family/*</c> wildcards.</summary>
    public static bool Allowed(string contentType, IReadOnlyCollection<string> allowlist) =>
        contentType != Executable && allowlist.Any(a => a == contentType || (a.EndsWith("/*", StringComparison.Ordinal) && contentType.StartsWith(a[..^1], StringComparison.Ordinal)));
}
