using System.Collections.Concurrent;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using Caas.Actors.Privacy;
using Caas.Streams.Operational;
using Caas.Streams.ReadModel;
using Microsoft.Extensions.Logging;
using Prometheus;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Privacy;

/// <summary>
/// The master key (<c>CAAS_MASTER_KEY</c>, 32 bytes in base64) that wraps every data key. Its id, a digest prefix,
/// is stored with each wrapped key, so a node started with the wrong master key stops at start-up instead of
/// writing content nobody can read.
/// </summary>
public sealed class MasterKey
{
    public MasterKey(byte[] key)
    {
        if (key.Length != 32) throw new ArgumentException("The master key must be 32 bytes (AES-256), given in base64.", nameof(key));
        Key = key;
        Id = Convert.ToHexStringLower(SHA256.HashData(key))[..16];
    }

    public byte[] Key { get; }
    public string Id { get; }

    public static MasterKey FromBase64(string value)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(value.Trim());
        }
        catch (FormatException)
        {
            throw new ArgumentException("The master key is not base64 (expected 32 random bytes, e.g. `openssl rand -base64 32`).");
        }
        return new MasterKey(bytes);
    }

    public static MasterKey Generate() => new(RandomNumberGenerator.GetBytes(32));
}

/// <summary>
/// Per-user data keys in the <c>data_keys</c> table of the operational store, wrapped (AES-256-GCM) by the
/// <see cref="MasterKey"/>, and the AES-256-GCM sealing of message content under them. Destroying a user's keys
/// erases that user's content everywhere it is stored sealed: only the key row's metadata remains.
/// Keys are cached per node: a destroyed key is evicted on every node (<see cref="DataKeyEvictions"/>), and cached keys
/// (for sealing and for opening) are re-checked after <see cref="CacheTtl"/> even if an eviction notice was lost.
/// </summary>
public sealed class ContentVault(OperationalStore store, MasterKey master) : IContentVault
{
    private const int NonceSize = 12, TagSize = 16;

    private static readonly Counter KeyLoads = Metrics.CreateCounter("caas_data_key_loads_total",
        "Data keys read from (or created in) the database, by purpose.", "purpose");
    private static readonly Counter Destroyed = Metrics.CreateCounter("caas_data_keys_destroyed_total", "Data keys destroyed by erasure.");
    private static readonly Counter Unreadable = Metrics.CreateCounter("caas_sealed_content_unreadable_total",
        "Sealed content that could not be opened although its key was not destroyed, by reason (missing_key, tampered).", "reason");

    /// <summary>Where unreadable content is reported (the node sets its own once the host is built).</summary>
    public Microsoft.Extensions.Logging.ILogger Logger { get; set; } = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    public static readonly TimeSpan CacheTtl = TimeSpan.FromSeconds(60);

    private sealed record ActiveKey(string KeyId, byte[] Key, DateTime LoadedAt);

    /// <summary>A key row as last read: <see cref="Key"/> null once destroyed; <see cref="Missing"/> when there is no row at all.</summary>
    private sealed record KnownKey(string TenantId, byte[]? Key, DateTime LoadedAt, bool Missing = false);

    private readonly ConcurrentDictionary<(string Tenant, string User), ActiveKey> _active = new();
    private readonly ConcurrentDictionary<string, KnownKey> _known = new();

    // One AesGcm per data key, not one per call (each new one repeats the key schedule). Keyed by the cached key's bytes,
    // so it is dropped with them on eviction; AesGcm is not thread-safe, so a use locks it (uncontended but for one key's
    // concurrent seals). Not disposed: an evicted key may still be in use on another thread; its finalizer frees it.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<byte[], AesGcm> _ciphers = new();

    private AesGcm CipherOf(byte[] key) => _ciphers.GetValue(key, k => new AesGcm(k, TagSize));

    /// <summary>Stops a node whose master key is not the one that wrapped the stored keys.</summary>
    public async Task CheckMasterKeyAsync(CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT master_key_id FROM data_keys WHERE wrapped_key IS NOT NULL AND master_key_id <> @id LIMIT 1", ("id", master.Id));
        if (await cmd.ExecuteScalarAsync(ct) is string other)
            throw new InvalidOperationException(
                $"The configured master key (id {master.Id}) did not wrap the stored data keys (id {other}): set CAAS_MASTER_KEY to the key this database was written with.");
    }

