using System.Text;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;
using UglyToad.PdfPig;
using UglyToad.PdfPig.Exceptions;

namespace Caas.Enrichment.Attachments;

/// <summary>Text from PDF (PdfPig) and DOCX (Open XML SDK) attachments, recognised by their bytes.</summary>
public sealed class DocumentText(long maxBytes = DocumentText.DefaultMaxBytes)
{
    public const long DefaultMaxBytes = 25L * 1024 * 1024;

    public ExtractedText Read(ReadOnlyMemory<byte> bytes)
    {
        if (bytes.Length == 0) return ExtractedText.Failure("document", ExtractionErrors.Empty, "the document is empty");
        if (bytes.Length > maxBytes)
            return ExtractedText.Failure("document", ExtractionErrors.TooLarge, $"the document is {bytes.Length} bytes; the limit is {maxBytes}");
        return FileSniffer.Sniff(bytes.Span) switch
        {
            FileKind.Pdf => ReadPdf(bytes),
            FileKind.Zip => ReadDocx(bytes),
            FileKind.OleCompound => ExtractedText.Failure("document", ExtractionErrors.EncryptedDocument,
                "an OLE compound file: a password-protected Office document or a legacy .doc, neither of which can be read"),
            _ => ExtractedText.Failure("document", ExtractionErrors.UnsupportedType, "not a PDF or DOCX document"),
        };
    }

    public static ExtractedText ReadPdf(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            using var pdf = PdfDocument.Open(bytes.ToArray());
            var text = new StringBuilder();
            foreach (var page in pdf.GetPages())
            {
                if (text.Length > 0) text.Append("\n\n");
                text.Append(string.Join(' ', page.GetWords().Select(w => w.Text)));
            }
            return ExtractedText.Success(text.ToString().Trim(), pdf.NumberOfPages, "pdf");
        }
        catch (PdfDocumentEncryptedException)
        {
            return ExtractedText.Failure("pdf", ExtractionErrors.EncryptedDocument, "the PDF is encrypted with a password");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // PdfPig reports a damaged file through many exception types (format, cast, key, index); all of them mean
            // the same to a sender, and none may take the enrich stage down.
            return ExtractedText.Failure("pdf", ExtractionErrors.CorruptDocument, $"the PDF cannot be read: {e.Message}");
        }
    }

    public static ExtractedText ReadDocx(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            using var stream = new MemoryStream(bytes.ToArray(), writable: false);
            using var document = WordprocessingDocument.Open(stream, false);
            var body = document.MainDocumentPart?.Document?.Body;
            if (body is null) return ExtractedText.Failure("docx", ExtractionErrors.CorruptDocument, "the file has no Word document body");
            var paragraphs = body.Descendants<Paragraph>().Select(ParagraphText).ToList();
            return ExtractedText.Success(string.Join('\n', paragraphs).Trim(), 1, "docx");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A damaged package surfaces as FileFormatException, InvalidDataException, XmlException or
            // OpenXmlPackageException depending on where it breaks; a sender only needs to know it is unreadable.
            return ExtractedText.Failure("docx", ExtractionErrors.CorruptDocument, $"the DOCX cannot be read: {e.Message}");
        }
    }

    private static string ParagraphText(Paragraph paragraph)
    {
        var text = new StringBuilder();
        foreach (var element in paragraph.Descendants())
        {
            switch (element)
            {
                case Text t: text.Append(t.Text); break;
                case TabChar: text.Append('\t'); break;
                case Break or CarriageReturn: text.Append('\n'); break;
            }
        }
        return text.ToString();
    }
}
