using Caas.Streams.Media;
using Caas.Streams.Operational;
using Caas.Tests.Shared;
using StackExchange.Redis;

namespace Caas.Streams.Tests.Media;

/// <summary>One suite, three homes for upload sessions: Redis, and the operational store on SQLite and PostgreSQL.</summary>
public abstract class UploadSessionsContract : IAsyncLifetime
{
    protected IUploadSessions Sessions { get; set; } = null!;

    public abstract Task InitializeAsync();

    public abstract Task DisposeAsync();

    private static UploadSession NewSession(string tenant = "t-up", DateTimeOffset? expires = null, long? size = 20) =>
        new("u_" + Guid.NewGuid().ToString("N"), tenant, "alice", "c_1", "f_" + Guid.NewGuid().ToString("N"), "a.bin", "application/octet-stream",
            size, null, 8, "mp-1", DateTimeOffset.UtcNow, expires ?? DateTimeOffset.UtcNow.AddHours(1));

    [Fact]
    public async Task A_session_reads_back_and_only_in_its_tenant()
    {
        var s = NewSession();
        await Sessions.CreateAsync(s);
        var read = await Sessions.GetAsync(s.TenantId, s.UploadId);
        Assert.NotNull(read);
        Assert.Equal(s, read.Session);
        Assert.Equal(UploadState.Uploading, read.State);
        Assert.Empty(read.Chunks);
        Assert.Equal(3, read.Session.ChunkCount);
        Assert.Null(await Sessions.GetAsync("t-other", s.UploadId));
        Assert.IsType<ChunkClaim.Gone>(await Sessions.ClaimChunkAsync("t-other", s.UploadId, 0));
    }

    [Fact]
    public async Task A_chunk_is_claimed_once_then_received_and_a_released_claim_can_be_taken_again()
    {
        var s = NewSession();
        await Sessions.CreateAsync(s);
        Assert.IsType<ChunkClaim.Claimed>(await Sessions.ClaimChunkAsync(s.TenantId, s.UploadId, 1));
        Assert.IsType<ChunkClaim.Busy>(await Sessions.ClaimChunkAsync(s.TenantId, s.UploadId, 1));
        Assert.Equal(1, (await Sessions.GetAsync(s.TenantId, s.UploadId))!.PendingChunks);
        await Sessions.RecordChunkAsync(s.TenantId, s.UploadId, new UploadChunk(1, 8, "abc", "tag-1"));
        var received = Assert.IsType<ChunkClaim.Received>(await Sessions.ClaimChunkAsync(s.TenantId, s.UploadId, 1));
        Assert.Equal(new UploadChunk(1, 8, "abc", "tag-1"), received.Chunk);
        await Sessions.ReleaseChunkAsync(s.TenantId, s.UploadId, 1); // a received chunk is never released
        Assert.IsType<ChunkClaim.Received>(await Sessions.ClaimChunkAsync(s.TenantId, s.UploadId, 1));

        Assert.IsType<ChunkClaim.Claimed>(await Sessions.ClaimChunkAsync(s.TenantId, s.UploadId, 0));
        await Sessions.ReleaseChunkAsync(s.TenantId, s.UploadId, 0);
        Assert.IsType<ChunkClaim.Claimed>(await Sessions.ClaimChunkAsync(s.TenantId, s.UploadId, 0));
        await Sessions.RecordChunkAsync(s.TenantId, s.UploadId, new UploadChunk(0, 8, "def", "tag-0"));
        var read = await Sessions.GetAsync(s.TenantId, s.UploadId);
        Assert.Equal([0, 1], read!.Chunks.Select(c => c.Index));
        Assert.Equal(16, read.ReceivedBytes);
        Assert.Equal(0, read.PendingChunks);
    }

