using System.Data.Common;
using FluentMigrator;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Operational;

/// <summary>
/// A TURN/STUN server an operator added, or an operator's override (drained, deleted) of one from the configuration.
/// <c>Secret</c> is the server's own static-auth-secret (null: the configured shared one); it is read only to mint
/// credentials and health checks, never shown.
/// </summary>
public sealed record TurnServerRow(string Id, string Url, string? Secret, string State, string Source, DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt, DateTimeOffset? DeletedAt);

/// <summary>
/// The operator's TURN server list in the operational store (it cannot be rebuilt from the journal). Every node reads
/// it on each health round, so a change is effective cluster-wide within one health interval.
/// </summary>
public sealed class TurnServerStore(OperationalStore store)
{
    public const string Active = "active", Draining = "draining";
    public const string FromConfig = "config", FromAdmin = "admin";

    public async Task<IReadOnlyList<TurnServerRow>> ListAsync(CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT id, url, secret, state, source, created_at, updated_at, deleted_at FROM turn_servers ORDER BY created_at, id");
        await using var r = await cmd.ExecuteReaderAsync(ct);
        var rows = new List<TurnServerRow>();
        while (await r.ReadAsync(ct))
            rows.Add(new TurnServerRow(r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetString(3), r.GetString(4),
                At(r, 5)!.Value, At(r, 6)!.Value, At(r, 7)));
        return rows;
    }

    /// <summary>Adds an operator's server; false when its id or URL is already taken (a deleted config override included).</summary>
    public async Task<bool> AddAsync(TurnServerRow row, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "INSERT INTO turn_servers (id, url, secret, state, source, created_at, updated_at, deleted_at) " +
            "VALUES (@id, @url, @secret, @state, @source, @at, @at, NULL) ON CONFLICT DO NOTHING",
            ("id", row.Id), ("url", row.Url), ("secret", row.Secret), ("state", row.State), ("source", row.Source),
            ("at", row.CreatedAt.ToUnixTimeMilliseconds()));
        return await cmd.ExecuteNonQueryAsync(ct) == 1;
    }

    /// <summary>Records an operator's state for a server (both kinds): drained, active again, or deleted.</summary>
    public async Task SetAsync(string id, string url, string source, string state, bool deleted, CancellationToken ct = default)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "INSERT INTO turn_servers (id, url, secret, state, source, created_at, updated_at, deleted_at) " +
            "VALUES (@id, @url, NULL, @state, @source, @at, @at, CAST(@deleted AS BIGINT)) " +
            "ON CONFLICT (id) DO UPDATE SET state = @state, updated_at = @at, deleted_at = CAST(@deleted AS BIGINT)",
            ("id", id), ("url", url), ("state", state), ("source", source), ("at", now), ("deleted", deleted ? now : null));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Removes an operator's server for good (its secret with it).</summary>
    public async Task RemoveAsync(string id, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "DELETE FROM turn_servers WHERE id = @id", ("id", id));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private static DateTimeOffset? At(DbDataReader r, int i) => r.IsDBNull(i) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(i));
}

/// <summary>Migration 1600 (numbered by its issue, #16, so parallel work does not collide): the TURN server list.</summary>
[Migration(1600, "TURN servers an operator added, drained or removed")]
public sealed class CreateTurnServers : ForwardOnlyMigration
{
    public override void Up()
    {
        Execute.Sql("""
            CREATE TABLE IF NOT EXISTS turn_servers (
                id TEXT NOT NULL PRIMARY KEY, url TEXT NOT NULL, secret TEXT NULL, state TEXT NOT NULL, source TEXT NOT NULL,
                created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, deleted_at BIGINT NULL)
            """);
        Execute.Sql("CREATE UNIQUE INDEX IF NOT EXISTS turn_servers_url ON turn_servers (url)");
    }
}
