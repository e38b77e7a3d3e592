using System.Text;
using Caas.Enrichment.Attachments;
using Caas.Enrichment.Evaluation;
using DocumentFormat.OpenXml;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;
using UglyToad.PdfPig.Core;
using UglyToad.PdfPig.Fonts.Standard14Fonts;
using UglyToad.PdfPig.Writer;
using Xunit;

namespace Caas.Enrichment.Tests;

public class AttachmentTests
{
    private const string Paragraph = "Invoice 4711 is due on Friday.\nPlease transfer the amount to our account\nand reply to billing@example.com today.";

    public static TheoryData<string> Fonts => new()
    {
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf",
        "/usr/share/fonts/truetype/freefont/FreeMono.ttf",
    };

    private static byte[] Render(string text, string font, string dir, int pointSize = 32)
    {
        var path = Path.Combine(dir, $"{Path.GetFileNameWithoutExtension(font)}-{pointSize}.png");
        TestData.Run("convert", "-background", "white", "-fill", "black", "-font", font, "-pointsize", pointSize.ToString(),
            $"label:{text}", "-bordercolor", "white", "-border", "24", path);
        return File.ReadAllBytes(path);
    }

    [Theory]
    [MemberData(nameof(Fonts))]
    public async Task Ocr_reads_clean_rendered_text_in_several_fonts(string font)
    {
        Assert.True(File.Exists(font), $"{font} missing: run scripts/deps/enrichment.sh");
        var image = Render(Paragraph, font, TestData.NewTempDirectory());
        var result = await new TesseractOcr().ReadAsync(image);
        Assert.True(result.Ok, result.Error);
        var truth = CharacterErrorRate.NormaliseWhitespace(Paragraph);
        var (edits, length) = CharacterErrorRate.Of(truth, CharacterErrorRate.NormaliseWhitespace(result.Text));
        Assert.True((double)edits / length <= 0.03, $"CER {(double)edits / length:0.000}: '{result.Text}'");
    }

    [Fact]
    public async Task A_corrupt_image_gets_a_clear_error()
    {
        var bytes = new byte[4096];
        FileSniffer.PngSignature.CopyTo(bytes);
        new Random(7).NextBytes(bytes.AsSpan(8));
        var result = await new TesseractOcr().ReadAsync(bytes);
        Assert.False(result.Ok);
        Assert.Equal(ExtractionErrors.CorruptImage, result.ErrorCode);
        Assert.False(string.IsNullOrWhiteSpace(result.Error));
    }

    [Fact]
    public async Task Bytes_that_are_no_image_are_refused_before_tesseract_runs()
    {
        var result = await new TesseractOcr().ReadAsync(Encoding.UTF8.GetBytes("just some text, not a picture"));
        Assert.Equal(ExtractionErrors.UnsupportedType, result.ErrorCode);
        Assert.Equal(ExtractionErrors.Empty, (await new TesseractOcr().ReadAsync(Array.Empty<byte>())).ErrorCode);
    }

    [Fact]
    public async Task A_50_MB_file_is_refused_by_size_for_ocr_and_documents()
    {
        var huge = new byte[50 * 1024 * 1024];
        "%PDF-1.7\n"u8.CopyTo(huge);
        Assert.Equal(ExtractionErrors.TooLarge, new DocumentText().Read(huge).ErrorCode);
        FileSniffer.PngSignature.CopyTo(huge);
        Assert.Equal(ExtractionErrors.TooLarge, (await new TesseractOcr().ReadAsync(huge)).ErrorCode);
    }

