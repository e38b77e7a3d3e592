namespace Caas.Enrichment;

/// <summary>
/// Where the enrichers find their models and data, and the limits of the attachment pool.
/// <see cref="FromEnvironment"/> reads CAAS_MODEL_DIR (default ./data/models), CAAS_ENRICH_DATA (default: the
/// shared/data folder found by walking up from the current directory) and CAAS_TESSERACT (default "tesseract").
/// </summary>
public sealed record EnrichmentOptions
{
    public string ModelDirectory { get; init; } = Path.Combine("data", "models");
    /// <summary>The labelled data and lexicons (shared/data): sentiment/ and intent/ below it.</summary>
    public string? DataDirectory { get; init; }
    public string TesseractPath { get; init; } = "tesseract";
    /// <summary>Train and save a missing model from <see cref="DataDirectory"/> instead of failing.</summary>
    public bool TrainMissingModels { get; init; } = true;
    public long MaxAttachmentBytes { get; init; } = 25L * 1024 * 1024;
    public TimeSpan OcrTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>OCR processes at once: attachments have their own small pool so they never starve text messages.</summary>
    public int AttachmentConcurrency { get; init; } = 1;

    public static EnrichmentOptions FromEnvironment() => new()
    {
        ModelDirectory = Environment.GetEnvironmentVariable("CAAS_MODEL_DIR") is { Length: > 0 } m ? m : Path.Combine("data", "models"),
        DataDirectory = ShippedData.Locate(),
        TesseractPath = Environment.GetEnvironmentVariable("CAAS_TESSERACT") is { Length: > 0 } t ? t : "tesseract",
    };
}

/// <summary>Finds the shipped labelled data: CAAS_ENRICH_DATA, else the nearest shared/data above the current or the app directory.</summary>
public static class ShippedData
{
    public static string? Locate()
    {
        if (Environment.GetEnvironmentVariable("CAAS_ENRICH_DATA") is { Length: > 0 } configured) return configured;
        return WalkUp(Directory.GetCurrentDirectory()) ?? WalkUp(AppContext.BaseDirectory);
    }

    public static string? WalkUp(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "data");
            if (Directory.Exists(candidate)) return candidate;
        }
        return null;
    }

    public static string Require(string? dataDirectory) =>
        dataDirectory ?? throw new DirectoryNotFoundException("no shipped data: set CAAS_ENRICH_DATA or run below a folder that holds shared/data");
}
