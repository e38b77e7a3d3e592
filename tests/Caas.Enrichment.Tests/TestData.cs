using System.Diagnostics;

namespace Caas.Enrichment.Tests;

/// <summary>Finds shared/data by walking up from the test's directory (CI clones main with shared/ beside it).</summary>
public static class TestData
{
    public static string SharedData { get; } =
        ShippedData.WalkUp(AppContext.BaseDirectory)
        ?? ShippedData.WalkUp(Directory.GetCurrentDirectory())
        ?? throw new DirectoryNotFoundException("no shared/data above the test directory");

    public static string File(params string[] parts) => Path.Combine([SharedData, .. parts]);

    /// <summary>The node's text enrichers that need no trained model: entities, sentiment (the shared lexicon) and context.</summary>
    public static IEnricher[] TextEnrichers() =>
    [
        new EntityEnricher(),
        new SentimentEnricher(new Sentiment.SentimentAnalyzer(new Sentiment.LexiconSentiment(Sentiment.SentimentLexicon.Load(File("sentiment")))), "vader"),
        new ConversationContextEnricher(new Context.ConversationContextTracker(), null),
    ];

    /// <summary>A new empty folder under this test run's own temporary folder, which is removed when the run ends.</summary>
    public static string NewTempDirectory()
    {
        var dir = Path.Combine(RunFolder.Value, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static readonly Lazy<string> RunFolder = new(() =>
    {
        var root = Path.Combine(Path.GetTempPath(), "caas-enrich-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); }
            catch (IOException) { } // a tool still holding a file: the folder stays, as before
            catch (UnauthorizedAccessException) { }
        };
        return root;
    });

    /// <summary>Runs a tool the tests need (convert, qpdf) and fails the test with its stderr if it fails.</summary>
    public static void Run(string tool, params string[] args)
    {
        var start = new ProcessStartInfo(tool) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var stderr = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{tool} failed ({p.ExitCode}): {stderr} — run scripts/deps/enrichment.sh");
    }
}