    [Fact]
    public async Task A_missing_tesseract_is_reported_not_thrown()
    {
        var image = Render("hello", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", TestData.NewTempDirectory());
        var result = await new TesseractOcr("/nonexistent/tesseract").ReadAsync(image);
        Assert.Equal(ExtractionErrors.OcrUnavailable, result.ErrorCode);
    }

    private static byte[] BuildPdf(params string[] pages)
    {
        var builder = new PdfDocumentBuilder();
        var font = builder.AddStandard14Font(Standard14Font.Helvetica);
        foreach (var text in pages)
        {
            var page = builder.AddPage(UglyToad.PdfPig.Content.PageSize.A4);
            var y = 760.0;
            foreach (var line in text.Split('\n'))
            {
                page.AddText(line, 12, new PdfPoint(50, y), font);
                y -= 18;
            }
        }
        return builder.Build();
    }

    [Fact]
    public void Pdf_text_comes_out_page_by_page()
    {
        var pdf = BuildPdf("Quarterly report for ACME\nRevenue grew 12 percent", "Second page: contact sales@acme.example");
        var result = new DocumentText().Read(pdf);
        Assert.True(result.Ok, result.Error);
        Assert.Equal(2, result.Pages);
        Assert.Contains("Quarterly report for ACME", result.Text);
        Assert.Contains("Revenue grew 12 percent", result.Text);
        Assert.Contains("sales@acme.example", result.Text);
    }

    [Fact]
    public void An_encrypted_pdf_gets_a_clear_error()
    {
        var dir = TestData.NewTempDirectory();
        var plain = Path.Combine(dir, "plain.pdf");
        var locked = Path.Combine(dir, "locked.pdf");
        File.WriteAllBytes(plain, BuildPdf("secret numbers"));
        TestData.Run("qpdf", "--encrypt", "user-secret", "owner-secret", "256", "--", plain, locked);
        var result = new DocumentText().Read(File.ReadAllBytes(locked));
        Assert.False(result.Ok);
        Assert.Equal(ExtractionErrors.EncryptedDocument, result.ErrorCode);
    }

    [Fact]
    public void A_truncated_pdf_gets_a_clear_error()
    {
        var pdf = BuildPdf("this will be cut");
        var result = new DocumentText().Read(pdf.AsMemory(0, pdf.Length / 3));
        Assert.False(result.Ok);
        Assert.Equal(ExtractionErrors.CorruptDocument, result.ErrorCode);
    }

    private static byte[] BuildDocx(params string[] paragraphs)
    {
        using var stream = new MemoryStream();
        using (var document = WordprocessingDocument.Create(stream, WordprocessingDocumentType.Document))
        {
            var main = document.AddMainDocumentPart();
            main.Document = new Document(new Body(paragraphs.Select(p => new DocumentFormat.OpenXml.Wordprocessing.Paragraph(new Run(new Text(p)))).ToArray<OpenXmlElement>()));
        }
        return stream.ToArray();
    }

    [Fact]
    public void Docx_text_comes_out_paragraph_by_paragraph()
    {
        var result = new DocumentText().Read(BuildDocx("Meeting notes", "Ship the release on 1 December", "Owner: Dana"));
        Assert.True(result.Ok, result.Error);
        Assert.Equal("Meeting notes\nShip the release on 1 December\nOwner: Dana", result.Text);
    }

    [Fact]
    public void A_zip_that_is_no_docx_and_an_ole_file_get_clear_errors()
    {
        var zipGarbage = new byte[2048];
        new Random(3).NextBytes(zipGarbage);
        new byte[] { 0x50, 0x4B, 0x03, 0x04 }.CopyTo(zipGarbage, 0);
        Assert.Equal(ExtractionErrors.CorruptDocument, new DocumentText().Read(zipGarbage).ErrorCode);

        var ole = new byte[1024];
        new byte[] { 0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1 }.CopyTo(ole, 0);
        Assert.Equal(ExtractionErrors.EncryptedDocument, new DocumentText().Read(ole).ErrorCode);
        Assert.Equal(ExtractionErrors.UnsupportedType, new DocumentText().Read(Encoding.UTF8.GetBytes("plain text")).ErrorCode);
    }

    [Fact]
    public async Task Attachment_enrichers_read_their_kind_and_skip_the_rest()
    {
        var input = EnrichmentInput.ForText("see attached") with { Attachment = new Attachment(BuildDocx("Hello from the attachment"), "application/vnd.openxmlformats-officedocument.wordprocessingml.document") };
        var documents = new DocumentTextEnricher(new DocumentText());
        var ocr = new OcrEnricher(new TesseractOcr());

        var read = (AttachmentTextPayload)(await documents.EnrichAsync(input, CancellationToken.None)).Payload;
        Assert.False(read.Skipped);
        Assert.Equal("Hello from the attachment", read.Extracted!.Text);

        var skipped = (AttachmentTextPayload)(await ocr.EnrichAsync(input, CancellationToken.None)).Payload;
        Assert.True(skipped.Skipped);
        Assert.True(documents.NeedsAttachment && ocr.NeedsAttachment);
    }
}
