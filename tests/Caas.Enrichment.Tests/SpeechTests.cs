using System.Buffers.Binary;
using System.Text;
using Caas.Enrichment.Attachments;
using Caas.Enrichment.Cli;
using Caas.Enrichment.Evaluation;
using Xunit;

namespace Caas.Enrichment.Tests;

/// <summary>The speech enricher against the real tools (Debian ffmpeg, pocketsphinx, espeak-ng: scripts/deps/asr.sh).</summary>
public class SpeechTests
{
    private const string Sentence = "thanks for the birthday wishes everyone, I had a great day. Can you pick up some milk on the way home tonight?";

    private static string Speak(string text, string dir, string name = "note.wav")
    {
        var path = Path.Combine(dir, name);
        TestData.Run("espeak-ng", "-v", "en-us+klatt", "-a", "25", "-w", path, text);
        return path;
    }

    private static string Ffmpeg(string dir, string name, params string[] args)
    {
        var path = Path.Combine(dir, name);
        TestData.Run("ffmpeg", ["-nostdin", "-y", "-loglevel", "error", .. args, path]);
        return path;
    }

    private static EnrichmentInput WithAttachment(byte[] bytes, string type) =>
        EnrichmentInput.ForText("") with { Attachment = new Attachment(bytes, type) };

    [Theory]
    [InlineData("wav")]
    [InlineData("ogg")]
    [InlineData("mp3")]
    public async Task A_spoken_voice_note_comes_back_as_a_transcript_with_most_words_right(string format)
    {
        var dir = TestData.NewTempDirectory();
        var wav = Speak(Sentence, dir);
        var file = format switch
        {
            "ogg" => Ffmpeg(dir, "note.ogg", "-i", wav, "-c:a", "libopus", "-b:a", "24k"),
            "mp3" => Ffmpeg(dir, "note.mp3", "-i", wav, "-c:a", "libmp3lame", "-b:a", "32k"),
            _ => wav,
        };
        var enricher = new SpeechEnricher(new SpeechRecognizer());
        var result = await enricher.EnrichAsync(WithAttachment(File.ReadAllBytes(file), "audio/" + format), CancellationToken.None);

        Assert.Equal("speech", result.Enricher);
        var payload = Assert.IsType<AttachmentTextPayload>(result.Payload);
        Assert.False(payload.Skipped);
        Assert.True(payload.Extracted!.Ok, payload.Extracted.Error);
        var (edits, words) = WordErrorRate.Of(Sentence, payload.Extracted.Text);
        Assert.True((double)edits / words <= 0.6, $"WER {(double)edits / words:0.00}: heard '{payload.Extracted.Text}'");
        Assert.Contains("\"text\":", result.PayloadJson());
    }

