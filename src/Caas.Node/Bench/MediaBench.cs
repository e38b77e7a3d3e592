using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Caas.Web.Auth;

namespace Caas.Node.Bench;

/// <summary>
/// <c>caas bench-media</c>: starts a node as a child process (<c>caas run</c> on SQLite; media on the file store
/// <c>{data}/media</c>, or on S3 when S3 settings are given) and measures, from K parallel keep-alive HTTP clients on
/// 127.0.0.1: single uploads (multipart), resumable uploads (chunks, then complete: which re-reads the file to hash it),
/// downloads, the time to the first byte of ranged reads (<c>/v1/media/stream</c>, 64 KiB at random offsets), and the
/// time from a photo's upload to its thumbnail being served. With
/// <c>--big-mb</c> one file of that size goes up in chunks and comes down again, both hashed on the client and compared
/// with the node's SHA-256, while the node's RSS is sampled: it stays flat when nothing is buffered whole. Every phase
/// is bounded by its counts and the whole run by <c>--timeout</c>. Files are deleted at the end (their bytes purged).
/// The last line is <c>upload_mb_per_s=N download_mb_per_s=N range_ttfb_p99_ms=N thumbnail_p99_ms=N</c> (MB = 2^20 bytes; upload over
/// the single and the chunked phase together).
/// </summary>
public static class MediaBench
{
    private const string Tenant = "bench-media";
    private const int RangeBytes = 64 * 1024;

    public sealed record Settings(string Store, int Clients, int Files, int FileMb, int ChunkedFiles, int ChunkedMb, int ChunkMb,
        int DownloadRounds, int Ranges, int BigMb, TimeSpan Timeout, S3Target? S3, int Thumbnails = 0);

    public sealed record S3Target(string Endpoint, string Bucket, string AccessKey, string SecretKey, string Region);

