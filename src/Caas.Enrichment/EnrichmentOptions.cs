namespace Caas.Enrichment;

/// <summary>
/// Where the enrichers find their models and data, and the limits of the attachment pool.
/// <see cref="FromEnvironment"/> reads CAAS_MODEL_DIR (default ./data/models), CAAS_ENRICH_DATA (default: the
/// enrichment-data folder the build puts beside the binaries), CAAS_INTENT_AUTOTRAIN (0 = off) and CAAS_TESSERACT.
/// </summary>
public sealed record EnrichmentOptions
{
    public string ModelDirectory { get; init; } = Path.Combine("data", "models");
    /// <summary>The lexicons and training data the product ships (enrichment-data): sentiment/ and intent/ below it.</summary>
    public string? DataDirectory { get; init; }
    public string TesseractPath { get; init; } = "tesseract";
    /// <summary>Train and save a missing model from <see cref="DataDirectory"/> instead of failing.</summary>
    public bool TrainMissingModels { get; init; } = true;
    /// <summary>
    /// A node without a shipped intent model trains one from <see cref="DataDirectory"/> in the background on first
    /// start (CAAS_INTENT_AUTOTRAIN=0 turns this off).
    /// </summary>
    public bool AutotrainIntent { get; init; } = true;
    public long MaxAttachmentBytes { get; init; } = 25L * 1024 * 1024;
    public TimeSpan OcrTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>OCR processes at once: attachments have their own small pool so they never starve text messages.</summary>
    public int AttachmentConcurrency { get; init; } = 1;
    /// <summary>The speech recogniser's tools, model, limits and pool (CAAS_ASR_*, CAAS_FFMPEG, CAAS_POCKETSPHINX*).</summary>
    public Attachments.SpeechOptions Speech { get; init; } = new();

    public static EnrichmentOptions FromEnvironment() => new()
    {
        ModelDirectory = Environment.GetEnvironmentVariable("CAAS_MODEL_DIR") is { Length: > 0 } m ? m : Path.Combine("data", "models"),
        DataDirectory = ShippedData.Locate(),
        TesseractPath = Environment.GetEnvironmentVariable("CAAS_TESSERACT") is { Length: > 0 } t ? t : "tesseract",
        AutotrainIntent = AutotrainFromEnvironment(),
        Speech = Attachments.SpeechOptions.FromEnvironment(),
    };

    public static bool AutotrainFromEnvironment() =>
        Environment.GetEnvironmentVariable("CAAS_INTENT_AUTOTRAIN") is not ("0" or "false" or "off");
}

/// <summary>
/// Finds the data the product runs on: CAAS_ENRICH_DATA, else the enrichment-data folder the build copies beside the
/// binaries (lexicons and the shipped intent model's training data, from src/Caas.Enrichment/enrichment-data).
/// </summary>
public static class ShippedData
{
    public const string FolderName = "enrichment-data";

    public static string? Locate()
    {
        if (Environment.GetEnvironmentVariable("CAAS_ENRICH_DATA") is { Length: > 0 } configured) return configured;
        var beside = Path.Combine(AppContext.BaseDirectory, FolderName);
        return Directory.Exists(beside) ? beside : null;
    }

    /// <summary>
    /// The evaluation corpora (a shared/data folder above <paramref name="start"/>): held-out splits for measuring the
    /// enrichers, never read by a running node.
    /// </summary>
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
        dataDirectory ?? throw new DirectoryNotFoundException($"no {FolderName} beside the binaries: set CAAS_ENRICH_DATA to a folder with sentiment/ and intent/");
}
