using System.Data;
using System.Data.Common;

namespace Caas.Enrichment.Intent;

/// <summary>One version of a tenant's intent model as listed (never with its bytes).</summary>
public sealed record TenantIntentModelRecord(
    int Version, DateTimeOffset CreatedAt, string Status, int Examples, int Labels, string? MetricsJson, string? Error, bool Live);

public static class TenantIntentModelStatus
{
    public const string Training = "training";
    public const string Ready = "ready";
    public const string Failed = "failed";
}

/// <summary>The live version of a tenant's model and when it became live (newer wins when answers cross).</summary>
public readonly record struct LiveIntentVersion(int Version, long ChangedAt);

/// <summary>
/// Tenants' intent models in the operational store (SQLite or PostgreSQL, the same SQL for both; its migrations create the tables, the schema here serves stores opened without them): every version
/// with its status, counts, held-out metrics and model bytes in <c>intent_models</c>, and the live version per tenant
/// in <c>intent_model_live</c>, one small row each, so every node can check for a newer version with one cheap query.
/// The uploaded examples themselves are not kept.
/// </summary>
public sealed class TenantIntentModelStore(Func<CancellationToken, Task<DbConnection>> open, bool postgres)
{
    private readonly SemaphoreSlim _schemaGate = new(1, 1);
    private volatile bool _schemaReady;

    private string[] Schema =>
    [
        $"""
        CREATE TABLE IF NOT EXISTS intent_models (
            tenant_id TEXT NOT NULL, version INTEGER NOT NULL, created_at BIGINT NOT NULL, status TEXT NOT NULL,
            examples INTEGER NOT NULL, labels INTEGER NOT NULL, metrics_json TEXT NULL, error TEXT NULL,
            info_json TEXT NULL, model {(postgres ? "BYTEA" : "BLOB")} NULL, PRIMARY KEY (tenant_id, version))
        """,
        "CREATE TABLE IF NOT EXISTS intent_model_live (tenant_id TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, changed_at BIGINT NOT NULL)",
    ];

