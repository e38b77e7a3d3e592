using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace Caas.Enrichment.Attachments;

/// <summary>
/// Text from images with the Tesseract command-line program (Debian tesseract-ocr, English data). Each call runs one
/// tesseract process on a temporary file under a time limit; at most <c>concurrency</c> run at once, so OCR has its
/// own bounded pool and cannot take the cores text messages need.
/// </summary>
public sealed class TesseractOcr(string tesseractPath = "tesseract", long maxBytes = TesseractOcr.DefaultMaxBytes, TimeSpan? timeout = null, int concurrency = 1)
{
    public const long DefaultMaxBytes = 20L * 1024 * 1024;
    private const string Method = "ocr";

    private readonly SemaphoreSlim _pool = new(Math.Max(1, concurrency));
    private readonly TimeSpan _timeout = timeout ?? TimeSpan.FromSeconds(60);

    public async Task<ExtractedText> ReadAsync(ReadOnlyMemory<byte> image, CancellationToken ct = default)
    {
        if (image.Length == 0) return ExtractedText.Failure(Method, ExtractionErrors.Empty, "the image is empty");
        if (image.Length > maxBytes)
            return ExtractedText.Failure(Method, ExtractionErrors.TooLarge, $"the image is {image.Length} bytes; the limit is {maxBytes}");
        var kind = FileSniffer.Sniff(image.Span);
        if (!FileSniffer.IsImage(kind))
            return ExtractedText.Failure(Method, ExtractionErrors.UnsupportedType, "not a PNG, JPEG, GIF, BMP, TIFF, WebP or PNM image");

        await _pool.WaitAsync(ct).ConfigureAwait(false);
        var path = Path.Combine(Path.GetTempPath(), $"caas-ocr-{Guid.NewGuid():N}.{kind.ToString().ToLowerInvariant()}");
        try
        {
            await File.WriteAllBytesAsync(path, image.ToArray(), ct).ConfigureAwait(false);
            return await RunAsync(path, ct).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(path);
            _pool.Release();
        }
    }

    private async Task<ExtractedText> RunAsync(string imagePath, CancellationToken ct)
    {
        var start = new ProcessStartInfo(tesseractPath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        foreach (var arg in new[] { imagePath, "stdout", "-l", "eng", "--psm", "3" }) start.ArgumentList.Add(arg);
        // One thread per process: parallelism comes from the pool, not from inside tesseract.
        start.Environment["OMP_THREAD_LIMIT"] = "1";

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new Win32Exception("no process");
        }
        catch (Win32Exception e)
        {
            return ExtractedText.Failure(Method, ExtractionErrors.OcrUnavailable, $"cannot run '{tesseractPath}': {e.Message} (install tesseract-ocr tesseract-ocr-eng)");
        }

        using (process)
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(_timeout);
            var stdout = process.StandardOutput.ReadToEndAsync(limit.Token);
            var stderr = process.StandardError.ReadToEndAsync(limit.Token);
            try
            {
                await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
                var text = await stdout.ConfigureAwait(false);
                var errors = await stderr.ConfigureAwait(false);
                if (process.ExitCode != 0)
                    return ExtractedText.Failure(Method, ExtractionErrors.CorruptImage, $"tesseract could not read the image: {FirstLine(errors)}");
                return ExtractedText.Success(Tidy(text), 1, Method);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                process.Kill(entireProcessTree: true);
                return ExtractedText.Failure(Method, ExtractionErrors.Timeout, $"OCR took longer than {_timeout.TotalSeconds:0} s");
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw;
            }
        }
    }

    private static string FirstLine(string s)
    {
        var line = s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .FirstOrDefault(l => l.Contains("Error", StringComparison.OrdinalIgnoreCase) || l.Contains("cannot", StringComparison.OrdinalIgnoreCase))
            ?? s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        return line ?? "no detail";
    }

    // Tesseract ends pages with a form feed and pads lines; keep the line breaks, drop the rest.
    private static string Tidy(string text) =>
        string.Join('\n', text.Replace("\f", "").Split('\n').Select(l => l.TrimEnd())).Trim();
}
