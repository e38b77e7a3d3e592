using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Persistence.Query;
using Caas.Actors.Tenants;
using Caas.Streams.ReadModel;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Search;

/// <summary>
/// Each tenant's search language (the tenant setting <c>default_language</c>), beside the index: table
/// <c>search_languages</c>, projected from the tenant events (<see cref="TenantSettingsChanged"/>) with its own offset.
/// PostgreSQL indexes a message's text, and parses a query, in the language's text-search configuration (English
/// stemming and stop words by default, <c>simple</c>: words as they are). SQLite's FTS5 table has one tokenizer for all
/// (porter, English stemming), so there the setting is kept and not applied.
/// A change applies to what is indexed after the projection has seen it (within a second) and to every query from then
/// on; messages indexed before keep their old form until a reindex.
/// </summary>
public sealed class SearchLanguageIndex(ReadModelStore store)
{
    public const string ProjectionName = "search-languages";
    private static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(2);
    private readonly ConcurrentDictionary<string, (string Language, DateTime Until)> _cache = new(StringComparer.Ordinal);

    public async Task EnsureSchemaAsync(CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await ReadModelStore.ExecuteAsync(c, "CREATE TABLE IF NOT EXISTS search_languages (tenant_id TEXT NOT NULL PRIMARY KEY, language TEXT NOT NULL)", ct);
    }

    /// <summary>The languages of these tenants (the default for a tenant without a row), read inside a write's transaction.</summary>
    public static async Task<Dictionary<string, string>> LoadAsync(System.Data.Common.DbConnection c, System.Data.Common.DbTransaction? tx,
        IEnumerable<string> tenants, CancellationToken ct)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var chunk in tenants.Distinct(StringComparer.Ordinal).Chunk(200))
        {
            foreach (var t in chunk) result[t] = SearchLanguages.Default;
            var names = chunk.Select((_, i) => "@p" + i).ToArray();
            await using var cmd = Command(c, tx, $"SELECT tenant_id, language FROM search_languages WHERE tenant_id IN ({string.Join(", ", names)})",
                [.. chunk.Select((id, i) => ("p" + i, (object?)id))]);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) result[r.GetString(0)] = SearchLanguages.Safe(r.GetString(1));
        }
        return result;
    }

    /// <summary>A tenant's language for its queries (cached for two seconds on this node).</summary>
    public async Task<string> LanguageOfAsync(string tenant, CancellationToken ct = default)
    {
        if (_cache.TryGetValue(tenant, out var cached) && cached.Until > DateTime.UtcNow) return cached.Language;
        await using var c = await store.OpenAsync(ct);
        var language = (await LoadAsync(c, null, [tenant], ct))[tenant];
        if (_cache.Count > 100_000) _cache.Clear();
        _cache[tenant] = (language, DateTime.UtcNow + CacheFor);
        return language;
    }

    /// <summary>Applies a batch of tenant events and stores the offset, in one transaction (a replay writes the same rows).</summary>
    public async Task WriteAsync(IReadOnlyList<EventEnvelope> batch, CancellationToken ct = default)
    {
        if (batch.Count == 0) return;
        await using var c = await store.OpenAsync(ct);
        using var turn = await store.WriteTurnAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        foreach (var envelope in batch)
        {
            if (envelope.Event is not TenantSettingsChanged changed || !envelope.PersistenceId.StartsWith("tenant|", StringComparison.Ordinal)) continue;
            await using var cmd = Command(c, tx,
                "INSERT INTO search_languages (tenant_id, language) VALUES (@t, @l) ON CONFLICT (tenant_id) DO UPDATE SET language = excluded.language",
                ("t", envelope.PersistenceId["tenant|".Length..]), ("l", SearchLanguages.Safe(changed.Settings.DefaultLanguage)));
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await SaveOffsetAsync(c, tx, ProjectionName, ((Sequence)batch[^1].Offset).Value, ct);
        await tx.CommitAsync(ct);
    }

    public Task<long> LoadOffsetAsync(CancellationToken ct = default) => ReadModelWriter.LoadOffsetAsync(store, ProjectionName, ct);
}

/// <summary>The search-language projection: tenant events by tag into <see cref="SearchLanguageIndex"/>. A cluster singleton.</summary>
public static class SearchLanguageProjection
{
    /// <param name="repair">Late-commit repair (PostgreSQL; its prefix <c>tenant|</c>), or none.</param>
    public static Props PropsFor(SearchLanguageIndex index, ProjectionSettings settings, TagRepair? repair = null) =>
        TagProjection.PropsFor(SearchLanguageIndex.ProjectionName, TenantSettingsActor.KindTag, settings, () => index.LoadOffsetAsync(),
            list => index.WriteAsync(list), repair);
}

/// <summary>Registry key of the search-language projection singleton.</summary>
public sealed class SearchLanguageProjectionKey;