    public SealedContent Seal(string tenantId, string userId, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData) =>
        Encrypt(CachedActive(tenantId, userId) ?? LoadOrCreate(tenantId, userId), plaintext, associatedData);

    /// <summary>
    /// Like <see cref="Seal"/>; a key not cached is read (or created) asynchronously, and the concurrent seals of one user
    /// that miss together share that one load. A failed load fails those seals only and is tried again by the next.
    /// </summary>
    public ValueTask<SealedContent> SealAsync(string tenantId, string userId, ReadOnlyMemory<byte> plaintext, ReadOnlyMemory<byte> associatedData,
        CancellationToken ct = default) =>
        CachedActive(tenantId, userId) is { } key
            ? ValueTask.FromResult(Encrypt(key, plaintext.Span, associatedData.Span))
            : SealAfterLoadAsync(tenantId, userId, plaintext, associatedData, ct);

    private async ValueTask<SealedContent> SealAfterLoadAsync(string tenantId, string userId, ReadOnlyMemory<byte> plaintext,
        ReadOnlyMemory<byte> associatedData, CancellationToken ct)
    {
        var key = await LoadOrCreateSharedAsync(tenantId, userId).WaitAsync(ct);
        return Encrypt(key, plaintext.Span, associatedData.Span);
    }

    // Re-read after the cache window too, so a node that missed an eviction notice stops sealing under a destroyed key.
    private ActiveKey? CachedActive(string tenantId, string userId) =>
        _active.TryGetValue((tenantId, userId), out var cached) && DateTime.UtcNow - cached.LoadedAt <= CacheTtl ? cached : null;

    // The async loads in flight, one per user: the seals that miss while it runs wait for it instead of loading again.
    private readonly ConcurrentDictionary<(string Tenant, string User), Task<ActiveKey>> _loading = new();

