using System.Diagnostics;
using System.Globalization;
using Caas.Enrichment.Attachments;
using Caas.Enrichment.Evaluation;

namespace Caas.Enrichment.Cli;

/// <summary>
/// <c>caas eval --task asr --data FILE</c>: FILE is a TSV, one recording a line, <c>audio path TAB reference
/// transcript</c> (a path relative to FILE's folder; blank lines and lines starting with # are skipped). Prints each
/// recording's WER and what was heard, then the set's figures, and <c>wer=N</c> last (word-level Levenshtein over
/// normalised words, summed over the set).
/// </summary>
public static class SpeechEvaluation
{
    public sealed record Case(string AudioPath, string Reference);

    public static IReadOnlyList<Case> Read(string path)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var cases = new List<Case>();
        var number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var tab = line.IndexOf('\t');
            if (tab <= 0 || tab == line.Length - 1) throw new InvalidDataException($"{path}:{number}: expected 'audio path<TAB>transcript'");
            cases.Add(new Case(Path.Combine(folder, line[..tab].Trim()), line[(tab + 1)..].Trim()));
        }
        return cases;
    }

    public static int Run(string dataPath, SpeechRecognizer recognizer, TextWriter output)
    {
        if (!File.Exists(dataPath)) { output.WriteLine($"asr data must be a TSV file of 'audio path<TAB>transcript': {dataPath}"); return 2; }
        var cases = Read(dataPath);
        if (cases.Count == 0) { output.WriteLine($"no recordings listed in {dataPath}"); return 2; }
        if (recognizer.Unavailable() is { } missing) { output.WriteLine($"speech recognition unavailable: {missing} (scripts/deps/asr.sh installs it)"); return 1; }

        long edits = 0, words = 0;
        var failed = 0;
        var audioSeconds = 0.0;
        var watch = Stopwatch.StartNew();
        foreach (var c in cases)
        {
            if (!File.Exists(c.AudioPath)) throw new FileNotFoundException($"no such recording: {c.AudioPath}");
            var bytes = File.ReadAllBytes(c.AudioPath);
            audioSeconds += WavHeader.Duration(bytes)?.TotalSeconds ?? 0;
            var result = recognizer.TranscribeAsync(bytes).GetAwaiter().GetResult();
            var (e, n) = WordErrorRate.Of(c.Reference, result.Text);
            edits += e;
            words += n;
            if (!result.Ok) failed++;
            output.WriteLine($"{Path.GetFileName(c.AudioPath)}: wer={F(n == 0 ? 0 : (double)e / n)} heard=\"{result.Text}\"{(result.Ok ? "" : $" error={result.ErrorCode}: {result.Error}")}");
        }
        var seconds = watch.Elapsed.TotalSeconds;
        output.WriteLine($"recordings={cases.Count} failed={failed} words={words} edits={edits} audio_seconds={F(audioSeconds)} decode_seconds={F(seconds)}" +
                         (audioSeconds > 0 ? $" real_time_factor={F(seconds / audioSeconds)}" : ""));
        output.WriteLine($"wer={F(words == 0 ? 0 : (double)edits / words)}");
        return 0;
    }

    private static string F(double value) => value.ToString("0.0000", CultureInfo.InvariantCulture);
}
