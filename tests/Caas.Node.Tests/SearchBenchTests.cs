using System.Diagnostics;
using System.Text.RegularExpressions;
using Caas.Node.Bench;
using Caas.Tests.Shared;

namespace Caas.Node.Tests;

/// <summary>
/// <c>caas bench-search</c>: the corpus is the same for the same seed, nDCG is computed as defined, bad options are
/// refused, and a small run on each store ends in the documented last line. Latency and rate figures depend on the
/// machine and are never asserted; the quality figures depend only on the seed and the engine.
/// </summary>
// The benches on PostgreSQL make and drop scratch databases (caas_bench_*); one test checks that none of its own is left,
// so the classes that run them do not run side by side.
[Collection(BenchScratchDatabases.Name)]
public sealed partial class SearchBenchTests
{
    private static readonly string CaasDll = Path.Combine(AppContext.BaseDirectory, "caas.dll");

    [GeneratedRegex(@"^ndcg_at_10=(?<ndcg>[\d.]+) recall_at_50=(?<recall>[\d.]+) p50_ms=[\d.]+ p99_ms=[\d.]+ index_msgs_per_s=\d+$")]
    private static partial Regex LastLine();

    [Fact]
    public void The_corpus_is_the_same_for_the_same_seed_and_each_query_has_its_relevant_messages()
    {
        var a = SearchBench.Corpus.Generate(7_000, 300, 100, 15);
        var b = SearchBench.Corpus.Generate(7_000, 300, 100, 15);
        var c = SearchBench.Corpus.Generate(7_000, 300, 100, 16);
        Assert.Equal(a.Messages, b.Messages);
        Assert.NotEqual(a.Messages, c.Messages);
        Assert.Equal(100, a.Queries.Count);
        var texts = a.Messages.Select((m, i) => (Id: "m-" + i, m.Text)).ToDictionary(x => x.Id, x => x.Text);
        foreach (var q in a.Queries)
        {
            Assert.InRange(q.Relevant.Count, 3, 12);
            var words = q.Text.Trim('"').Split(' ');
            foreach (var id in q.Relevant) Assert.All(words, w => Assert.Contains(w, texts[id]));
        }
    }

    [Fact]
    public void Ndcg_with_binary_relevance()
    {
        var relevant = new HashSet<string> { "a", "b" };
        Assert.Equal(1.0, SearchBench.Ndcg(["a", "b", "x"], relevant, 10), 6);
        Assert.Equal(1.0, SearchBench.Ndcg(["b", "a"], relevant, 10), 6);
        Assert.Equal(0.0, SearchBench.Ndcg(["x", "y"], relevant, 10), 6);
        // one relevant at rank 2 of 2 relevant: (1/log2(3)) / (1 + 1/log2(3))
        Assert.Equal(1 / Math.Log2(3) / (1 + 1 / Math.Log2(3)), SearchBench.Ndcg(["x", "a"], relevant, 10), 6);
        Assert.Equal(0.0, SearchBench.Ndcg(["x", "a"], relevant, 1), 6);
    }

    [Theory]
    [InlineData("--messages", "10")]
    [InlineData("--conversations", "5")]
    [InlineData("--queries", "0")]
    [InlineData("--store", "oracle")]
    public async Task Bad_options_are_refused(string option, string value)
    {
        var (code, _, stderr) = await CaasAsync(null, "bench-search", option, value);
        Assert.NotEqual(0, code);
        Assert.NotEqual("", stderr);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task A_small_run_ends_in_the_documented_last_line(string store)
    {
        var env = new Dictionary<string, string>();
        if (store == "postgres") env["CAAS_POSTGRES"] = TestDatabases.AdminConnectionString;
        var (code, stdout, stderr) = await CaasAsync(env, "bench-search", "--store", store, "--messages", "8000", "--conversations", "300", "--queries", "100");
        Assert.True(code == 0, stdout + stderr);
        var last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last();
        var match = LastLine().Match(last);
        Assert.True(match.Success, last);
        // Every query's relevant messages are found (the words are planted together), ranked first.
        Assert.Equal("1.000", match.Groups["recall"].Value);
        Assert.True(double.Parse(match.Groups["ndcg"].Value, System.Globalization.CultureInfo.InvariantCulture) >= 0.8, last);
    }

    private static async Task<(int Code, string Stdout, string Stderr)> CaasAsync(IDictionary<string, string>? env, params string[] args)
    {
        var data = TestDatabases.NewSqliteDirectory();
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = data,
        };
        start.ArgumentList.Add(CaasDll);
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("CAAS_", StringComparison.Ordinal)).ToList())
            start.Environment.Remove(name);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) start.Environment[k] = v;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(8));
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        return (process.ExitCode, await stdout, await stderr);
    }
}

/// <summary>The xunit collection of the tests that run benches on PostgreSQL (they must not overlap: see BenchCommandTests).</summary>
[CollectionDefinition(Name)]
public sealed class BenchScratchDatabases
{
    public const string Name = "bench scratch databases";
}
