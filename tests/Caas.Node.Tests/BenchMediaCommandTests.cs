using System.Text.RegularExpressions;
using Caas.Tests.Shared;

namespace Caas.Node.Tests;

/// <summary><c>caas bench-media</c>: its options refused when wrong, and a tiny run on the file store and on radosgw.</summary>
public sealed partial class BenchCommandTests
{
    /// <summary>Two clients, one small file of each kind, a 12 MB round trip: seconds of work.</summary>
    private static readonly string[] TinyMedia =
    [
        "bench-media", "--clients", "2", "--files", "1", "--file-mb", "1", "--chunked-files", "1", "--chunked-mb", "6", "--chunk-mb", "5",
        "--download-rounds", "1", "--ranges", "10", "--thumbnails", "3", "--big-mb", "12",
    ];

    [GeneratedRegex(@"^upload_mb_per_s=[\d.]+ download_mb_per_s=[\d.]+ range_ttfb_p99_ms=[\d.]+ thumbnail_p99_ms=[\d.]+$")]
    private static partial Regex MediaLastLine();

    [Theory]
    [InlineData(new[] { "bench-media", "--clients", "0" }, "--clients")]
    [InlineData(new[] { "bench-media", "--file-mb", "0" }, "--file-mb")]
    [InlineData(new[] { "bench-media", "--store", "tape" }, "--store")]
    [InlineData(new[] { "bench-media", "--thumbnails", "-1" }, "--thumbnails")]
    [InlineData(new[] { "bench-media", "--timeout", "soon" }, "--timeout")]
    [InlineData(new[] { "bench-media", "--store", "s3" }, "--s3-endpoint")]
    [InlineData(new[] { "bench-media", "--s3-endpoint", "http://192.0.2.10:80", "--s3-access-key", "a", "--s3-secret-key", "b" }, "loopback")]
    [InlineData(new[] { "bench-media", "--s3-endpoint", "http://127.0.0.1:9", "--s3-access-key", "a", "--s3-secret-key", "b", "--chunk-mb", "4" }, "--chunk-mb")]
    public async Task Bad_bench_media_arguments_are_refused_before_anything_runs(string[] args, string message)
    {
        var result = await CaasAsync(args);
        Assert.True(result.ExitCode != 0, $"{string.Join(' ', args)}: exit 0, {result.All}");
        Assert.Contains(message, result.All);
        Assert.DoesNotContain("upload_mb_per_s=", result.Stdout);
    }

    [Fact]
    public async Task Bench_media_on_the_file_store_uploads_downloads_reads_ranges_and_round_trips_a_big_file()
    {
        var help = await CaasAsync("--help");
        Assert.Contains("  bench-media", help.Stdout);
        var result = await CaasAsync(TinyMedia);
        Assert.True(result.ExitCode == 0, result.All);
        AssertMediaRun(result, "store=file");
    }

    [Fact]
    public async Task Bench_media_on_radosgw_when_s3_settings_are_given()
    {
        var result = await CaasAsync(new Dictionary<string, string>
        {
            ["CAAS_S3_ENDPOINT"] = TestServices.S3Endpoint,
            ["CAAS_S3_ACCESS_KEY"] = TestServices.S3AccessKey,
            ["CAAS_S3_SECRET_KEY"] = TestServices.S3SecretKey,
            ["CAAS_S3_BUCKET"] = TestServices.NewBucket("bench"),
        }, TinyMedia);
        Assert.True(result.ExitCode == 0, result.All);
        AssertMediaRun(result, "store=s3");
    }

    private static void AssertMediaRun(Result result, string store)
    {
        Assert.Contains(store, result.Stdout);
        Assert.Matches(GcLine(), result.Stdout);
        foreach (var phase in new[] { "warm-up: ", "single upload: ", "chunked upload: ", "download: ", "range ttfb: 10 reads", "thumbnails: 3 photos of 4000x3000" })
            Assert.Contains(phase, result.Stdout);
        Assert.Matches(new Regex(@"^big: 12 MB up in .* SHA-256 equal on both ends$", RegexOptions.Multiline), result.Stdout);
        Assert.Matches(new Regex(@"^big: node rss_mb before=\d+ max_up=\d+ max_down=\d+ after=\d+ ", RegexOptions.Multiline), result.Stdout);
        // 2 clients x (warm-up 2 + single 1 + chunked 1) + 3 photos + the big file.
        Assert.Contains("deleted 12 files", result.Stdout);
        Assert.Matches(MediaLastLine(), result.LastLine);
    }
}
