using System.Buffers.Binary;
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Caas.Enrichment.Attachments;

/// <summary>
/// Transcripts of voice notes (WAV, Ogg/Opus, MP3, FLAC, WebM, M4A) with Debian's pocketsphinx (en-us model). Each
/// call checks the size and the duration (from a WAV header, else ffprobe) before anything is decoded, decodes with
/// ffmpeg to 16 kHz mono 16-bit PCM (stopping at the duration limit whatever the header said), then runs one
/// pocketsphinx process; the whole job is under one time limit, at most <see cref="SpeechOptions.Concurrency"/> run at
/// once (the recogniser's own pool), and a breaker stops calling the tools after repeated timeouts or crashes.
/// Every outcome is a value (<see cref="ExtractedText"/>), never an exception.
/// </summary>
public sealed class SpeechRecognizer
{
    private const string Method = "asr";
    private const int SampleRate = 16_000;

    /// <summary>
    /// Decoder settings measured on the espeak-ng evaluation set (scripts/asr-eval-set.sh, README "ASR"): noise removal
    /// off (voice notes are close-talk and clean; spectral subtraction eats quiet phones).
    /// </summary>
    public static readonly IReadOnlyList<string> DecoderArguments = ["-remove_noise", "no"];

    private readonly SpeechOptions _options;
    private readonly SemaphoreSlim _pool;
    private readonly object _gate = new();
    private int _failures;
    private DateTimeOffset _openUntil = DateTimeOffset.MinValue;

    public SpeechRecognizer(SpeechOptions? options = null)
    {
        _options = options ?? new SpeechOptions();
        _pool = new SemaphoreSlim(Math.Max(1, _options.Concurrency));
    }

    public SpeechOptions Options => _options;

    /// <summary>Null when ffmpeg, pocketsphinx and the model are all there; else what is missing.</summary>
    public string? Unavailable()
    {
        if (ResolveTool(_options.FfmpegPath) is null) return $"no '{_options.FfmpegPath}' (install ffmpeg)";
        if (ResolveTool(_options.PocketsphinxPath) is null) return $"no '{_options.PocketsphinxPath}' (install pocketsphinx)";
        foreach (var file in ModelFiles())
            if (!File.Exists(file) && !Directory.Exists(file)) return $"no pocketsphinx model file {file} (install pocketsphinx-en-us)";
        return null;
    }

    public async Task<ExtractedText> TranscribeAsync(ReadOnlyMemory<byte> audio, CancellationToken ct = default)
    {
        if (audio.Length == 0) return ExtractedText.Failure(Method, ExtractionErrors.Empty, "the recording is empty");
        if (audio.Length > _options.MaxBytes)
            return ExtractedText.Failure(Method, ExtractionErrors.TooLarge, $"the recording is {audio.Length} bytes; the limit is {_options.MaxBytes}");
        var kind = AudioSniffer.Sniff(audio.Span);
        if (kind == AudioKind.Unknown)
            return ExtractedText.Failure(Method, ExtractionErrors.UnsupportedType, "not a WAV, Ogg, MP3, FLAC, WebM or M4A recording");
        if (Unavailable() is { } missing) return ExtractedText.Failure(Method, ExtractionErrors.AsrUnavailable, missing);
        if (kind == AudioKind.Wav)
        {
            var header = WavHeader.Duration(audio.Span);
            if (header is null) return ExtractedText.Failure(Method, ExtractionErrors.CorruptAudio, "the WAV header cannot be read");
            if (header > _options.MaxDuration) return TooLong(header.Value);
        }
        if (BreakerOpen()) return ExtractedText.Failure(Method, ExtractionErrors.AsrBreakerOpen, "speech recognition failed repeatedly; paused");

        await _pool.WaitAsync(ct).ConfigureAwait(false);
        var dir = Path.Combine(Path.GetTempPath(), $"caas-asr-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(dir);
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(_options.Timeout);
            try
            {
                var result = await RunAsync(audio, kind, dir, limit.Token).ConfigureAwait(false);
                Record(result);
                return result;
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                var result = ExtractedText.Failure(Method, ExtractionErrors.Timeout, $"speech recognition took longer than {_options.Timeout.TotalSeconds:0} s");
                Record(result);
                return result;
            }
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            _pool.Release();
        }
    }