    public static Command Command()
    {
        var store = new Option<string?>("--store") { Description = "file or s3 (default: s3 when S3 settings are given, else file)." };
        var clients = new Option<int>("--clients") { Description = "Parallel keep-alive HTTP clients.", DefaultValueFactory = _ => 4 };
        var files = new Option<int>("--files") { Description = "Single uploads per client.", DefaultValueFactory = _ => 4 };
        var fileMb = new Option<int>("--file-mb") { Description = "Size of a single upload, MB.", DefaultValueFactory = _ => 8 };
        var chunkedFiles = new Option<int>("--chunked-files") { Description = "Resumable uploads per client.", DefaultValueFactory = _ => 2 };
        var chunkedMb = new Option<int>("--chunked-mb") { Description = "Size of a resumable upload, MB.", DefaultValueFactory = _ => 32 };
        var chunkMb = new Option<int>("--chunk-mb") { Description = "The node's chunk size (CAAS_MEDIA_CHUNK_MB; at least 5 on S3).", DefaultValueFactory = _ => 8 };
        var rounds = new Option<int>("--download-rounds") { Description = "Times every uploaded file is downloaded.", DefaultValueFactory = _ => 2 };
        var ranges = new Option<int>("--ranges") { Description = "Ranged reads (64 KiB at random offsets) timed to the first byte.", DefaultValueFactory = _ => 400 };
        var thumbnails = new Option<int>("--thumbnails") { Description = "Photos (4000x3000 JPEG) uploaded one after another per client, each timed from its upload's 201 to its thumbnail being served.", DefaultValueFactory = _ => 40 };
        var bigMb = new Option<int>("--big-mb") { Description = "One file of this size up and down (2048 for the 2 GB round trip), node RSS sampled; 0: none.", DefaultValueFactory = _ => 0 };
        var timeout = new Option<string>("--timeout") { Description = "The whole run's bound (e.g. 10m).", DefaultValueFactory = _ => "15m" };
        var s3Endpoint = new Option<string?>("--s3-endpoint") { Description = "S3 endpoint on loopback (else CAAS_S3_ENDPOINT)." };
        var s3Bucket = new Option<string?>("--s3-bucket") { Description = "Bucket (else CAAS_S3_BUCKET; default a new caas-bench-… bucket)." };
        var s3Access = new Option<string?>("--s3-access-key") { Description = "Else CAAS_S3_ACCESS_KEY." };
        var s3Secret = new Option<string?>("--s3-secret-key") { Description = "Else CAAS_S3_SECRET_KEY." };
        var s3Region = new Option<string?>("--s3-region") { Description = "Else CAAS_S3_REGION (us-east-1)." };
        var command = new Command("bench-media",
            "Measure media: upload MB/s (single and chunked), download MB/s, ranged-read time to first byte; --big-mb for a large round trip with the node's RSS.")
            { store, clients, files, fileMb, chunkedFiles, chunkedMb, chunkMb, rounds, ranges, thumbnails, bigMb, timeout, s3Endpoint, s3Bucket, s3Access, s3Secret, s3Region };
        void Range(Option<int> o, int min, int max) =>
            o.Validators.Add(r => { if (r.GetValueOrDefault<int>() < min || r.GetValueOrDefault<int>() > max) r.AddError($"{o.Name} is {min} to {max}."); });
        Range(clients, 1, 64);
        Range(files, 0, 10_000);
        Range(fileMb, 1, 1024);
        Range(chunkedFiles, 0, 10_000);
        Range(chunkedMb, 1, 8192);
        Range(chunkMb, 1, 1024);
        Range(rounds, 0, 100);
        Range(ranges, 0, 1_000_000);
        Range(bigMb, 0, 16_384);
        Range(thumbnails, 0, 10_000);
        store.Validators.Add(r => { if (r.GetValueOrDefault<string?>() is not (null or "file" or "s3")) r.AddError("--store is file or s3."); });
        timeout.Validators.Add(r =>
        {
            if (!LoadOptions.TryParseDuration(r.GetValueOrDefault<string>() ?? "", out var t) || t <= TimeSpan.Zero) r.AddError("--timeout is a duration such as 10m.");
        });
        command.SetAction(async (parse, ct) =>
        {
            static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;
            var endpoint = parse.GetValue(s3Endpoint) ?? Env("CAAS_S3_ENDPOINT");
            var kind = parse.GetValue(store) ?? (endpoint is null ? "file" : "s3");
            S3Target? s3 = null;
            if (kind == "s3")
            {
                var access = parse.GetValue(s3Access) ?? Env("CAAS_S3_ACCESS_KEY");
                var secret = parse.GetValue(s3Secret) ?? Env("CAAS_S3_SECRET_KEY");
                if (endpoint is null || access is null || secret is null)
                {
                    Console.Error.WriteLine("--store s3 needs --s3-endpoint, --s3-access-key and --s3-secret-key (or CAAS_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY).");
                    return 2;
                }
                if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || !IsLoopback(uri.Host))
                {
                    Console.Error.WriteLine($"--s3-endpoint must be on loopback (127.0.0.1): the bench sends nowhere else, not to {endpoint}.");
                    return 2;
                }
                s3 = new S3Target(endpoint, parse.GetValue(s3Bucket) ?? Env("CAAS_S3_BUCKET") ?? $"caas-bench-{Guid.NewGuid():N}"[..30], access, secret,
                    parse.GetValue(s3Region) ?? Env("CAAS_S3_REGION") ?? "us-east-1");
            }
            if (kind == "s3" && parse.GetValue(chunkMb) < 5)
            {
                Console.Error.WriteLine("--chunk-mb is at least 5 on S3 (its smallest multipart part).");
                return 2;
            }
            LoadOptions.TryParseDuration(parse.GetValue(timeout)!, out var bound);
            var settings = new Settings(kind, parse.GetValue(clients), parse.GetValue(files), parse.GetValue(fileMb), parse.GetValue(chunkedFiles),
                parse.GetValue(chunkedMb), parse.GetValue(chunkMb), parse.GetValue(rounds), parse.GetValue(ranges), parse.GetValue(bigMb), bound, s3, parse.GetValue(thumbnails));
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
            bounded.CancelAfter(bound);
            try
            {
                return await RunAsync(settings, bounded.Token);
            }
            catch (OperationCanceledException) when (bounded.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                Console.Error.WriteLine($"bench-media: stopped at its --timeout ({bound}) before the end.");
                return 1;
            }
        });
        return command;
    }

    private static bool IsLoopback(string host) =>
        host is "localhost" || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    private const double Mb = 1024 * 1024;

    private static readonly System.Collections.Concurrent.ConcurrentQueue<string> NodeOutput = new();

    private sealed record Uploaded(string Id, long Size, string Sha256);

    public static async Task<int> RunAsync(Settings s, CancellationToken ct)
    {
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture; // figures with a decimal point, whatever the machine's locale
        var dataDir = Path.Combine(Path.GetTempPath(), "caas-bench-media-" + Guid.NewGuid().ToString("N"));
        var jwt = new JwtSettings(Convert.ToBase64String(RandomNumberGenerator.GetBytes(48)), null, null, null);
        var baseAddress = new Uri($"http://127.0.0.1:{SocketBench.FreePort()}");
        var bigBytes = (long)s.BigMb * 1024 * 1024;
        var env = new Dictionary<string, string>
        {
            ["CAAS_MEDIA_MAX_SINGLE_MB"] = Math.Max(25, s.FileMb).ToString(CultureInfo.InvariantCulture),
            ["CAAS_MEDIA_CHUNK_MB"] = s.ChunkMb.ToString(CultureInfo.InvariantCulture),
            ["CAAS_MEDIA_MAX_FILE_MB"] = Math.Max(4096, Math.Max(s.ChunkedMb, s.BigMb)).ToString(CultureInfo.InvariantCulture),
            ["CAAS_MEDIA_USER_QUOTA_BYTES"] = (1L << 50).ToString(CultureInfo.InvariantCulture),
            ["CAAS_MEDIA_TENANT_QUOTA_BYTES"] = (1L << 50).ToString(CultureInfo.InvariantCulture),
            ["CAAS_REDIS"] = "",
            ["CAAS_KAFKA_BOOTSTRAP"] = "",
            ["CAAS_S3_ENDPOINT"] = s.S3?.Endpoint ?? "",
            ["CAAS_S3_BUCKET"] = s.S3?.Bucket ?? "",
            ["CAAS_S3_ACCESS_KEY"] = s.S3?.AccessKey ?? "",
            ["CAAS_S3_SECRET_KEY"] = s.S3?.SecretKey ?? "",
            ["CAAS_S3_REGION"] = s.S3?.Region ?? "",
        };
        using var node = StartNode(dataDir, baseAddress, jwt.Secret!, env);
        var http = new HttpClient[s.Clients];
        var uploaded = new List<Uploaded>();
        using var setup = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromMinutes(10) };
        try
        {
            await SocketBench.WaitUntilLiveAsync(setup, node, ct);
            Console.WriteLine($"caas bench-media node pid={node.Id} at {baseAddress} store={s.Store}" +
                              (s.S3 is { } t ? $" endpoint={t.Endpoint} bucket={t.Bucket}" : " (file store under the node's data directory)") +
                              $" clients={s.Clients} single={s.Files}x{s.FileMb}MB chunked={s.ChunkedFiles}x{s.ChunkedMb}MB chunk={s.ChunkMb}MB " +
                              $"download_rounds={s.DownloadRounds} ranges={s.Ranges} thumbnails={s.Thumbnails} big={s.BigMb}MB timeout={s.Timeout} (clients and node share the cores)");
            Console.WriteLine(BenchEnvironment.GcMode());
            await BenchEnvironment.WaitForStartUpAsync(async t =>
            {
                using var health = await setup.GetAsync("/health", t);
                var body = await health.Content.ReadFromJsonAsync<JsonElement>(t);
                return body.TryGetProperty("intent", out var intent) && intent.ValueKind == JsonValueKind.String ? intent.GetString() : null;
            }, Console.Out, ct);

            var token = new AuthenticationHeaderValue("Bearer", jwt.Issue(Tenant, "uploader", lifetime: TimeSpan.FromHours(4)));
            setup.DefaultRequestHeaders.Authorization = token;
            var conversation = await CreateConversationAsync(setup, ct);
            var chunkSize = s.ChunkMb * 1024 * 1024;
            for (var i = 0; i < s.Clients; i++)
            {
                http[i] = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10) })
                {
                    BaseAddress = baseAddress,
                    Timeout = TimeSpan.FromMinutes(10),
                };
                http[i].DefaultRequestHeaders.Authorization = token;
            }
            // Warm-up (not measured): each client sends one single and one two-chunk upload and reads them back, so the
            // node's and the clients' code paths are compiled and their connections open before the clock starts.
            var warm = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, s.Clients).Select(async c =>
            {
                var single = await UploadSingleAsync(http[c], conversation, Content(256 * 1024, 50 + c), ct);
                var chunked = await UploadChunkedAsync(http[c], conversation, chunkSize + 1024L, Content(chunkSize, 60 + c), c, 9_999, null, ct);
                lock (uploaded) uploaded.AddRange([single, chunked]);
                foreach (var f in new[] { single, chunked })
                    using (var r = await http[c].GetAsync($"/v1/media/download/{f.Id}", ct))
                        r.EnsureSuccessStatusCode();
            }));
            Console.WriteLine($"warm-up: {2 * s.Clients} uploads and downloads in {warm.Elapsed.TotalSeconds:F1} s (not measured)");
            var warmedUp = uploaded.ToList();
            uploaded.Clear();
            var rssStart = BenchEnvironment.RssMb(node.Id);

            // Single uploads: K clients, each its files one after another, one connection each.
            long singleBytes = 0, chunkedBytes = 0, downloadedBytes = 0;
            var clock = Stopwatch.StartNew();
            var singles = await Task.WhenAll(Enumerable.Range(0, s.Clients).Select(async c =>
            {
                var list = new List<Uploaded>();
                var body = Content((long)s.FileMb * 1024 * 1024, c);
                for (var f = 0; f < s.Files; f++)
                {
                    Stamp(body, c, f);
                    list.Add(await UploadSingleAsync(http[c], conversation, body, ct));
                }
                return list;
            }));
            var singleSeconds = clock.Elapsed.TotalSeconds;
            foreach (var u in singles.SelectMany(x => x)) { uploaded.Add(u); singleBytes += u.Size; }
            var singleRate = singleBytes / Mb / Math.Max(singleSeconds, 1e-9);
            Console.WriteLine(Line($"single upload: {singleBytes / Mb:F0} MB in {singleSeconds:F2} s = {singleRate:F1} MB/s"));

            // Resumable uploads: start, chunks in order, complete (the node reads the assembled file back to hash it).
            clock.Restart();
            var completes = new LatencyHistogram();
            var chunkedList = await Task.WhenAll(Enumerable.Range(0, s.Clients).Select(async c =>
            {
                var list = new List<Uploaded>();
                var chunk = Content(chunkSize, 100 + c);
                for (var f = 0; f < s.ChunkedFiles; f++)
                    list.Add(await UploadChunkedAsync(http[c], conversation, (long)s.ChunkedMb * 1024 * 1024, chunk, c, f, null, ct, completes));
                return list;
            }));
            var chunkedSeconds = clock.Elapsed.TotalSeconds;
            foreach (var u in chunkedList.SelectMany(x => x)) { uploaded.Add(u); chunkedBytes += u.Size; }
            var chunkedRate = chunkedBytes / Mb / Math.Max(chunkedSeconds, 1e-9);
            Console.WriteLine(Line($"chunked upload: {chunkedBytes / Mb:F0} MB in {chunkedSeconds:F2} s = {chunkedRate:F1} MB/s (including complete: p50={completes.Percentile(0.5):F1} ms max={completes.MaxMs:F1} ms)"));
            var uploadRate = (singleBytes + chunkedBytes) / Mb / Math.Max(singleSeconds + chunkedSeconds, 1e-9);

            // Downloads: every file, round after round, spread over the clients.
            clock.Restart();
            var work = Enumerable.Range(0, s.DownloadRounds).SelectMany(_ => uploaded).ToList();
            var next = -1;
            var downloads = await Task.WhenAll(Enumerable.Range(0, s.Clients).Select(async c =>
            {
                long bytes = 0;
                var buffer = new byte[128 * 1024];
                int i;
                while ((i = Interlocked.Increment(ref next)) < work.Count)
                {
                    var file = work[i];
                    using var response = await http[c].GetAsync($"/v1/media/download/{file.Id}", HttpCompletionOption.ResponseHeadersRead, ct);
                    response.EnsureSuccessStatusCode();
                    await using var stream = await response.Content.ReadAsStreamAsync(ct);
                    long got = 0;
                    while (await stream.ReadAsync(buffer, ct) is var n and > 0) got += n;
                    if (got != file.Size) throw new InvalidOperationException($"download of {file.Id}: {got} bytes, not {file.Size}");
                    bytes += got;
                }
                return bytes;
            }));
            var downloadSeconds = clock.Elapsed.TotalSeconds;
            downloadedBytes = downloads.Sum();
            var downloadRate = downloadedBytes / Mb / Math.Max(downloadSeconds, 1e-9);
            Console.WriteLine(Line($"download: {downloadedBytes / Mb:F0} MB in {downloadSeconds:F2} s = {downloadRate:F1} MB/s"));

            // Ranged reads: 64 KiB at a random offset of a random file, timed from the request to the body's first byte.
            var ttfb = new LatencyHistogram();
            if (s.Ranges > 0 && uploaded.Count > 0)
            {
                var left = s.Ranges;
                await Task.WhenAll(Enumerable.Range(0, s.Clients).Select(async c =>
                {
                    var random = new Random(c);
                    var buffer = new byte[RangeBytes];
                    while (Interlocked.Decrement(ref left) >= 0)
                    {
                        var file = uploaded[random.Next(uploaded.Count)];
                        var from = file.Size <= RangeBytes ? 0 : random.NextInt64(file.Size - RangeBytes);
                        var to = Math.Min(file.Size, from + RangeBytes) - 1;
                        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/media/stream/{file.Id}");
                        request.Headers.Range = new RangeHeaderValue(from, to);
                        var started = Stopwatch.GetTimestamp();
                        using var response = await http[c].SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
                        if (response.StatusCode != HttpStatusCode.PartialContent)
                            throw new InvalidOperationException($"range of {file.Id}: {(int)response.StatusCode}, not 206");
                        await using var stream = await response.Content.ReadAsStreamAsync(ct);
                        var n = await stream.ReadAsync(buffer, ct);
                        ttfb.Record(Stopwatch.GetElapsedTime(started));
                        long got = n;
                        while (n > 0 && (n = await stream.ReadAsync(buffer, ct)) > 0) got += n;
                        if (got != to - from + 1) throw new InvalidOperationException($"range of {file.Id}: {got} bytes, not {to - from + 1}");
                    }
                }));
                Console.WriteLine(Line($"range ttfb: {ttfb.Count} reads of {RangeBytes / 1024} KiB, p50={ttfb.Percentile(0.5):F2} ms p99={ttfb.Percentile(0.99):F2} ms max={ttfb.MaxMs:F2} ms"));
            }
            var rssEnd = BenchEnvironment.RssMb(node.Id);
            Console.WriteLine($"rss_mb start={rssStart:0} end={rssEnd:0}");

            var thumbs = await ThumbnailsAsync(s, http, conversation, uploaded, ct);

            if (bigBytes > 0) await BigRoundTripAsync(http[0], conversation, bigBytes, chunkSize, node, uploaded, ct);

            // Clean up: delete every file (its bytes are purged from the store).
            uploaded.AddRange(warmedUp);
            await Task.WhenAll(Enumerable.Range(0, s.Clients).Select(async c =>
            {
                for (var i = c; i < uploaded.Count; i += s.Clients)
                    (await http[c].DeleteAsync($"/v1/media/files/{uploaded[i].Id}", ct)).EnsureSuccessStatusCode();
            }));
            Console.WriteLine($"deleted {uploaded.Count} files");
            Console.WriteLine(Line($"upload_mb_per_s={uploadRate:F1} download_mb_per_s={downloadRate:F1} range_ttfb_p99_ms={ttfb.Percentile(0.99):F2} thumbnail_p99_ms={thumbs.Percentile(0.99):F1}"));
            return 0;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Console.Error.WriteLine("bench-media failed: " + e.Message);
            Console.Error.WriteLine("the node's last lines:");
            foreach (var line in NodeOutput) Console.Error.WriteLine("  " + line);
            // Best effort: the files uploaded so far leave the store (an S3 server may keep them in RAM).
            using var cleanup = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            foreach (var file in uploaded.ToList())
            {
                try
                {
                    using var _ = await setup.DeleteAsync($"/v1/media/files/{file.Id}", cleanup.Token);
                }
                catch (Exception)
                {
                    break;
                }
            }
            throw;
        }
        finally
        {
            foreach (var client in http) client?.Dispose();
            if (!node.HasExited)
            {
                node.Kill(entireProcessTree: true);
                await node.WaitForExitAsync(CancellationToken.None);
            }
            if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true);
        }
    }

    /// <summary>
    /// One large file up in chunks (each generated as it is sent) and down again, hashed on both ends, while the node's
    /// RSS is sampled every 250 ms: streamed, it stays near where it started whatever the file's size.
    /// </summary>
    private static async Task BigRoundTripAsync(HttpClient http, string conversation, long size, int chunkSize, Process node, List<Uploaded> uploaded,
        CancellationToken ct)
    {
        var before = BenchEnvironment.RssMb(node.Id);
        using var sampling = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var samples = new List<double>();
        var sampler = Task.Run(async () =>
        {
            try
            {
                while (!sampling.IsCancellationRequested)
                {
                    lock (samples) samples.Add(BenchEnvironment.RssMb(node.Id));
                    await Task.Delay(250, sampling.Token);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }, CancellationToken.None);
        double PhaseMax(int from)
        {
            lock (samples) return samples.Skip(from).DefaultIfEmpty(before).Max();
        }

        var clock = Stopwatch.StartNew();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var chunk = Content(chunkSize, 7);
        var file = await UploadChunkedAsync(http, conversation, size, chunk, 0, 999, hash, ct);
        uploaded.Add(file);
        var upSeconds = clock.Elapsed.TotalSeconds;
        var sent = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (sent != file.Sha256) throw new InvalidOperationException($"big file: the node's SHA-256 {file.Sha256} is not the client's {sent}");
        var upMax = PhaseMax(0);
        int mark;
        lock (samples) mark = samples.Count;

        clock.Restart();
        using var response = await http.GetAsync($"/v1/media/download/{file.Id}", HttpCompletionOption.ResponseHeadersRead, ct);
        response.EnsureSuccessStatusCode();
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        var buffer = new byte[256 * 1024];
        long got = 0;
        while (await stream.ReadAsync(buffer, ct) is var n and > 0)
        {
            hash.AppendData(buffer, 0, n);
            got += n;
        }
        var downSeconds = clock.Elapsed.TotalSeconds;
        var received = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (got != size || received != file.Sha256) throw new InvalidOperationException($"big file: {got} bytes back with SHA-256 {received}");
        var downMax = PhaseMax(mark);
        await sampling.CancelAsync();
        await sampler;
        var after = BenchEnvironment.RssMb(node.Id);
        Console.WriteLine(Line($"big: {size / Mb:F0} MB up in {upSeconds:F1} s = {size / Mb / upSeconds:F1} MB/s, down in {downSeconds:F1} s = " +
                               $"{size / Mb / downSeconds:F1} MB/s, SHA-256 equal on both ends"));
        Console.WriteLine(Line($"big: node rss_mb before={before:0} max_up={upMax:0} max_down={downMax:0} after={after:0} " +
                               $"(growth {Math.Max(upMax, downMax) - before:0} MB for a {size / Mb:F0} MB file; {samples.Count} samples)"));
    }

    private static async Task<string> CreateConversationAsync(HttpClient http, CancellationToken ct)
    {
        using var response = await http.PostAsJsonAsync("/v1/conversations", new { type = "group", title = "media bench" }, ct);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("id").GetString()!;
    }

    /// <summary>Random bytes behind a ZIP signature (stored as application/zip: no thumbnail, no enrichment).</summary>
    private static byte[] Content(long size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        "PK\u0003\u0004"u8.CopyTo(bytes);
        return bytes;
    }

    /// <summary>
    /// Thumbnails: each client uploads <c>--thumbnails / clients</c> photos one after another (a 4000x3000 JPEG, 12 MP, as a
    /// phone takes them) and polls the file's thumbnail every 5 ms until it is served; the time from the upload's 201 to
    /// the thumbnail's 200 covers the queue, reading the original, decoding, scaling, encoding, storing and recording it.
    /// </summary>
    private static async Task<LatencyHistogram> ThumbnailsAsync(Settings s, HttpClient[] http, string conversation, List<Uploaded> uploaded,
        CancellationToken ct)
    {
        var latency = new LatencyHistogram();
        if (s.Thumbnails == 0) return latency;
        var photo = Photo(4000, 3000);
        var clock = Stopwatch.StartNew();
        var left = s.Thumbnails;
        await Task.WhenAll(Enumerable.Range(0, s.Clients).Select(async c =>
        {
            while (Interlocked.Decrement(ref left) >= 0)
            {
                var file = await UploadSingleAsync(http[c], conversation, photo, ct, "image/jpeg", "photo.jpg");
                lock (uploaded) uploaded.Add(file);
                var started = Stopwatch.GetTimestamp();
                while (true)
                {
                    using (var thumb = await http[c].GetAsync($"/v1/media/files/{file.Id}/thumbnail", ct))
                    {
                        if (thumb.StatusCode == HttpStatusCode.OK)
                        {
                            var bytes = await thumb.Content.ReadAsByteArrayAsync(ct);
                            if (bytes.Length < 3 || bytes[0] != 0xFF || bytes[1] != 0xD8)
                                throw new InvalidOperationException($"thumbnail of {file.Id}: not a JPEG ({bytes.Length} bytes)");
                            break;
                        }
                        if (thumb.StatusCode != HttpStatusCode.NotFound)
                            throw new InvalidOperationException($"thumbnail of {file.Id}: {(int)thumb.StatusCode}");
                    }
                    if (Stopwatch.GetElapsedTime(started) > TimeSpan.FromSeconds(60))
                        throw new InvalidOperationException($"thumbnail of {file.Id}: none after 60 s");
                    await Task.Delay(5, ct);
                }
                latency.Record(Stopwatch.GetElapsedTime(started));
            }
        }));
        Console.WriteLine(Line($"thumbnails: {latency.Count} photos of 4000x3000 ({photo.Length / 1024} KiB JPEG) in {clock.Elapsed.TotalSeconds:F1} s, " +
                               $"upload to thumbnail served p50={latency.Percentile(0.5):F1} ms p99={latency.Percentile(0.99):F1} ms max={latency.MaxMs:F1} ms"));
        return latency;
    }

    /// <summary>A photo-like JPEG: smooth gradients with noise on top, so it neither compresses to nothing nor decodes trivially.</summary>
    private static byte[] Photo(int width, int height)
    {
        using var bitmap = new SkiaSharp.SKBitmap(width, height, SkiaSharp.SKColorType.Rgba8888, SkiaSharp.SKAlphaType.Opaque);
        var pixels = new byte[width * height * 4];
        var random = new Random(7);
        for (var y = 0; y < height; y++)
        for (var x = 0; x < width; x++)
        {
            var i = (y * width + x) * 4;
            var noise = random.Next(-24, 25);
            pixels[i] = (byte)Math.Clamp(x * 255 / width + noise, 0, 255);
            pixels[i + 1] = (byte)Math.Clamp(y * 255 / height + noise, 0, 255);
            pixels[i + 2] = (byte)Math.Clamp((x + y) * 255 / (width + height) + noise, 0, 255);
            pixels[i + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
        using var image = SkiaSharp.SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SkiaSharp.SKEncodedImageFormat.Jpeg, 88);
        return data.ToArray();
    }

    /// <summary>Makes each file (or chunk) distinct: its numbers right after the signature.</summary>
    private static void Stamp(byte[] bytes, int a, int b)
    {
        if (bytes.Length < 16) return;
        BitConverter.TryWriteBytes(bytes.AsSpan(4), a);
        BitConverter.TryWriteBytes(bytes.AsSpan(8), b);
    }

    private static async Task<Uploaded> UploadSingleAsync(HttpClient http, string conversation, byte[] body, CancellationToken ct,
        string contentType = "application/zip", string fileName = "bench.zip")
    {
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent(conversation), "conversation_id");
        var file = new ByteArrayContent(body);
        file.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        form.Add(file, "file", fileName);
        using var response = await http.PostAsync("/v1/media/upload", form, ct);
        return await UploadedAsync(response, ct);
    }

    /// <summary>A resumable upload of <paramref name="size"/> bytes: chunks in order from one buffer (stamped per chunk), then complete.</summary>
    private static async Task<Uploaded> UploadChunkedAsync(HttpClient http, string conversation, long size, byte[] chunk, int client, int file,
        IncrementalHash? hash, CancellationToken ct, LatencyHistogram? completeLatency = null)
    {
        using var start = await http.PostAsJsonAsync("/v1/media/upload/chunk",
            new { file_name = "bench.zip", size, content_type = "application/zip", conversation_id = conversation }, ct);
        if (start.StatusCode != HttpStatusCode.Created)
            throw new InvalidOperationException($"start: {(int)start.StatusCode} {await start.Content.ReadAsStringAsync(ct)}");
        var started = await start.Content.ReadFromJsonAsync<JsonElement>(ct);
        var uploadId = started.GetProperty("upload_id").GetString()!;
        var chunkSize = started.GetProperty("chunk_size").GetInt32();
        if (chunkSize != chunk.Length) throw new InvalidOperationException($"the node's chunk is {chunkSize} bytes, not {chunk.Length}");
        var count = (int)((size + chunkSize - 1) / chunkSize);
        for (var i = 0; i < count; i++)
        {
            var n = (int)Math.Min(chunkSize, size - (long)i * chunkSize);
            Stamp(chunk, client * 100_000 + file, i);
            hash?.AppendData(chunk, 0, n);
            using var content = new ByteArrayContent(chunk, 0, n);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            using var response = await http.PostAsync($"/v1/media/upload/chunk/{uploadId}?index={i}", content, ct);
            if (response.StatusCode != HttpStatusCode.OK)
                throw new InvalidOperationException($"chunk {i}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
        }
        var completeStarted = Stopwatch.GetTimestamp();
        using var complete = await http.PostAsync($"/v1/media/upload/complete/{uploadId}", null, ct);
        var uploaded = await UploadedAsync(complete, ct);
        completeLatency?.Record(Stopwatch.GetElapsedTime(completeStarted));
        return uploaded;
    }

    private static async Task<Uploaded> UploadedAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.StatusCode != HttpStatusCode.Created)
            throw new InvalidOperationException($"upload: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
        return new Uploaded(body.GetProperty("id").GetString()!, body.GetProperty("size").GetInt64(), body.GetProperty("sha256").GetString()!);
    }

    private static string Line(string text) => text;

    /// <summary>The node as <c>caas run</c> (as <see cref="SocketBench"/> starts it), with the media settings of this run.</summary>
    private static Process StartNode(string dataDir, Uri baseAddress, string secret, IReadOnlyDictionary<string, string> env)
    {
        var self = Environment.ProcessPath!;
        var viaDotnet = Path.GetFileNameWithoutExtension(self) == "dotnet";
        var start = new ProcessStartInfo(self) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (viaDotnet) start.ArgumentList.Add(typeof(MediaBench).Assembly.Location);
        start.ArgumentList.Add("run");
        start.Environment["CAAS_DATA_DIR"] = dataDir;
        start.Environment["ASPNETCORE_URLS"] = baseAddress.ToString().TrimEnd('/');
        start.Environment["CAAS_JWT_SECRET"] = secret;
        start.Environment["CAAS_LOG_LEVEL"] = "Error";
        start.Environment["CAAS_POSTGRES"] = string.Empty;
        start.Environment["CAAS_SEED_NODES"] = string.Empty;
        foreach (var (k, v) in env) start.Environment[k] = v;
        var process = new Process { StartInfo = start };
        // Its last lines are kept (errors only: CAAS_LOG_LEVEL=Error), to show why a request failed.
        DataReceivedEventHandler keep = (_, e) =>
        {
            if (e.Data is null) return;
            NodeOutput.Enqueue(e.Data);
            while (NodeOutput.Count > 100) NodeOutput.TryDequeue(out string? _);
        };
        process.OutputDataReceived += keep;
        process.ErrorDataReceived += keep;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }
}
