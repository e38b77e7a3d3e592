using System.Collections.Concurrent;
using Prometheus;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Search;

/// <summary>
/// Results of an identical search by the same user, kept for <see cref="Ttl"/> in this node's memory, but only while
/// nothing that could change them was written: each entry remembers the index's generation (the search and read-model
/// projections' offsets and the erasure epoch, one primary-key read in the shared database), and any change of it, on
/// whatever node, makes the entry stale. New messages, edits, deletes, membership changes, a reindex and an erasure all
/// move the generation.
/// </summary>
public sealed class SearchCache(SearchIndex index)
{
    public static readonly TimeSpan Ttl = TimeSpan.FromSeconds(60);
    private const int MaxEntries = 10_000;
    public const string EpochName = "search-epoch";

    private static readonly Counter Lookups = Metrics.CreateCounter("caas_search_cache_total", "Search result cache lookups, by outcome (hit, miss).", "outcome");

    private sealed record Entry(string Generation, DateTime At, object Value);

    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    /// <summary>The cached value for the key when it is fresh, else computes, stores and answers it.</summary>
    public async Task<(T Value, bool Hit)> GetOrAddAsync<T>(string key, Func<Task<T>> compute, CancellationToken ct) where T : class
    {
        var generation = await GenerationAsync(ct);
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

    private async Task<string> GenerationAsync(CancellationToken ct)
    {
        await using var c = await index.OpenAsync(ct);
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