    private async Task<ExtractedText> RunAsync(ReadOnlyMemory<byte> audio, AudioKind kind, string dir, CancellationToken ct)
    {
        var input = Path.Combine(dir, "in." + kind.ToString().ToLowerInvariant());
        await File.WriteAllBytesAsync(input, audio.ToArray(), ct).ConfigureAwait(false);

        if (kind != AudioKind.Wav && ResolveTool(_options.FfprobePath) is not null)
        {
            var probe = await ProcessRun.RunAsync(_options.FfprobePath,
                ["-v", "error", "-show_entries", "format=duration", "-of", "default=noprint_wrappers=1:nokey=1", input], ct).ConfigureAwait(false);
            if (probe.ExitCode != 0)
                return ExtractedText.Failure(Method, ExtractionErrors.CorruptAudio, $"ffprobe cannot read the recording: {FirstLine(probe.Stderr)}");
            if (double.TryParse(probe.Stdout.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && TimeSpan.FromSeconds(seconds) > _options.MaxDuration)
                return TooLong(TimeSpan.FromSeconds(seconds));
        }

        // Decode at most the limit plus a second: a header that lies about the length cannot make this run longer.
        var pcm = Path.Combine(dir, "speech.raw");
        var decode = await ProcessRun.RunAsync(_options.FfmpegPath,
        [
            "-nostdin", "-hide_banner", "-loglevel", "error", "-i", input, "-vn", "-map_metadata", "-1",
            "-t", (_options.MaxDuration.TotalSeconds + 1).ToString("0.###", CultureInfo.InvariantCulture),
            "-ac", "1", "-ar", SampleRate.ToString(CultureInfo.InvariantCulture), "-f", "s16le", "-acodec", "pcm_s16le", "-y", pcm,
        ], ct).ConfigureAwait(false);
        if (decode.ExitCode != 0 || !File.Exists(pcm))
            return ExtractedText.Failure(Method, ExtractionErrors.CorruptAudio, $"ffmpeg cannot decode the recording: {FirstLine(decode.Stderr)}");
        var decoded = TimeSpan.FromSeconds(new FileInfo(pcm).Length / (2.0 * SampleRate));
        if (decoded > _options.MaxDuration) return TooLong(decoded, "at least ");
        if (decoded < TimeSpan.FromMilliseconds(100)) return ExtractedText.Success("", 1, Method);

        var model = _options.ModelDirectory;
        var recognise = await ProcessRun.RunAsync(_options.PocketsphinxPath,
        [
            "-infile", pcm, "-samprate", SampleRate.ToString(CultureInfo.InvariantCulture),
            "-hmm", Path.Combine(model, "en-us"), "-lm", Path.Combine(model, "en-us.lm.bin"), "-dict", Path.Combine(model, "cmudict-en-us.dict"),
            "-logfn", "/dev/null", .. DecoderArguments,
        ], ct).ConfigureAwait(false);
        if (recognise.ExitCode != 0)
            return ExtractedText.Failure(Method, ExtractionErrors.AsrFailed, $"pocketsphinx failed ({recognise.ExitCode}): {FirstLine(recognise.Stderr)}");
        return ExtractedText.Success(Tidy(recognise.Stdout), 1, Method);
    }

    private ExtractedText TooLong(TimeSpan duration, string prefix = "") =>
        ExtractedText.Failure(Method, ExtractionErrors.AudioTooLong,
            $"the recording lasts {prefix}{duration.TotalSeconds:0} s; the limit is {_options.MaxDuration.TotalSeconds:0} s");

    private bool BreakerOpen()
    {
        lock (_gate) return DateTimeOffset.UtcNow < _openUntil;
    }

    /// <summary>Timeouts and tool crashes count towards the breaker; a bad file (the sender's fault) does not.</summary>
    private void Record(ExtractedText result)
    {
        lock (_gate)
        {
            if (result.ErrorCode is ExtractionErrors.Timeout or ExtractionErrors.AsrFailed)
            {
                if (++_failures >= _options.BreakerFailures)
                {
                    _openUntil = DateTimeOffset.UtcNow + _options.BreakerReset;
                    _failures = 0;
                }
            }
            else _failures = 0;
        }
    }

    private IEnumerable<string> ModelFiles()
    {
        yield return Path.Combine(_options.ModelDirectory, "en-us");
        yield return Path.Combine(_options.ModelDirectory, "en-us.lm.bin");
        yield return Path.Combine(_options.ModelDirectory, "cmudict-en-us.dict");
    }

    /// <summary>The tool's full path: as given when it names a file, else the first match on PATH; null when absent.</summary>
    public static string? ResolveTool(string tool)
    {
        if (tool.Contains('/')) return File.Exists(tool) ? tool : null;
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, tool);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    private static string FirstLine(string s) =>
        s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "no detail";

    // pocketsphinx prints one hypothesis line per utterance it found between silences.
    private static string Tidy(string text) =>
        string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
}

/// <summary>Audio containers the recogniser reads, by their first bytes.</summary>
public enum AudioKind { Unknown, Wav, Ogg, Mp3, Flac, WebM, M4a }

public static class AudioSniffer
{
    public static AudioKind Sniff(ReadOnlySpan<byte> b)
    {
        if (b.Length >= 12 && b.StartsWith("RIFF"u8) && b[8..12].SequenceEqual("WAVE"u8)) return AudioKind.Wav;
        if (b.StartsWith("OggS"u8)) return AudioKind.Ogg;
        if (b.StartsWith("fLaC"u8)) return AudioKind.Flac;
        if (b.StartsWith("ID3"u8)) return AudioKind.Mp3;
        // An MPEG audio frame: 11 sync bits, layer III (or II), not a reserved version.
        if (b.Length >= 4 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0 && (b[1] & 0x18) != 0x08 && (b[1] & 0x06) != 0) return AudioKind.Mp3;
        if (b.Length >= 4 && b[0] == 0x1A && b[1] == 0x45 && b[2] == 0xDF && b[3] == 0xA3) return AudioKind.WebM;
        if (b.Length >= 12 && b[4..8].SequenceEqual("ftyp"u8) && (b[8..12].SequenceEqual("M4A "u8) || b[8..12].SequenceEqual("M4B "u8))) return AudioKind.M4a;
        return AudioKind.Unknown;
    }
}

/// <summary>The duration a WAV header declares (data size over byte rate), read without decoding anything.</summary>
public static class WavHeader
{
    public static TimeSpan? Duration(ReadOnlySpan<byte> b)
    {
        if (b.Length < 12) return null;
        var offset = 12;
        uint? byteRate = null;
        while (offset + 8 <= b.Length)
        {
            var id = b.Slice(offset, 4);
            var size = BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(offset + 4, 4));
            if (id.SequenceEqual("fmt "u8) && offset + 20 <= b.Length)
                byteRate = BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(offset + 16, 4));
            else if (id.SequenceEqual("data"u8))
            {
                if (byteRate is not > 0) return null;
                // A streamed WAV leaves the size at 0 or 0xFFFFFFFF: then the bytes present are the data.
                long data = size is 0 or uint.MaxValue ? b.Length - offset - 8 : size;
                return TimeSpan.FromSeconds((double)data / byteRate.Value);
            }
            var next = offset + 8L + size + (size & 1);
            if (next > b.Length) return null;
            offset = (int)next;
        }
        return null;
    }
}

/// <summary>One external tool run: stdin closed, stdout and stderr read, killed with its children when cancelled.</summary>
internal static class ProcessRun
{
    public sealed record Outcome(int ExitCode, string Stdout, string Stderr);

    public static async Task<Outcome> RunAsync(string tool, IReadOnlyList<string> args, CancellationToken ct)
    {
        var start = new ProcessStartInfo(tool)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new Win32Exception("no process");
        }
        catch (Win32Exception e)
        {
            return new Outcome(-1, "", $"cannot run '{tool}': {e.Message}");
        }
        using (process)
        {
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync(ct);
            var stderr = process.StandardError.ReadToEndAsync(ct);
            try
            {
                await process.WaitForExitAsync(ct).ConfigureAwait(false);
                return new Outcome(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
            }
            catch (OperationCanceledException)
            {
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                throw;
            }
        }
    }
}
