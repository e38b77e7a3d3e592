using System.Security.Cryptography;
using Caas.Streams.Media;
using Caas.Tests.Shared;

namespace Caas.Streams.Tests.Media;

/// <summary>One suite, two stores: the file store and the S3 store against a real radosgw behave the same.</summary>
public abstract class MediaStoreContract : IAsyncLifetime
{
    /// <summary>More than a part (8 MiB) so a put of unknown length crosses the S3 store's multipart path.</summary>
    private const int Large = S3MediaStore.PartSize + 3 * 1024 * 1024 + 17;

    /// <summary>S3's smallest part but the last.</summary>
    private const int MinPart = 5 * 1024 * 1024;

    protected IMediaStore Store { get; private set; } = null!;

    protected abstract IMediaStore CreateStore();

    public async Task InitializeAsync()
    {
        Store = CreateStore();
        await Store.EnsureReadyAsync();
        await Store.EnsureReadyAsync(); // idempotent
    }

    public Task DisposeAsync()
    {
        (Store as IDisposable)?.Dispose();
        return Task.CompletedTask;
    }

    private static byte[] Bytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static string NewId() => "f_" + Guid.NewGuid().ToString("N");

    private async Task<byte[]?> ReadAsync(string tenant, string id, long offset = 0, long? length = null)
    {
        await using var s = await Store.OpenReadAsync(tenant, id, offset, length);
        if (s is null) return null;
        using var m = new MemoryStream();
        await s.CopyToAsync(m);
        return m.ToArray();
    }

    /// <summary>A stream that cannot seek and has no length, as a request body is.</summary>
    private sealed class Unseekable(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }

    [Fact]
    public async Task Small_and_large_files_come_back_byte_exact()
    {
        foreach (var size in new[] { 1, 1000, Large })
        {
            var id = NewId();
            var bytes = Bytes(size, size);
            Assert.Equal(size, await Store.PutAsync("t-store", id, new Unseekable(bytes)));
            Assert.Equal(size, await Store.SizeAsync("t-store", id));
            Assert.Equal(SHA256.HashData(bytes), SHA256.HashData(await ReadAsync("t-store", id) ?? []));
        }
    }

    /// <summary>
    /// Puts of a whole part and more, four at a time, several rounds: each comes back as it was sent. (The S3 store once
    /// returned one of its two part buffers to the pool twice, so two uploads later shared it and sent each other's bytes.)
    /// </summary>
    [Fact]
    public async Task Concurrent_puts_of_whole_parts_do_not_share_buffers()
    {
        for (var round = 0; round < 3; round++)
        {
            var files = Enumerable.Range(0, 4)
                .Select(i => (Id: NewId(), Bytes: Bytes(i % 2 == 0 ? S3MediaStore.PartSize : 2 * S3MediaStore.PartSize + 1, 100 * round + i)))
                .ToList();
            await Task.WhenAll(files.Select(f => Task.Run(() => Store.PutAsync("t-concurrent", f.Id, new Unseekable(f.Bytes)))));
            foreach (var (id, bytes) in files)
            {
                Assert.Equal(SHA256.HashData(bytes), SHA256.HashData(await ReadAsync("t-concurrent", id) ?? []));
                await Store.DeleteAsync("t-concurrent", id); // the test radosgw keeps objects in RAM: leave none behind
            }
        }
    }

    [Fact]
    public async Task Ranges_read_the_bytes_asked_for()
    {
        var id = NewId();
        var bytes = Bytes(100_000, 7);
        await Store.PutAsync("t-range", id, new Unseekable(bytes));
        Assert.Equal(bytes[10..20], await ReadAsync("t-range", id, 10, 10));
        Assert.Equal(bytes[99_990..], await ReadAsync("t-range", id, 99_990));
        Assert.Equal(bytes[..1], await ReadAsync("t-range", id, 0, 1));
        Assert.Equal(bytes[50_000..], await ReadAsync("t-range", id, 50_000, 50_000));
    }

    [Fact]
    public async Task Absent_files_are_null_and_delete_says_whether_one_was_there()
    {
        var id = NewId();
        Assert.Null(await Store.SizeAsync("t-absent", id));
        Assert.Null(await ReadAsync("t-absent", id));
        Assert.False(await Store.DeleteAsync("t-absent", id));
        await Store.PutAsync("t-absent", id, new MemoryStream([1, 2, 3]));
        Assert.True(await Store.DeleteAsync("t-absent", id));
        Assert.Null(await Store.SizeAsync("t-absent", id));
        Assert.Null(await ReadAsync("t-absent", id));
        Assert.False(await Store.DeleteAsync("t-absent", id));
    }

