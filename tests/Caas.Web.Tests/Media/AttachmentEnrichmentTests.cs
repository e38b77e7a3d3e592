using System.Diagnostics;
using System.Text.Json;
using SkiaSharp;

namespace Caas.Web.Tests.Media;

/// <summary>
/// Attachments enriched on a real node (PostgreSQL, the file store, tesseract, pocketsphinx): the message is
/// acknowledged deferred, and the enrichment projection reads the file's bytes from the media store, takes its text
/// out (OCR, speech) and runs the text enrichers over caption + that text, all in the one recorded enrichment.
/// </summary>
public sealed class AttachmentEnrichmentTests(MediaFileNode node) : IClassFixture<MediaFileNode>
{
    private string Tenant { get; } = "t-attenr-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>A PNG with the text drawn large and black on white (DejaVu Sans, from fonts-dejavu-core).</summary>
    private static byte[] TextImage(string text)
    {
        using var bitmap = new SKBitmap(1400, 220);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var typeface = SKTypeface.FromFile("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
        Assert.NotNull(typeface);
        using var font = new SKFont(typeface, 72);
        using var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        canvas.DrawText(text, 40, 140, SKTextAlign.Left, font, paint);
        using var image = SKImage.FromBitmap(bitmap);
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        return png.ToArray();
    }

    /// <summary>The message's recorded (no longer deferred) enrichment from the history, polled for minutes.</summary>
    private static async Task<JsonElement> EnrichedAsync(HttpClient c, string conversation, string messageId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(5);
        while (true)
        {
            var items = (await c.ApiGet($"/v1/messages/conversations/{conversation}")).Body.GetProperty("items");
            var item = items.EnumerateArray().Single(m => m.Str("message_id") == messageId);
            if (item.TryGetProperty("enrichment", out var e) && e.ValueKind == JsonValueKind.Object && !e.TryGetProperty("deferred", out _))
                return e;
            Assert.True(DateTime.UtcNow < deadline, $"The message's enrichment was never recorded: {item}");
            await Task.Delay(200);
        }
    }

    private static JsonElement Result(JsonElement enrichment, string name) =>
        enrichment.GetProperty("results").EnumerateArray().Single(r => r.Str("name") == name).GetProperty("data");

    [Fact]
    public async Task An_image_with_text_is_acknowledged_deferred_then_its_OCR_text_and_the_entities_in_it_are_recorded()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync("bob");
        var bytes = TextImage("INVOICE 4711 total 25 EUR");
        var (uploaded, file) = await alice.UploadAsync(conv, bytes, "invoice.png");
        Assert.True(uploaded == 201, file.ToString());

        var (status, ack) = await alice.ApiPost("/v1/messages",
            new { conversation_id = conv, content = new { type = "image", media_id = file.Str("id"), caption = "please pay" }, message_id = "enr-img-1" });
        Assert.True(status == 201, ack.ToString());

        var enrichment = await EnrichedAsync(alice, conv, "enr-img-1");
        var ocr = Result(enrichment, "ocr");
        Assert.False(ocr.GetProperty("skipped").GetBoolean());
        var extracted = ocr.GetProperty("extracted");
        Assert.True(extracted.GetProperty("ok").GetBoolean(), ocr.ToString());
        Assert.Contains("INVOICE", extracted.Str("text"));
        // The text enrichers ran over caption + extracted text: the amount is found in the image's text.
        var entities = Result(enrichment, "entities").GetProperty("entities").EnumerateArray().ToList();
        Assert.Contains(entities, e => e.Str("type") == "money" && e.Str("text").Contains("25"));
        Assert.Contains("\"skipped\":true", Result(enrichment, "document-text").GetRawText());
        Assert.Equal("not_audio", Result(enrichment, "speech").Str("reason"));
    }

    private static byte[] Pdf(params string[] lines)
    {
        var builder = new UglyToad.PdfPig.Writer.PdfDocumentBuilder();
        var font = builder.AddStandard14Font(UglyToad.PdfPig.Fonts.Standard14Fonts.Standard14Font.Helvetica);
        var page = builder.AddPage(UglyToad.PdfPig.Content.PageSize.A4);
        var y = 760.0;
        foreach (var line in lines)
        {
            page.AddText(line, 12, new UglyToad.PdfPig.Core.PdfPoint(50, y), font);
            y -= 18;
        }
        return builder.Build();
    }

    private static byte[] Docx(params string[] paragraphs)
    {
        using var stream = new MemoryStream();
        using (var document = DocumentFormat.OpenXml.Packaging.WordprocessingDocument.Create(stream, DocumentFormat.OpenXml.WordprocessingDocumentType.Document))
        {
            var main = document.AddMainDocumentPart();
            main.Document = new DocumentFormat.OpenXml.Wordprocessing.Document(new DocumentFormat.OpenXml.Wordprocessing.Body(
                paragraphs.Select(p => new DocumentFormat.OpenXml.Wordprocessing.Paragraph(new DocumentFormat.OpenXml.Wordprocessing.Run(
                    new DocumentFormat.OpenXml.Wordprocessing.Text(p)))).ToArray<DocumentFormat.OpenXml.OpenXmlElement>()));
        }
        return stream.ToArray();
    }

