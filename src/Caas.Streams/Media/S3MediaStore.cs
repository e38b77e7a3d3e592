using System.Buffers;
using System.Net;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace Caas.Streams.Media;

/// <summary>
/// Media on an S3 server (AWSSDK.S3, path-style, any endpoint: radosgw in the tests, MinIO in docker-compose). Objects
/// are <c>{tenant}/{file id}</c> in one bucket. A put of unknown length goes up as a multipart upload of
/// <see cref="PartSize"/> parts, so only one part is in memory at a time. Checksums and chunked payload signing are
/// what every S3 server takes (radosgw 16 refuses the SDK v4's default aws-chunked trailers).
/// </summary>
public sealed class S3MediaStore : IMediaStore, IDisposable
{
    /// <summary>S3's smallest part but the last is 5 MiB; 8 MiB parts keep a 2 GB put within S3's 10,000 parts.</summary>
    public const int PartSize = 8 * 1024 * 1024;

    private readonly AmazonS3Client _s3;

    public S3MediaStore(string endpoint, string bucket, string accessKey, string secretKey, string region = "us-east-1")
    {
        Bucket = bucket;
        var config = new AmazonS3Config
        {
            ServiceURL = endpoint,
            ForcePathStyle = true,
            AuthenticationRegion = region,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            Timeout = TimeSpan.FromMinutes(5),
            MaxErrorRetry = 2,
        };
        _s3 = new AmazonS3Client(new BasicAWSCredentials(accessKey, secretKey), config);
    }

    public string Bucket { get; }

    public string Kind => "s3";

    public async Task EnsureReadyAsync(CancellationToken ct = default)
    {
        try
        {
            await _s3.PutBucketAsync(new PutBucketRequest { BucketName = Bucket }, ct);
        }
        catch (AmazonS3Exception e) when (e.ErrorCode is "BucketAlreadyOwnedByYou" or "BucketAlreadyExists")
        {
        }
        catch (Exception e) when (IsOutage(e))
        {
            throw Unavailable(e);
        }
    }

