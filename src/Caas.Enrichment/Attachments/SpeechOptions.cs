namespace Caas.Enrichment.Attachments;

/// <summary>
/// Where the speech recogniser finds its tools and model, and its limits. <see cref="FromEnvironment"/> reads
/// CAAS_FFMPEG, CAAS_FFPROBE, CAAS_POCKETSPHINX, CAAS_POCKETSPHINX_MODEL, CAAS_ASR_MAX_SECONDS,
/// CAAS_ASR_TIMEOUT_SECONDS and CAAS_ASR_CONCURRENCY.
/// </summary>
public sealed record SpeechOptions
{
    public const string DebianModel = "/usr/share/pocketsphinx/model/en-us";

    public string FfmpegPath { get; init; } = "ffmpeg";
    public string FfprobePath { get; init; } = "ffprobe";
    public string PocketsphinxPath { get; init; } = "pocketsphinx_continuous";

    /// <summary>Debian pocketsphinx-en-us: the en-us acoustic model folder, en-us.lm.bin and cmudict-en-us.dict.</summary>
    public string ModelDirectory { get; init; } = DebianModel;

    public long MaxBytes { get; init; } = 25L * 1024 * 1024;

    /// <summary>Longer recordings are refused (read from the header or ffprobe before decoding); decoding also stops there.</summary>
    public TimeSpan MaxDuration { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The whole job (probe, decode, recognise) per file.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Recognitions at once: speech has its own small pool, apart from OCR and the text enrichers.</summary>
    public int Concurrency { get; init; } = 1;

    /// <summary>Consecutive timeouts or tool failures that open the breaker, and how long it stays open.</summary>
    public int BreakerFailures { get; init; } = 5;
    public TimeSpan BreakerReset { get; init; } = TimeSpan.FromSeconds(60);

    public static SpeechOptions FromEnvironment()
    {
        static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;
        static double? Number(string name) =>
            Env(name) is { } v && double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) && d > 0 ? d : null;
        var defaults = new SpeechOptions();
        return defaults with
        {
            FfmpegPath = Env("CAAS_FFMPEG") ?? defaults.FfmpegPath,
            FfprobePath = Env("CAAS_FFPROBE") ?? defaults.FfprobePath,
            PocketsphinxPath = Env("CAAS_POCKETSPHINX") ?? defaults.PocketsphinxPath,
            ModelDirectory = Env("CAAS_POCKETSPHINX_MODEL") ?? defaults.ModelDirectory,
            MaxDuration = Number("CAAS_ASR_MAX_SECONDS") is { } s ? TimeSpan.FromSeconds(s) : defaults.MaxDuration,
            Timeout = Number("CAAS_ASR_TIMEOUT_SECONDS") is { } t ? TimeSpan.FromSeconds(t) : defaults.Timeout,
            Concurrency = Number("CAAS_ASR_CONCURRENCY") is { } c ? Math.Max(1, (int)c) : defaults.Concurrency,
        };
    }
}
