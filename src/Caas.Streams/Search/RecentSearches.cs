using Caas.Streams.Operational;
using FluentMigrator;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Search;

/// <summary>Migration 1501 (issue 15's range, clear of others'): each user's recent searches, kept outside the journal.</summary>
[Migration(1501, "Recent searches")]
public sealed class CreateRecentSearches : ForwardOnlyMigration
{
    public override void Up()
    {
        Execute.Sql("""
            CREATE TABLE IF NOT EXISTS search_recent (
                tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, query TEXT NOT NULL, searched_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, user_id, query))
            """);
        Execute.Sql("CREATE INDEX IF NOT EXISTS search_recent_by_user ON search_recent (tenant_id, user_id, searched_at)");
    }
}

/// <summary>A user's last <see cref="Keep"/> searches (the same text once, at its latest time), in the operational store.</summary>
public sealed class RecentSearches(OperationalStore store)
{
    public const int Keep = 20;

    public async Task RememberAsync(string tenant, string user, string query, DateTimeOffset at, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        // The clock's milliseconds tie when one user searches quickly (a script, a fast typist with suggestions off):
        // each new search is kept strictly after the user's latest, so "most recent first" and the cut at Keep follow
        // the order the searches arrived in, not the text's order.
        var atMs = at.ToUnixTimeMilliseconds();
        await using (var cmd = Command(c, tx, "SELECT MAX(searched_at) FROM search_recent WHERE tenant_id = @t AND user_id = @u",
                         ("t", tenant), ("u", user)))
            if (await cmd.ExecuteScalarAsync(ct) is { } latest and not DBNull)
                atMs = Math.Max(atMs, Convert.ToInt64(latest) + 1);
        await using (var cmd = Command(c, tx,
                         "INSERT INTO search_recent (tenant_id, user_id, query, searched_at) VALUES (@t, @u, @q, @at) " +
                         "ON CONFLICT (tenant_id, user_id, query) DO UPDATE SET searched_at = excluded.searched_at",
                         ("t", tenant), ("u", user), ("q", query), ("at", atMs)))
            await cmd.ExecuteNonQueryAsync(ct);
        await using (var cmd = Command(c, tx,
                         "DELETE FROM search_recent WHERE tenant_id = @t AND user_id = @u AND query NOT IN " +
                         "(SELECT query FROM search_recent WHERE tenant_id = @t AND user_id = @u ORDER BY searched_at DESC, query LIMIT @keep)",
                         ("t", tenant), ("u", user), ("keep", Keep)))
            await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    public async Task<IReadOnlyList<(string Query, DateTimeOffset At)>> ListAsync(string tenant, string user, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT query, searched_at FROM search_recent WHERE tenant_id = @t AND user_id = @u ORDER BY searched_at DESC, query LIMIT @keep",
            ("t", tenant), ("u", user), ("keep", Keep));
        var list = new List<(string, DateTimeOffset)>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) list.Add((r.GetString(0), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(1))));
        return list;
    }

    /// <summary>Forgets the user's recent searches (the user clearing them, or erasure); answers how many went.</summary>
    public async Task<long> ClearAsync(string tenant, string user, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "DELETE FROM search_recent WHERE tenant_id = @t AND user_id = @u", ("t", tenant), ("u", user));
        return await cmd.ExecuteNonQueryAsync(ct);
    }
}