    public async Task<long> PutAsync(string tenantId, string fileId, Stream content, CancellationToken ct = default)
    {
        var key = MediaKeys.Of(tenantId, fileId);
        var first = ArrayPool<byte>.Shared.Rent(PartSize);
        byte[]? next = null, second = null; // the loop swaps first and next: return the two rented arrays, each once
        string? uploadId = null;
        try
        {
            var n = await FillAsync(content, first, ct);
            if (n < PartSize)
            {
                // Small enough for one put.
                await Guard(() => _s3.PutObjectAsync(new PutObjectRequest
                {
                    BucketName = Bucket, Key = key, InputStream = new MemoryStream(first, 0, n, writable: false), UseChunkEncoding = false,
                }, ct));
                return n;
            }
            uploadId = (await Guard(() => _s3.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = Bucket, Key = key }, ct))).UploadId;
            var tags = new List<PartETag>();
            long total = 0;
            next = second = ArrayPool<byte>.Shared.Rent(PartSize);
            var (current, currentLength) = (first, n);
            while (currentLength > 0)
            {
                var part = tags.Count + 1;
                var tag = await UploadPartAsync(key, uploadId, part, new MemoryStream(current, 0, currentLength, writable: false), currentLength, ct);
                tags.Add(new PartETag(part, tag));
                total += currentLength;
                if (currentLength < PartSize) break;
                currentLength = await FillAsync(content, next, ct);
                (current, next) = (next, current);
            }
            await Guard(() => _s3.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
            {
                BucketName = Bucket, Key = key, UploadId = uploadId, PartETags = tags,
            }, ct));
            uploadId = null;
            return total;
        }
        finally
        {
            if (uploadId is not null) await AbortQuietlyAsync(key, uploadId);
            // Returning one array twice handed it to two uploads at once (parts of one file sent with another's
            // bytes; radosgw refused such parts with 400); bench-media found it with 4 clients sending 8 MiB files.
            ArrayPool<byte>.Shared.Return(first);
            if (second is not null) ArrayPool<byte>.Shared.Return(second);
        }
    }

    public async Task<long?> SizeAsync(string tenantId, string fileId, CancellationToken ct = default)
    {
        try
        {
            var meta = await _s3.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = Bucket, Key = MediaKeys.Of(tenantId, fileId) }, ct);
            return meta.ContentLength;
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (Exception e) when (IsOutage(e))
        {
            throw Unavailable(e);
        }
    }

    public async Task<Stream?> OpenReadAsync(string tenantId, string fileId, long offset = 0, long? length = null, CancellationToken ct = default)
    {
        var request = new GetObjectRequest { BucketName = Bucket, Key = MediaKeys.Of(tenantId, fileId) };
        if (length is 0)
        {
            // An empty range is not expressible in HTTP; an existing object answers with nothing.
            return await SizeAsync(tenantId, fileId, ct) is null ? null : new MemoryStream([], writable: false);
        }
        if (offset > 0 || length is not null)
            request.ByteRange = length is { } n ? new ByteRange(offset, offset + n - 1) : new ByteRange($"bytes={offset}-");
        try
        {
            var response = await _s3.GetObjectAsync(request, ct);
            return new ResponseStream(response);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            // A read from the end: nothing left.
            return new MemoryStream([], writable: false);
        }
        catch (Exception e) when (IsOutage(e))
        {
            throw Unavailable(e);
        }
    }

    public async Task<bool> DeleteAsync(string tenantId, string fileId, CancellationToken ct = default)
    {
        // S3's delete answers the same whether or not the object was there.
        var existed = await SizeAsync(tenantId, fileId, ct) is not null;
        await Guard(() => _s3.DeleteObjectAsync(new DeleteObjectRequest { BucketName = Bucket, Key = MediaKeys.Of(tenantId, fileId) }, ct));
        return existed;
    }

    public async Task<string> StartMultipartAsync(string tenantId, string fileId, CancellationToken ct = default) =>
        (await Guard(() => _s3.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = Bucket, Key = MediaKeys.Of(tenantId, fileId) }, ct))).UploadId;

    public async Task<string> PutPartAsync(string tenantId, string fileId, string multipartId, int index, Stream content, long length,
        CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        // The request needs a length and a stream it can sign: one part (at most the chunk size) is held in memory.
        var body = content;
        if (!content.CanSeek)
        {
            var buffer = new MemoryStream((int)Math.Min(length, PartSize * 2L));
            await new BoundedReadStream(content, length, leaveOpen: true).CopyToAsync(buffer, ct);
            if (buffer.Length != length) throw new EndOfStreamException($"The part ended after {buffer.Length} of {length} bytes.");
            buffer.Position = 0;
            body = buffer;
        }
        return await UploadPartAsync(MediaKeys.Of(tenantId, fileId), multipartId, index + 1, body, length, ct);
    }

    public Task CompleteMultipartAsync(string tenantId, string fileId, string multipartId, IReadOnlyList<string> partTags, CancellationToken ct = default) =>
        Guard(() => _s3.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
        {
            BucketName = Bucket,
            Key = MediaKeys.Of(tenantId, fileId),
            UploadId = multipartId,
            PartETags = partTags.Select((tag, i) => new PartETag(i + 1, tag)).ToList(),
        }, ct));

    public async Task AbortMultipartAsync(string tenantId, string fileId, string multipartId, CancellationToken ct = default)
    {
        try
        {
            await _s3.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = Bucket, Key = MediaKeys.Of(tenantId, fileId), UploadId = multipartId }, ct);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
        }
        catch (Exception e) when (IsOutage(e))
        {
            throw Unavailable(e);
        }
    }

    /// <summary>The multipart uploads still open under a tenant (orphans are what an abort missed).</summary>
    public async Task<IReadOnlyList<string>> OpenMultipartUploadsAsync(string tenantId, CancellationToken ct = default)
    {
        var listing = await Guard(() => _s3.ListMultipartUploadsAsync(new ListMultipartUploadsRequest { BucketName = Bucket, Prefix = tenantId + "/" }, ct));
        return (listing.MultipartUploads ?? []).Select(u => u.UploadId).ToList();
    }

    private async Task<string> UploadPartAsync(string key, string uploadId, int partNumber, Stream body, long length, CancellationToken ct)
    {
        var response = await Guard(() => _s3.UploadPartAsync(new UploadPartRequest
        {
            BucketName = Bucket, Key = key, UploadId = uploadId, PartNumber = partNumber, InputStream = body, PartSize = length,
            UseChunkEncoding = false,
        }, ct));
        return response.ETag;
    }

    private async Task AbortQuietlyAsync(string key, string uploadId)
    {
        try
        {
            await _s3.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = Bucket, Key = key, UploadId = uploadId });
        }
        catch (Exception)
        {
            // Best effort: the expired-session sweep and the bucket's lifecycle catch what is left.
        }
    }

    private static async Task<int> FillAsync(Stream content, byte[] buffer, CancellationToken ct)
    {
        var n = 0;
        while (n < PartSize)
        {
            var read = await content.ReadAsync(buffer.AsMemory(n, PartSize - n), ct);
            if (read == 0) break;
            n += read;
        }
        return n;
    }

    private static async Task<T> Guard<T>(Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (Exception e) when (IsOutage(e))
        {
            throw Unavailable(e);
        }
    }

    private static bool IsOutage(Exception e) =>
        e is HttpRequestException or System.Net.Sockets.SocketException or AmazonServiceException { StatusCode: >= HttpStatusCode.InternalServerError }
        || (e is AmazonClientException && e is not AmazonServiceException)
        || (e is TaskCanceledException && e.InnerException is TimeoutException);

    private static MediaStoreUnavailableException Unavailable(Exception e) => new("The S3 store is unavailable: " + e.Message, e);

    public void Dispose() => _s3.Dispose();

    /// <summary>The body of a GET, disposing the response with it.</summary>
    private sealed class ResponseStream(GetObjectResponse response) : Stream
    {
        private readonly Stream _inner = response.ResponseStream;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => response.ContentLength;
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => _inner.ReadAsync(buffer, offset, count, ct);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) => _inner.ReadAsync(buffer, ct);
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) response.Dispose();
            base.Dispose(disposing);
        }
    }
}
