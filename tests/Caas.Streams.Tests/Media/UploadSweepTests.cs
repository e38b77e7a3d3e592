using Caas.Streams.Media;
using Caas.Streams.Operational;
using Caas.Tests.Shared;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Caas.Streams.Tests.Media;

/// <summary>Expired upload sessions are aborted in the store: no multipart parts are left behind (radosgw and the file store).</summary>
public sealed class UploadSweepTests
{
    private static async Task<UploadSession> ExpiredSessionWithAPartAsync(IMediaStore store, IUploadSessions sessions, string tenant)
    {
        var fileId = "f_" + Guid.NewGuid().ToString("N");
        var multipart = await store.StartMultipartAsync(tenant, fileId);
        var tag = await store.PutPartAsync(tenant, fileId, multipart, 0, new MemoryStream(new byte[1000]), 1000);
        var session = new UploadSession("u_" + Guid.NewGuid().ToString("N"), tenant, "alice", "c_1", fileId, "a.bin", "application/pdf", null, null,
            5 * 1024 * 1024, multipart, DateTimeOffset.UtcNow.AddHours(-2), DateTimeOffset.UtcNow.AddHours(-1));
        await sessions.CreateAsync(session);
        await sessions.ClaimChunkAsync(tenant, session.UploadId, 0);
        await sessions.RecordChunkAsync(tenant, session.UploadId, new UploadChunk(0, 1000, "x", tag));
        return session;
    }

    [Fact]
    public async Task On_radosgw_with_redis_sessions_nothing_is_left_after_the_sweep()
    {
        using var store = new S3MediaStore(TestServices.S3Endpoint, TestServices.NewBucket("sweep"), TestServices.S3AccessKey, TestServices.S3SecretKey);
        await store.EnsureReadyAsync();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(TestServices.Redis);
        var sessions = new RedisUploadSessions(redis, "sweep-" + Guid.NewGuid().ToString("N"));
        var session = await ExpiredSessionWithAPartAsync(store, sessions, "t-sweep");
        Assert.Single(await store.OpenMultipartUploadsAsync("t-sweep"));

        Assert.Equal(1, await new UploadSweep(sessions, store, NullLogger<UploadSweep>.Instance).SweepOnceAsync());
        Assert.Empty(await store.OpenMultipartUploadsAsync("t-sweep"));
        Assert.Null(await sessions.GetAsync("t-sweep", session.UploadId));
        Assert.Null(await store.SizeAsync("t-sweep", session.FileId));
        Assert.Equal(0, await new UploadSweep(sessions, store, NullLogger<UploadSweep>.Instance).SweepOnceAsync());
    }

    [Fact]
    public async Task On_the_file_store_with_operational_sessions_nothing_is_left_after_the_sweep()
    {
        var root = Path.Combine(Path.GetTempPath(), "caas-sweep-" + Guid.NewGuid().ToString("N"));
        var store = new FileMediaStore(root);
        await store.EnsureReadyAsync();
        await using var operational = new OperationalStore(TestDatabases.Storage("sqlite"));
        await operational.MigrateAsync();
        var sessions = new OperationalUploadSessions(operational);
        var tenant = "t-sweep-" + Guid.NewGuid().ToString("N")[..8];
        var session = await ExpiredSessionWithAPartAsync(store, sessions, tenant);
        Assert.Single(Directory.GetDirectories(Path.Combine(root, ".uploads", tenant)));

        Assert.Equal(1, await new UploadSweep(sessions, store, NullLogger<UploadSweep>.Instance).SweepOnceAsync());
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(root, ".uploads", tenant)));
        Assert.Null(await sessions.GetAsync(tenant, session.UploadId));
        Directory.Delete(root, recursive: true);
    }
}