    [Fact]
    public async Task The_same_file_id_in_two_tenants_is_two_objects()
    {
        var id = NewId();
        await Store.PutAsync("t-one", id, new MemoryStream([1, 1, 1]));
        await Store.PutAsync("t-two", id, new MemoryStream([2, 2]));
        Assert.Equal([1, 1, 1], await ReadAsync("t-one", id));
        Assert.Equal([2, 2], await ReadAsync("t-two", id));
        Assert.True(await Store.DeleteAsync("t-one", id));
        Assert.Equal([2, 2], await ReadAsync("t-two", id));
    }

    [Fact]
    public async Task Multipart_parts_sent_in_any_order_assemble_in_index_order()
    {
        var id = NewId();
        var parts = new[] { Bytes(MinPart, 1), Bytes(MinPart, 2), Bytes(12_345, 3) };
        var upload = await Store.StartMultipartAsync("t-multi", id);
        var tags = new string[3];
        foreach (var i in new[] { 2, 0, 1 })
            tags[i] = await Store.PutPartAsync("t-multi", id, upload, i, new Unseekable(parts[i]), parts[i].Length);
        // A part sent again with the same bytes replaces itself.
        tags[1] = await Store.PutPartAsync("t-multi", id, upload, 1, new Unseekable(parts[1]), parts[1].Length);
        Assert.Null(await Store.SizeAsync("t-multi", id));
        await Store.CompleteMultipartAsync("t-multi", id, upload, tags);
        var whole = parts.SelectMany(p => p).ToArray();
        Assert.Equal(whole.Length, await Store.SizeAsync("t-multi", id));
        Assert.Equal(SHA256.HashData(whole), SHA256.HashData(await ReadAsync("t-multi", id) ?? []));
    }

    [Fact]
    public async Task An_aborted_multipart_upload_leaves_nothing()
    {
        var id = NewId();
        var upload = await Store.StartMultipartAsync("t-abort", id);
        await Store.PutPartAsync("t-abort", id, upload, 0, new Unseekable(Bytes(1000, 4)), 1000);
        await Store.AbortMultipartAsync("t-abort", id, upload);
        await Store.AbortMultipartAsync("t-abort", id, upload); // idempotent
        Assert.Null(await Store.SizeAsync("t-abort", id));
        await AssertNoOpenUploadsAsync("t-abort");
    }

    protected abstract Task AssertNoOpenUploadsAsync(string tenant);

    [Fact]
    public async Task Keys_are_safe_ids_only()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Store.PutAsync("..", "x", new MemoryStream([1])));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.PutAsync("t", "../x", new MemoryStream([1])));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.SizeAsync("t/x", "y"));
    }
}

public sealed class FileMediaStoreTests : MediaStoreContract, IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "caas-media-" + Guid.NewGuid().ToString("N"));

    protected override IMediaStore CreateStore() => new FileMediaStore(_root);

    protected override Task AssertNoOpenUploadsAsync(string tenant)
    {
        var dir = Path.Combine(_root, ".uploads", tenant);
        Assert.True(!Directory.Exists(dir) || Directory.GetFileSystemEntries(dir).Length == 0);
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }
}

public sealed class S3MediaStoreTests : MediaStoreContract
{
    private S3MediaStore S3 => (S3MediaStore)Store;

    protected override IMediaStore CreateStore() =>
        new S3MediaStore(TestServices.S3Endpoint, TestServices.NewBucket("store"), TestServices.S3AccessKey, TestServices.S3SecretKey);

    protected override async Task AssertNoOpenUploadsAsync(string tenant) => Assert.Empty(await S3.OpenMultipartUploadsAsync(tenant));

    [Fact]
    public async Task An_unreachable_server_is_unavailable_not_a_crash()
    {
        // A loopback port nothing listens on (the test script's ports start far above it).
        using var down = new S3MediaStore("http://127.0.0.1:9", "b", "k", "s");
        await Assert.ThrowsAsync<MediaStoreUnavailableException>(() => down.SizeAsync("t", "f"));
        await Assert.ThrowsAsync<MediaStoreUnavailableException>(() => down.PutAsync("t", "f", new MemoryStream([1])));
    }
}
