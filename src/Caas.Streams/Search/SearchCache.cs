using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Prometheus;
using StackExchange.Redis;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Search;

/// <summary>
/// Results of an identical search by the same user, kept for <see cref="Ttl"/>, but only while nothing that could
/// change them was written: each entry remembers the index's generation (the search and read-model projections' offsets
/// and the erasure epoch, one primary-key read in the shared database), and any change of it, on whatever node, makes
/// the entry stale. New messages, edits, deletes, membership changes, a reindex and an erasure all move the generation.
/// <para>
/// Where entries live: with Redis (<c>CAAS_REDIS</c>) one cache for every node of the cluster, so a user whose requests
/// land on different nodes still hits it (key <c>{prefix}:search-cache:{SHA-256 of the query key}</c>, value the
/// generation and the results as JSON, expiring after <see cref="Ttl"/>); without it, this node's memory (at most
/// 10,000 entries). The cache is only a shortcut: Redis away or slow (a 250 ms bound) is a miss, never a failed search.
/// </para>
/// </summary>
public sealed class SearchCache
{
    public static readonly TimeSpan Ttl = TimeSpan.FromSeconds(60);
    /// <summary>The longest a search waits for Redis before it runs without the cache.</summary>
    public static readonly TimeSpan DefaultRedisBound = TimeSpan.FromMilliseconds(250);
    private const int MaxEntries = 10_000;
    public const string EpochName = "search-epoch";

    private static readonly Counter Lookups = Metrics.CreateCounter("caas_search_cache_total",
        "Search result cache lookups, by outcome (hit, miss; error: Redis failed and the search ran).", "outcome");

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private sealed record Entry(string Generation, DateTime At, object Value);

    private sealed record Stored<T>(string Generation, T Value);

    private readonly SearchIndex _index;
    private readonly IConnectionMultiplexer? _redis;
    private readonly string _prefix;
    private readonly TimeSpan _redisBound;
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    public SearchCache(SearchIndex index) : this(index, null)
    {
    }

    /// <param name="redis">Null: this node's memory.</param>
    /// <param name="prefix">Keys' prefix in Redis (one per cluster sharing a Redis).</param>
    /// <param name="redisBound">How long a search waits for Redis (default <see cref="DefaultRedisBound"/>).</param>
    public SearchCache(SearchIndex index, IConnectionMultiplexer? redis, string prefix = "caas", TimeSpan? redisBound = null)
    {
        _index = index;
        _redis = redis;
        _prefix = prefix;
        _redisBound = redisBound ?? DefaultRedisBound;
    }

    /// <summary>"redis" or "memory".</summary>
    public string Kind => _redis is null ? "memory" : "redis";

    /// <summary>The cached value for the key when it is fresh, else computes, stores and answers it.</summary>
    public async Task<(T Value, bool Hit)> GetOrAddAsync<T>(string key, Func<Task<T>> compute, CancellationToken ct) where T : class
    {
        var generation = await GenerationAsync(ct);
        if (_redis is not null) return await GetOrAddInRedisAsync(key, generation, compute, ct);
        if (_entries.TryGetValue(key, out var entry) && entry.Generation == generation && DateTime.UtcNow - entry.At < Ttl && entry.Value is T cached)
        {
            Lookups.WithLabels("hit").Inc();
            return (cached, true);
        }
        Lookups.WithLabels("miss").Inc();
        var value = await compute();
        if (_entries.Count >= MaxEntries) _entries.Clear();
        _entries[key] = new Entry(generation, DateTime.UtcNow, value);
        return (value, false);
    }

    private async Task<(T Value, bool Hit)> GetOrAddInRedisAsync<T>(string key, string generation, Func<Task<T>> compute, CancellationToken ct)
        where T : class
    {
        var redisKey = (RedisKey)(_prefix + ":search-cache:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key))));
        var db = _redis!.GetDatabase();
        var failed = false;
        try
        {
            var found = await db.StringGetAsync(redisKey).WaitAsync(_redisBound, ct);
            if (found.HasValue && JsonSerializer.Deserialize<Stored<T>>((byte[])found!, Json) is { } stored && stored.Generation == generation)
            {
                Lookups.WithLabels("hit").Inc();
                return (stored.Value, true);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException or JsonException)
        {
            failed = true;
        }
        Lookups.WithLabels(failed ? "error" : "miss").Inc();
        var value = await compute();
        if (!failed)
        {
            try
            {
                await db.StringSetAsync(redisKey, JsonSerializer.SerializeToUtf8Bytes(new Stored<T>(generation, value), Json), Ttl).WaitAsync(_redisBound, ct);
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                Lookups.WithLabels("error").Inc();
            }
        }
        return (value, false);
    }

    private async Task<string> GenerationAsync(CancellationToken ct)
    {
        await using var c = await _index.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT name, last_offset FROM rm_projection_offsets WHERE name IN (@s, @c, @e) ORDER BY name",
            ("s", SearchIndex.ProjectionName), ("c", ProjectionName), ("e", EpochName));
        var parts = new List<string>(3);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) parts.Add(r.GetString(0) + "=" + r.GetInt64(1));
        return string.Join(';', parts);
    }

    /// <summary>Moves the erasure epoch: every cached result, on every node, is stale (entries were deleted without a new offset).</summary>
    public static async Task BumpEpochAsync(System.Data.Common.DbConnection c, CancellationToken ct)
    {
        await using var cmd = Command(c, null,
            "INSERT INTO rm_projection_offsets (name, last_offset) VALUES (@e, 1) " +
            "ON CONFLICT (name) DO UPDATE SET last_offset = rm_projection_offsets.last_offset + 1", ("e", EpochName));
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
