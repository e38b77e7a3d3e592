namespace Caas.Streams.Media;

/// <summary>
/// The embedded store: <c>{root}/{tenant}/{file id}</c>, written to a temporary name and renamed into place, so a
/// reader never sees half a file. Multipart uploads keep their parts in <c>{root}/.uploads/{tenant}/{upload}/{index}</c>
/// until they are assembled (streamed, part after part) or aborted.
/// </summary>
public sealed class FileMediaStore(string root) : IMediaStore
{
    private const int BufferSize = 128 * 1024;

    public string Root { get; } = Path.GetFullPath(root);

    public string Kind => "file";

    public Task EnsureReadyAsync(CancellationToken ct = default)
    {
        Directory.CreateDirectory(Root);
        return Task.CompletedTask;
    }

    private string PathOf(string tenantId, string fileId) => Path.Combine(Root, MediaKeys.Of(tenantId, fileId));

    private string UploadDir(string tenantId, string multipartId)
    {
        if (!Guid.TryParseExact(multipartId, "N", out _)) throw new ArgumentException("Not a multipart id of this store.", nameof(multipartId));
        MediaKeys.Check(tenantId, multipartId);
        return Path.Combine(Root, ".uploads", tenantId, multipartId);
    }

    public async Task<long> PutAsync(string tenantId, string fileId, Stream content, CancellationToken ct = default)
    {
        var path = PathOf(tenantId, fileId);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".part";
        try
        {
            long size;
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferSize, FileOptions.Asynchronous))
            {
                await content.CopyToAsync(file, BufferSize, ct);
                size = file.Length;
            }
            File.Move(temp, path, overwrite: true);
            return size;
        }
        finally
        {
            File.Delete(temp);
        }
    }

    public Task<long?> SizeAsync(string tenantId, string fileId, CancellationToken ct = default)
    {
        var info = new FileInfo(PathOf(tenantId, fileId));
        return Task.FromResult(info.Exists ? info.Length : (long?)null);
    }

    public Task<Stream?> OpenReadAsync(string tenantId, string fileId, long offset = 0, long? length = null, CancellationToken ct = default)
    {
        FileStream file;
        try
        {
            file = new FileStream(PathOf(tenantId, fileId), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, BufferSize, FileOptions.Asynchronous);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return Task.FromResult<Stream?>(null);
        }
        if (offset > 0) file.Seek(Math.Min(offset, file.Length), SeekOrigin.Begin);
        Stream result = length is { } n ? new BoundedReadStream(file, n) : file;
        return Task.FromResult<Stream?>(result);
    }

    public Task<bool> DeleteAsync(string tenantId, string fileId, CancellationToken ct = default)
    {
        var path = PathOf(tenantId, fileId);
        if (!File.Exists(path)) return Task.FromResult(false);
        File.Delete(path);
        return Task.FromResult(true);
    }

    public Task<string> StartMultipartAsync(string tenantId, string fileId, CancellationToken ct = default)
    {
        MediaKeys.Check(tenantId, fileId);
        var id = Guid.NewGuid().ToString("N");
        Directory.CreateDirectory(UploadDir(tenantId, id));
        return Task.FromResult(id);
    }

    public async Task<string> PutPartAsync(string tenantId, string fileId, string multipartId, int index, Stream content, long length, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        var dir = UploadDir(tenantId, multipartId);
        if (!Directory.Exists(dir)) throw new InvalidOperationException("No such multipart upload.");
        var part = Path.Combine(dir, index.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var temp = part + "." + Guid.NewGuid().ToString("N") + ".tmp";
        try
        {
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferSize, FileOptions.Asynchronous))
            {
                await new BoundedReadStream(content, length, leaveOpen: true).CopyToAsync(file, BufferSize, ct);
                if (file.Length != length) throw new EndOfStreamException($"The part ended after {file.Length} of {length} bytes.");
            }
            File.Move(temp, part, overwrite: true);
            return length.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    public async Task CompleteMultipartAsync(string tenantId, string fileId, string multipartId, IReadOnlyList<string> partTags, CancellationToken ct = default)
    {
        var dir = UploadDir(tenantId, multipartId);
        if (!Directory.Exists(dir)) throw new InvalidOperationException("No such multipart upload.");
        var path = PathOf(tenantId, fileId);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".part";
        try
        {
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferSize, FileOptions.Asynchronous))
            {
                for (var i = 0; i < partTags.Count; i++)
                {
                    await using var part = new FileStream(Path.Combine(dir, i.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                        FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.Asynchronous);
                    await part.CopyToAsync(file, BufferSize, ct);
                }
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
        Directory.Delete(dir, recursive: true);
    }

    public Task AbortMultipartAsync(string tenantId, string fileId, string multipartId, CancellationToken ct = default)
    {
        var dir = UploadDir(tenantId, multipartId);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        return Task.CompletedTask;
    }
}

/// <summary>Reads at most <c>limit</c> bytes of an inner stream.</summary>
internal sealed class BoundedReadStream(Stream inner, long limit, bool leaveOpen = false) : Stream
{
    private long _left = limit;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_left <= 0) return 0;
        var n = inner.Read(buffer[..(int)Math.Min(buffer.Length, _left)]);
        _left -= n;
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        if (_left <= 0) return 0;
        var n = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, _left)], ct);
        _left -= n;
        return n;
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !leaveOpen) inner.Dispose();
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (!leaveOpen) await inner.DisposeAsync();
        await base.DisposeAsync();
    }
}