    [Fact]
    public async Task A_pdf_and_a_docx_sent_as_files_get_their_document_text_read_by_the_text_enrichers_and_are_found_by_it()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync("bob");
        var documents = new[]
        {
            (Name: "report.pdf", Type: "application/pdf", Bytes: Pdf("Quarterly report for ACME", "Questions to sales@acme.example"), MessageId: "enr-pdf-1",
                Text: "Quarterly report for ACME", Entity: "email", EntityText: "sales@acme.example", Word: "quarterly"),
            (Name: "notes.docx", Type: "application/vnd.openxmlformats-officedocument.wordprocessingml.document", Bytes: Docx("Meeting notes", "The deposit is 300 EUR, due Friday"), MessageId: "enr-docx-1",
                Text: "The deposit is 300 EUR", Entity: "money", EntityText: "300", Word: "deposit"),
        };
        foreach (var d in documents)
        {
            var (uploaded, file) = await alice.UploadAsync(conv, d.Bytes, d.Name, d.Type);
            Assert.True(uploaded == 201, file.ToString());
            var (status, ack) = await alice.ApiPost("/v1/messages",
                new { conversation_id = conv, content = new { type = "file", media_id = file.Str("id"), caption = "have a look" }, message_id = d.MessageId });
            Assert.True(status == 201, ack.ToString());
        }
        foreach (var d in documents)
        {
            var enrichment = await EnrichedAsync(alice, conv, d.MessageId);
            var document = Result(enrichment, "document-text");
            Assert.False(document.GetProperty("skipped").GetBoolean(), document.ToString());
            var extracted = document.GetProperty("extracted");
            Assert.True(extracted.GetProperty("ok").GetBoolean(), document.ToString());
            Assert.Contains(d.Text, extracted.Str("text"));
            // The text enrichers ran over caption + the document's text.
            var entities = Result(enrichment, "entities").GetProperty("entities").EnumerateArray().ToList();
            Assert.Contains(entities, e => e.Str("type") == d.Entity && e.Str("text").Contains(d.EntityText));
            Assert.Contains("\"skipped\":true", Result(enrichment, "ocr").GetRawText());
            Assert.Equal("not_audio", Result(enrichment, "speech").Str("reason"));
        }
        // Search's files section finds each file by a word of its text (not of its name), once the index has the text.
        foreach (var d in documents)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
            while (true)
            {
                var files = (await alice.ApiGet($"/v1/search?q={d.Word}")).Body.GetProperty("files").GetProperty("items").EnumerateArray().ToList();
                if (files.Any(f => f.Str("message_id") == d.MessageId && f.Str("file_name") == d.Name)) break;
                Assert.True(DateTime.UtcNow < deadline, $"{d.Name} not found by '{d.Word}': {string.Join(", ", files)}");
                await Task.Delay(200);
            }
        }
    }

    [Fact]
    public async Task A_file_whose_bytes_are_gone_before_enrichment_gets_not_applicable_and_the_projection_goes_on()
    {
        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        var (_, file) = await alice.UploadAsync(conv, TextImage("GONE 1"), "gone.png");
        var id = file.Str("id");
        // The bytes vanish from the store (as after an erasure) while the file's entity still says ready.
        Assert.True(await node.MediaStore.DeleteAsync(Tenant, id));

        var (status, ack) = await alice.ApiPost("/v1/messages",
            new { conversation_id = conv, content = new { type = "image", media_id = id }, message_id = "enr-gone-1" });
        Assert.True(status == 201, ack.ToString());
        var enrichment = await EnrichedAsync(alice, conv, "enr-gone-1");
        foreach (var name in new[] { "ocr", "document-text", "speech" })
            Assert.Equal("attachment_missing", Result(enrichment, name).Str("reason"));

        // The projection goes on: a later text message in a deferred stream is still enriched (an attachment next).
        var (_, next) = await alice.UploadAsync(conv, TextImage("RECEIPT 12"), "next.png");
        Assert.Equal(201, (await alice.ApiPost("/v1/messages",
            new { conversation_id = conv, content = new { type = "image", media_id = next.Str("id") }, message_id = "enr-gone-2" })).Status);
        Assert.Contains("RECEIPT", Result(await EnrichedAsync(alice, conv, "enr-gone-2"), "ocr").GetProperty("extracted").Str("text"));
    }

    [Fact]
    public async Task A_voice_note_is_transcribed_and_its_transcript_enriched()
    {
        var dir = Directory.CreateTempSubdirectory("caas-voice-").FullName;
        var wav = Path.Combine(dir, "note.wav");
        using (var espeak = Process.Start(new ProcessStartInfo("espeak-ng", ["-v", "en-us+klatt", "-a", "25", "-w", wav,
                   "please call me tomorrow about the meeting"]) { RedirectStandardError = true })!)
        {
            await espeak.WaitForExitAsync();
            Assert.True(espeak.ExitCode == 0, await espeak.StandardError.ReadToEndAsync());
        }
        var bytes = await File.ReadAllBytesAsync(wav);

        using var alice = node.Client(Tenant, "alice");
        var conv = await alice.CreateGroupAsync();
        var (uploaded, file) = await alice.UploadAsync(conv, bytes, "note.wav", "audio/wav");
        Assert.True(uploaded == 201, file.ToString());
        var (status, ack) = await alice.ApiPost("/v1/messages",
            new { conversation_id = conv, content = new { type = "audio", media_id = file.Str("id") }, message_id = "enr-voice-1" });
        Assert.True(status == 201, ack.ToString());

        var enrichment = await EnrichedAsync(alice, conv, "enr-voice-1");
        var speech = Result(enrichment, "speech");
        var extracted = speech.GetProperty("extracted");
        Assert.True(extracted.GetProperty("ok").GetBoolean(), speech.ToString());
        Assert.False(string.IsNullOrWhiteSpace(extracted.Str("text")), speech.ToString());
        // The transcript went through the text enrichers: sentiment and entities are there.
        Assert.Contains(enrichment.GetProperty("results").EnumerateArray(), r => r.Str("name") == "entities");
        Directory.Delete(dir, true);
    }
}