    public async Task EnsureSchemaAsync(CancellationToken ct = default)
    {
        if (_schemaReady) return;
        await _schemaGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_schemaReady) return;
            await using var c = await open(ct).ConfigureAwait(false);
            foreach (var statement in Schema)
            {
                await using var cmd = Command(c, null, statement);
                await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
            _schemaReady = true;
        }
        finally
        {
            _schemaGate.Release();
        }
    }

    /// <summary>Claims the tenant's next version number with status <c>training</c>.</summary>
    public async Task<int> CreateAsync(string tenant, int examples, int labels, CancellationToken ct = default)
    {
        await EnsureSchemaAsync(ct).ConfigureAwait(false);
        for (var attempt = 0; ; attempt++)
        {
            await using var c = await open(ct).ConfigureAwait(false);
            try
            {
                // Two nodes may pick the same number at once; the primary key lets one win and the other retry.
                await using var cmd = Command(c, null,
                    "INSERT INTO intent_models (tenant_id, version, created_at, status, examples, labels) " +
                    "SELECT @t, COALESCE(MAX(version), 0) + 1, @at, @s, @e, @l FROM intent_models WHERE tenant_id = @t RETURNING version",
                    ("t", tenant), ("at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), ("s", TenantIntentModelStatus.Training),
                    ("e", examples), ("l", labels));
                return Convert.ToInt32(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (DbException) when (attempt < 5)
            {
                await Task.Delay(20 * (attempt + 1), ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Stores a trained version and makes it the tenant's live one, in one transaction.</summary>
    public async Task<LiveIntentVersion> CompleteAsync(string tenant, int version, byte[] model, string infoJson, string metricsJson, CancellationToken ct = default)
    {
        await using var c = await open(ct).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using (var update = Command(c, tx,
            "UPDATE intent_models SET status = @s, model = @m, info_json = @i, metrics_json = @x WHERE tenant_id = @t AND version = @v",
            ("s", TenantIntentModelStatus.Ready), ("m", model), ("i", infoJson), ("x", metricsJson), ("t", tenant), ("v", version)))
            await update.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        var live = await SetLiveAsync(c, tx, tenant, version, ct).ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return live;
    }

    public async Task FailAsync(string tenant, int version, string error, CancellationToken ct = default)
    {
        await using var c = await open(ct).ConfigureAwait(false);
        await using var cmd = Command(c, null, "UPDATE intent_models SET status = @s, error = @e WHERE tenant_id = @t AND version = @v",
            ("s", TenantIntentModelStatus.Failed), ("e", error.Length > 500 ? error[..500] : error), ("t", tenant), ("v", version));
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Makes a ready version live again (a rollback); null when the version is not there or not ready.</summary>
    public async Task<(LiveIntentVersion? Live, string? Status)> ActivateAsync(string tenant, int version, CancellationToken ct = default)
    {
        await EnsureSchemaAsync(ct).ConfigureAwait(false);
        await using var c = await open(ct).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        string? status;
        await using (var read = Command(c, tx, "SELECT status FROM intent_models WHERE tenant_id = @t AND version = @v", ("t", tenant), ("v", version)))
            status = await read.ExecuteScalarAsync(ct).ConfigureAwait(false) as string;
        if (status != TenantIntentModelStatus.Ready) return (null, status);
        var live = await SetLiveAsync(c, tx, tenant, version, ct).ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return (live, status);
    }

    private static async Task<LiveIntentVersion> SetLiveAsync(DbConnection c, DbTransaction tx, string tenant, int version, CancellationToken ct)
    {
        var at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await using var cmd = Command(c, tx,
            "INSERT INTO intent_model_live (tenant_id, version, changed_at) VALUES (@t, @v, @at) " +
            "ON CONFLICT (tenant_id) DO UPDATE SET version = excluded.version, changed_at = excluded.changed_at",
            ("t", tenant), ("v", version), ("at", at));
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        return new LiveIntentVersion(version, at);
    }

    public async Task<IReadOnlyList<TenantIntentModelRecord>> ListAsync(string tenant, CancellationToken ct = default)
    {
        await EnsureSchemaAsync(ct).ConfigureAwait(false);
        await using var c = await open(ct).ConfigureAwait(false);
        await using var cmd = Command(c, null,
            "SELECT m.version, m.created_at, m.status, m.examples, m.labels, m.metrics_json, m.error, " +
            "CASE WHEN l.version = m.version THEN 1 ELSE 0 END FROM intent_models m " +
            "LEFT JOIN intent_model_live l ON l.tenant_id = m.tenant_id WHERE m.tenant_id = @t ORDER BY m.version DESC",
            ("t", tenant));
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var rows = new List<TenantIntentModelRecord>();
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
            rows.Add(new TenantIntentModelRecord(
                Convert.ToInt32(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture),
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1)),
                reader.GetString(2),
                Convert.ToInt32(reader.GetValue(3), System.Globalization.CultureInfo.InvariantCulture),
                Convert.ToInt32(reader.GetValue(4), System.Globalization.CultureInfo.InvariantCulture),
                reader.IsDBNull(5) ? null : reader.GetString(5),
                reader.IsDBNull(6) ? null : reader.GetString(6),
                Convert.ToInt32(reader.GetValue(7), System.Globalization.CultureInfo.InvariantCulture) == 1));
        return rows;
    }

    /// <summary>Every tenant's live version: one small row per tenant that has a model (the cheap check of every node).</summary>
    public async Task<IReadOnlyDictionary<string, LiveIntentVersion>> LiveVersionsAsync(CancellationToken ct = default)
    {
        await EnsureSchemaAsync(ct).ConfigureAwait(false);
        await using var c = await open(ct).ConfigureAwait(false);
        await using var cmd = Command(c, null, "SELECT tenant_id, version, changed_at FROM intent_model_live");
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var live = new Dictionary<string, LiveIntentVersion>(StringComparer.Ordinal);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
            live[reader.GetString(0)] = new LiveIntentVersion(
                Convert.ToInt32(reader.GetValue(1), System.Globalization.CultureInfo.InvariantCulture), reader.GetInt64(2));
        return live;
    }

    /// <summary>The bytes and metadata of a ready version, or null.</summary>
    public async Task<(byte[] Model, string InfoJson)?> LoadAsync(string tenant, int version, CancellationToken ct = default)
    {
        await using var c = await open(ct).ConfigureAwait(false);
        await using var cmd = Command(c, null,
            "SELECT model, info_json FROM intent_models WHERE tenant_id = @t AND version = @v AND status = @s",
            ("t", tenant), ("v", version), ("s", TenantIntentModelStatus.Ready));
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await reader.ReadAsync(ct).ConfigureAwait(false) || reader.IsDBNull(0) || reader.IsDBNull(1)) return null;
        return ((byte[])reader.GetValue(0), reader.GetString(1));
    }

    private static DbCommand Command(DbConnection c, DbTransaction? tx, string sql, params (string Name, object Value)[] args)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value;
            if (value is byte[]) p.DbType = DbType.Binary;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }
}