    [Fact]
    public async Task A_wav_header_declaring_ten_hours_is_refused_before_anything_is_decoded()
    {
        // A real 16 kHz mono header whose data chunk claims ten hours, followed by one second of silence.
        var bytes = new byte[44 + 32_000];
        "RIFF"u8.CopyTo(bytes);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), uint.MaxValue - 8);
        "WAVEfmt "u8.CopyTo(bytes.AsSpan(8));
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(16), 16);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(20), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(22), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(24), 16_000);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(28), 32_000);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(32), 2);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(34), 16);
        "data"u8.CopyTo(bytes.AsSpan(36));
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(40), 10u * 3600 * 32_000);
        Assert.Equal(TimeSpan.FromHours(10), WavHeader.Duration(bytes));

        var result = await new SpeechRecognizer().TranscribeAsync(bytes);
        Assert.False(result.Ok);
        Assert.Equal(ExtractionErrors.AudioTooLong, result.ErrorCode);
        Assert.Contains("36000 s", result.Error);
    }

    [Fact]
    public async Task An_eleven_minute_recording_is_refused_by_its_probed_duration()
    {
        var dir = TestData.NewTempDirectory();
        var flac = Ffmpeg(dir, "long.flac", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "660", "-c:a", "flac");
        var result = await new SpeechRecognizer().TranscribeAsync(File.ReadAllBytes(flac));
        Assert.Equal(ExtractionErrors.AudioTooLong, result.ErrorCode);

        // The limit is a setting: a five-second WAV against a two-second limit.
        var wav = Ffmpeg(dir, "short.wav", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "5", "-c:a", "pcm_s16le");
        var tight = new SpeechRecognizer(new SpeechOptions { MaxDuration = TimeSpan.FromSeconds(2) });
        Assert.Equal(ExtractionErrors.AudioTooLong, (await tight.TranscribeAsync(File.ReadAllBytes(wav))).ErrorCode);
    }

    [Fact]
    public async Task Bytes_that_are_no_recording_are_not_applicable()
    {
        var enricher = new SpeechEnricher(new SpeechRecognizer());
        foreach (var bytes in new[] { Encoding.UTF8.GetBytes("just some text, not a voice note"), FileSniffer.PngSignature.ToArray(), "%PDF-1.7\n"u8.ToArray() })
        {
            var result = await enricher.EnrichAsync(WithAttachment(bytes, "audio/ogg"), CancellationToken.None);
            Assert.Equal(new NotApplicablePayload(true, "not_audio"), result.Payload);
        }
        var none = await enricher.EnrichAsync(EnrichmentInput.ForText("no attachment"), CancellationToken.None);
        Assert.Equal(new NotApplicablePayload(true, "not_audio"), none.Payload);

        var recognizer = new SpeechRecognizer();
        Assert.Equal(ExtractionErrors.UnsupportedType, (await recognizer.TranscribeAsync(Encoding.UTF8.GetBytes("hello"))).ErrorCode);
        Assert.Equal(ExtractionErrors.Empty, (await recognizer.TranscribeAsync(Array.Empty<byte>())).ErrorCode);
        var big = new byte[2048];
        "OggS"u8.CopyTo(big);
        Assert.Equal(ExtractionErrors.TooLarge, (await new SpeechRecognizer(new SpeechOptions { MaxBytes = 1024 }).TranscribeAsync(big)).ErrorCode);
        var garbage = new byte[4096];
        new Random(3).NextBytes(garbage);
        "OggS"u8.CopyTo(garbage);
        Assert.Equal(ExtractionErrors.CorruptAudio, (await recognizer.TranscribeAsync(garbage)).ErrorCode);
    }

    [Fact]
    public async Task Without_ffmpeg_or_pocketsphinx_the_result_is_not_applicable()
    {
        var wav = File.ReadAllBytes(Speak("hello there", TestData.NewTempDirectory()));
        foreach (var options in new[]
                 {
                     new SpeechOptions { FfmpegPath = "/nonexistent/ffmpeg" },
                     new SpeechOptions { PocketsphinxPath = "/nonexistent/pocketsphinx_continuous" },
                     new SpeechOptions { ModelDirectory = TestData.NewTempDirectory() },
                 })
        {
            var result = await new SpeechEnricher(new SpeechRecognizer(options)).EnrichAsync(WithAttachment(wav, "audio/wav"), CancellationToken.None);
            Assert.Equal(new NotApplicablePayload(true, ExtractionErrors.AsrUnavailable), result.Payload);
        }
    }

    [Fact]
    public async Task A_recognition_over_its_time_limit_is_stopped_and_repeated_timeouts_open_the_breaker()
    {
        var wav = File.ReadAllBytes(Speak(Sentence, TestData.NewTempDirectory()));
        // One millisecond is less than any process start: every call runs out of time.
        var recognizer = new SpeechRecognizer(new SpeechOptions { Timeout = TimeSpan.FromMilliseconds(1), BreakerFailures = 2, BreakerReset = TimeSpan.FromHours(1) });
        Assert.Equal(ExtractionErrors.Timeout, (await recognizer.TranscribeAsync(wav)).ErrorCode);
        Assert.Equal(ExtractionErrors.Timeout, (await recognizer.TranscribeAsync(wav)).ErrorCode);
        Assert.Equal(ExtractionErrors.AsrBreakerOpen, (await recognizer.TranscribeAsync(wav)).ErrorCode);
    }

    [Fact]
    public void Word_error_rate_counts_words_not_case_or_punctuation()
    {
        Assert.Equal((0, 5), WordErrorRate.Of("See you at 3 o'clock!", "see you at 3 o'clock"));
        Assert.Equal((1, 4), WordErrorRate.Of("see you at three", "see you three"));
        Assert.Equal((2, 2), WordErrorRate.Of("good morning", "good evening all"));
        Assert.Equal(["don't", "go"], WordErrorRate.Words("Don’t — go."));
    }

    [Fact]
    public void Eval_asr_renders_the_repository_set_and_prints_wer_last()
    {
        var script = FindUp("scripts/asr-eval-set.sh");
        var dir = TestData.NewTempDirectory();
        TestData.Run("bash", script, dir);
        var list = Path.Combine(dir, "set.tsv");
        var lines = File.ReadAllLines(list);
        Assert.True(lines.Length >= 30, $"{lines.Length} recordings");
        // The smoke test decodes three of them; the whole set is measured with the command (README "ASR").
        File.WriteAllLines(list, lines.Take(3));

        var output = new StringWriter();
        Assert.Equal(0, EnrichmentCommands.Eval("asr", list, null, output));
        var report = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("wer=", report[^1]);
        Assert.Contains(report, l => l.StartsWith("recordings=3 "));
        var wer = double.Parse(report[^1]["wer=".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(wer, 0, 0.6);

        File.WriteAllText(list, "no tab on this line\n");
        Assert.Equal(1, EnrichmentCommands.Eval("asr", list, null, new StringWriter()));
    }

    private static string FindUp(string relative)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, relative))) return Path.Combine(d.FullName, relative);
        throw new FileNotFoundException(relative);
    }
}