    private Task<ActiveKey> LoadOrCreateSharedAsync(string tenantId, string userId)
    {
        var user = (tenantId, userId);
        while (true)
        {
            if (_loading.TryGetValue(user, out var running)) return running;
            var load = new TaskCompletionSource<ActiveKey>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_loading.TryAdd(user, load.Task)) continue;
            _ = RunLoadAsync(user, load);
            return load.Task;
        }
    }

    private async Task RunLoadAsync((string Tenant, string User) user, TaskCompletionSource<ActiveKey> load)
    {
        try
        {
            // Not cancelled by one waiter: the others (and the cache) still want the key.
            load.TrySetResult(await LoadOrCreateAsync(user.Tenant, user.User, CancellationToken.None));
        }
        catch (Exception e)
        {
            load.TrySetException(e);
        }
        finally
        {
            _loading.TryRemove(new KeyValuePair<(string, string), Task<ActiveKey>>(user, load.Task));
        }
    }

    private SealedContent Encrypt(ActiveKey key, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        var output = new byte[NonceSize + plaintext.Length + TagSize];
        var nonce = output.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        var aes = CipherOf(key.Key);
        lock (aes)
            aes.Encrypt(nonce, plaintext, output.AsSpan(NonceSize, plaintext.Length), output.AsSpan(NonceSize + plaintext.Length), associatedData);
        return new SealedContent(key.KeyId, output);
    }

    public byte[]? Open(string tenantId, SealedContent sealedContent, ReadOnlySpan<byte> associatedData)
    {
        // A missing key is re-read on every open (not cached): restoring the key row makes the content readable again.
        if (!_known.TryGetValue(sealedContent.KeyId, out var known) || known.Missing ||
            (known.Key is not null && DateTime.UtcNow - known.LoadedAt > CacheTtl))
            known = Load(sealedContent.KeyId);
        if (known.Missing)
            throw Unopenable("missing_key", sealedContent, tenantId,
                $"Data key {sealedContent.KeyId} is not in data_keys (was the read-model database restored from an older copy?)");
        if (known.TenantId != tenantId)
            throw Unopenable("tampered", sealedContent, tenantId, $"Data key {sealedContent.KeyId} belongs to another tenant");
        if (known.Key is null) return null;
        try
        {
            var data = sealedContent.Data;
            if (data.Length < NonceSize + TagSize) throw new CryptographicException("Sealed content is too short.");
            var plain = new byte[data.Length - NonceSize - TagSize];
            var aes = CipherOf(known.Key);
            lock (aes)
                aes.Decrypt(data.AsSpan(0, NonceSize), data.AsSpan(NonceSize, plain.Length), data.AsSpan(NonceSize + plain.Length), plain, associatedData);
            return plain;
        }
        catch (CryptographicException)
        {
            throw Unopenable("tampered", sealedContent, tenantId,
                $"Content sealed under {sealedContent.KeyId} does not open: altered, or moved from another message, conversation or event");
        }
    }

    private SealedContentUnreadableException Unopenable(string reason, SealedContent sealedContent, string tenantId, string message)
    {
        Unreadable.WithLabels(reason).Inc();
        Logger.LogError("Sealed content unreadable ({Reason}) in tenant {TenantId}, key {KeyId}: {Message}", reason, tenantId, sealedContent.KeyId, message);
        return new SealedContentUnreadableException(reason, message);
    }

    /// <summary>The ids of the user's keys that are not destroyed yet (what an erasure is about to destroy).</summary>
    public async Task<IReadOnlyList<string>> LiveKeyIdsAsync(string tenantId, string userId, CancellationToken ct = default)
    {
        var ids = new List<string>();
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT key_id FROM data_keys WHERE tenant_id = @t AND user_id = @u AND destroyed_at IS NULL", ("t", tenantId), ("u", userId));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) ids.Add(r.GetString(0));
        return ids;
    }

    /// <summary>Destroys every live key of the user (the rows stay, without key material) and returns their ids.</summary>
    public async Task<IReadOnlyList<string>> DestroyAsync(string tenantId, string userId, string actorId, CancellationToken ct = default)
    {
        var ids = new List<string>();
        await using (var c = await store.OpenAsync(ct))
        await using (var cmd = Command(c, null,
                         "UPDATE data_keys SET wrapped_key = NULL, destroyed_at = @at, destroyed_by = @by " +
                         "WHERE tenant_id = @t AND user_id = @u AND destroyed_at IS NULL RETURNING key_id",
                         ("at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), ("by", actorId), ("t", tenantId), ("u", userId)))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct)) ids.Add(r.GetString(0));
        Evict(tenantId, userId, ids);
        Destroyed.Inc(ids.Count);
        return ids;
    }

    /// <summary>Forgets cached keys of the user (after a destruction here or on another node).</summary>
    public void Evict(string tenantId, string userId, IEnumerable<string> keyIds)
    {
        _active.TryRemove((tenantId, userId), out _);
        foreach (var id in keyIds) _known[id] = new KnownKey(tenantId, null, DateTime.UtcNow);
        // Counted after the keys are gone: a body opened before this (with a key now destroyed) is opened again.
        Interlocked.Increment(ref _erasures);
    }

    /// <inheritdoc />
    public long Erasures => Interlocked.Read(ref _erasures);
    private long _erasures;

    // The sync and async key loads share their statements and bookkeeping; they differ only in how they wait.
    private ActiveKey LoadOrCreate(string tenantId, string userId)
    {
        KeyLoads.WithLabels("seal").Inc();
        using var c = store.Open();
        var found = ReadActive(c, tenantId, userId);
        if (found is null)
        {
            using (var insert = NewKeyInsert(c, tenantId, userId)) insert.ExecuteNonQuery();
            // Another node may have won the race: whichever row is live is the user's key.
            found = ReadActive(c, tenantId, userId) ?? throw new InvalidOperationException("A new data key could not be stored.");
        }
        return Remember(tenantId, userId, found);
    }

    private async Task<ActiveKey> LoadOrCreateAsync(string tenantId, string userId, CancellationToken ct)
    {
        KeyLoads.WithLabels("seal").Inc();
        await using var c = await store.OpenAsync(ct);
        var found = await ReadActiveAsync(c, tenantId, userId, ct);
        if (found is null)
        {
            await using (var insert = NewKeyInsert(c, tenantId, userId)) await insert.ExecuteNonQueryAsync(ct);
            found = await ReadActiveAsync(c, tenantId, userId, ct) ?? throw new InvalidOperationException("A new data key could not be stored.");
        }
        return Remember(tenantId, userId, found);
    }

    /// <summary>A new data key for the user, stored unless a live one appeared meanwhile (then that one is read back).</summary>
    private DbCommand NewKeyInsert(DbConnection c, string tenantId, string userId)
    {
        var keyId = "dk_" + Guid.CreateVersion7().ToString("N");
        var key = RandomNumberGenerator.GetBytes(32);
        return Command(c, null,
            "INSERT INTO data_keys (key_id, tenant_id, user_id, wrapped_key, master_key_id, created_at) " +
            "VALUES (@id, @t, @u, @w, @m, @at) ON CONFLICT (tenant_id, user_id) WHERE destroyed_at IS NULL DO NOTHING",
            ("id", keyId), ("t", tenantId), ("u", userId), ("w", Wrap(keyId, tenantId, userId, key)), ("m", master.Id),
            ("at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
    }

    private ActiveKey Remember(string tenantId, string userId, ActiveKey found)
    {
        _active[(tenantId, userId)] = found;
        _known[found.KeyId] = new KnownKey(tenantId, found.Key, DateTime.UtcNow);
        return found;
    }

    private static DbCommand ActiveKeyQuery(DbConnection c, string tenantId, string userId) => Command(c, null,
        "SELECT key_id, wrapped_key FROM data_keys WHERE tenant_id = @t AND user_id = @u AND destroyed_at IS NULL", ("t", tenantId), ("u", userId));

    private ActiveKey? ReadActive(DbConnection c, string tenantId, string userId)
    {
        using var cmd = ActiveKeyQuery(c, tenantId, userId);
        using var r = cmd.ExecuteReader();
        return r.Read() ? Active(tenantId, userId, r.GetString(0), r.GetString(1)) : null;
    }

    private async Task<ActiveKey?> ReadActiveAsync(DbConnection c, string tenantId, string userId, CancellationToken ct)
    {
        await using var cmd = ActiveKeyQuery(c, tenantId, userId);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? Active(tenantId, userId, r.GetString(0), r.GetString(1)) : null;
    }

    private ActiveKey Active(string tenantId, string userId, string keyId, string wrapped) =>
        new(keyId, Unwrap(keyId, tenantId, userId, wrapped), DateTime.UtcNow);

    private KnownKey Load(string keyId)
    {
        KeyLoads.WithLabels("open").Inc();
        using var c = store.Open();
        using var cmd = Command(c, null, "SELECT tenant_id, user_id, wrapped_key FROM data_keys WHERE key_id = @id", ("id", keyId));
        using var r = cmd.ExecuteReader();
        // An unknown key id is not an erasure (erasure keeps the row, without key material): it is reported, never read as erased.
        var known = !r.Read()
            ? new KnownKey(string.Empty, null, DateTime.UtcNow, Missing: true)
            : new KnownKey(r.GetString(0), r.IsDBNull(2) ? null : Unwrap(keyId, r.GetString(0), r.GetString(1), r.GetString(2)), DateTime.UtcNow);
        _known[keyId] = known;
        return known;
    }

    private string Wrap(string keyId, string tenantId, string userId, byte[] key)
    {
        var output = new byte[NonceSize + key.Length + TagSize];
        RandomNumberGenerator.Fill(output.AsSpan(0, NonceSize));
        using var aes = new AesGcm(master.Key, TagSize);
        aes.Encrypt(output.AsSpan(0, NonceSize), key, output.AsSpan(NonceSize, key.Length), output.AsSpan(NonceSize + key.Length), WrapAad(keyId, tenantId, userId));
        return Convert.ToBase64String(output);
    }

    private byte[] Unwrap(string keyId, string tenantId, string userId, string wrapped)
    {
        var data = Convert.FromBase64String(wrapped);
        var key = new byte[data.Length - NonceSize - TagSize];
        using var aes = new AesGcm(master.Key, TagSize);
        aes.Decrypt(data.AsSpan(0, NonceSize), data.AsSpan(NonceSize, key.Length), data.AsSpan(NonceSize + key.Length), key, WrapAad(keyId, tenantId, userId));
        return key;
    }

    private static byte[] WrapAad(string keyId, string tenantId, string userId) => Encoding.UTF8.GetBytes(keyId + "\n" + tenantId + "\n" + userId);
}