    [Fact]
    public async Task Of_many_requests_for_one_index_exactly_one_claims_it()
    {
        var s = NewSession();
        await Sessions.CreateAsync(s);
        var claims = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(() => Sessions.ClaimChunkAsync(s.TenantId, s.UploadId, 2))));
        Assert.Single(claims, c => c is ChunkClaim.Claimed);
        Assert.All(claims, c => Assert.True(c is ChunkClaim.Claimed or ChunkClaim.Busy));
    }

    [Fact]
    public async Task State_moves_only_from_the_expected_state_and_ends_uploading()
    {
        var s = NewSession();
        await Sessions.CreateAsync(s);
        Assert.True(await Sessions.TransitionAsync(s.TenantId, s.UploadId, UploadState.Uploading, UploadState.Completing));
        Assert.False(await Sessions.TransitionAsync(s.TenantId, s.UploadId, UploadState.Uploading, UploadState.Completing));
        Assert.IsType<ChunkClaim.Gone>(await Sessions.ClaimChunkAsync(s.TenantId, s.UploadId, 0));
        Assert.True(await Sessions.TransitionAsync(s.TenantId, s.UploadId, UploadState.Completing, UploadState.Complete));
        Assert.Equal(UploadState.Complete, (await Sessions.GetAsync(s.TenantId, s.UploadId))!.State);
        Assert.False(await Sessions.TransitionAsync("t-other", s.UploadId, UploadState.Complete, UploadState.Uploading));
    }

    [Fact]
    public async Task Expired_unfinished_sessions_are_found_for_the_sweep_and_deleted_with_their_chunks()
    {
        var tenant = "t-exp-" + Guid.NewGuid().ToString("N")[..8];
        var expired = NewSession(tenant, DateTimeOffset.UtcNow.AddMinutes(-1));
        var finished = NewSession(tenant, DateTimeOffset.UtcNow.AddMinutes(-1));
        var live = NewSession(tenant);
        foreach (var s in new[] { expired, finished, live }) await Sessions.CreateAsync(s);
        await Sessions.TransitionAsync(tenant, finished.UploadId, UploadState.Uploading, UploadState.Complete);
        await Sessions.ClaimChunkAsync(tenant, expired.UploadId, 0);
        await Sessions.RecordChunkAsync(tenant, expired.UploadId, new UploadChunk(0, 8, "x", "y"));

        var found = (await Sessions.ExpiredAsync(DateTimeOffset.UtcNow, 1000)).Where(s => s.TenantId == tenant).ToList();
        Assert.Equal([expired.UploadId], found.Select(s => s.UploadId));
        await Sessions.DeleteAsync(tenant, expired.UploadId);
        Assert.Null(await Sessions.GetAsync(tenant, expired.UploadId));
        Assert.DoesNotContain(await Sessions.ExpiredAsync(DateTimeOffset.UtcNow, 1000), s => s.UploadId == expired.UploadId);
        Assert.NotNull(await Sessions.GetAsync(tenant, live.UploadId));
    }
}

public sealed class RedisUploadSessionsTests : UploadSessionsContract
{
    private ConnectionMultiplexer _redis = null!;

    public override async Task InitializeAsync()
    {
        _redis = await ConnectionMultiplexer.ConnectAsync(TestServices.Redis);
        // A prefix of its own: the suite shares the server with other test classes.
        Sessions = new RedisUploadSessions(_redis, "test-" + Guid.NewGuid().ToString("N"));
    }

    public override async Task DisposeAsync() => await _redis.DisposeAsync();

    [Fact]
    public async Task An_unreachable_redis_throws_instead_of_answering()
    {
        var options = ConfigurationOptions.Parse("127.0.0.1:9");
        options.AbortOnConnectFail = false;
        options.ConnectTimeout = 1000;
        options.ConnectRetry = 0;
        await using var down = await ConnectionMultiplexer.ConnectAsync(options);
        var sessions = new RedisUploadSessions(down);
        await Assert.ThrowsAnyAsync<RedisException>(() => sessions.GetAsync("t", "u"));
    }
}

public sealed class SqliteUploadSessionsTests : UploadSessionsContract
{
    private OperationalStore _store = null!;

    public override async Task InitializeAsync()
    {
        _store = new OperationalStore(TestDatabases.Storage("sqlite"));
        await _store.MigrateAsync();
        Sessions = new OperationalUploadSessions(_store);
    }

    public override async Task DisposeAsync() => await _store.DisposeAsync();
}

public sealed class PostgresUploadSessionsTests : UploadSessionsContract
{
    private OperationalStore _store = null!;

    public override async Task InitializeAsync()
    {
        _store = new OperationalStore(TestDatabases.Storage("postgres"));
        await _store.MigrateAsync();
        Sessions = new OperationalUploadSessions(_store);
    }

    public override async Task DisposeAsync() => await _store.DisposeAsync();
}
