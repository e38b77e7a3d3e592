using System.Data.Common;
using Caas.Actors.Common;
using Caas.Streams.Operational;

namespace Caas.Streams.Audit;

/// <summary>One read of the audit API: who read, what, when.</summary>
public sealed record AuditAccess(string Id, string TenantId, string UserId, string Action, string Target, string? Query,
    DateTimeOffset At);

/// <summary>
/// The audit of the audit: every admin read of the audit API is written here before its answer starts, so a
/// reader who stops early is recorded too. It lives in the operational store (its table comes from migration 1).
/// </summary>
public sealed class AuditAccessLog(OperationalStore store)
{
    private Task<DbConnection> OpenAsync(CancellationToken ct) => store.OpenAsync(ct);

    public async Task<AuditAccess> RecordAsync(string tenantId, string userId, string action, string target, string? query,
        CancellationToken ct = default)
    {
        // UUIDv7 in this process's order (also within a millisecond): the listing pages by id, newest first.
        var at = DateTimeOffset.UtcNow;
        var entry = new AuditAccess(OrderedIds.NewUuid7(at), tenantId, userId, action, target, query, at);
        await using var connection = await OpenAsync(ct);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "INSERT INTO audit_access_log (id, tenant_id, user_id, action, target, query, at) VALUES (@id, @t, @u, @a, @g, @q, @at)";
        Add(cmd, "@id", entry.Id);
        Add(cmd, "@t", tenantId);
        Add(cmd, "@u", userId);
        Add(cmd, "@a", action);
        Add(cmd, "@g", target);
        Add(cmd, "@q", (object?)query ?? DBNull.Value);
        Add(cmd, "@at", entry.At.ToUnixTimeMilliseconds());
        await cmd.ExecuteNonQueryAsync(ct);
        return entry;
    }

    /// <summary>The tenant's entries, newest first, before the <paramref name="before"/> id when paging.</summary>
    public async Task<IReadOnlyList<AuditAccess>> ListAsync(string tenantId, int limit, string? before, CancellationToken ct = default)
    {
        await using var connection = await OpenAsync(ct);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT id, tenant_id, user_id, action, target, query, at FROM audit_access_log WHERE tenant_id = @t"
                          + (before is null ? "" : " AND id < @before") + " ORDER BY id DESC LIMIT @n";
        Add(cmd, "@t", tenantId);
        if (before is not null) Add(cmd, "@before", before);
        Add(cmd, "@n", limit);
        var rows = new List<AuditAccess>();
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
            rows.Add(new AuditAccess(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
                reader.GetString(4), reader.IsDBNull(5) ? null : reader.GetString(5),
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(6))));
        return rows;
    }

    private static void Add(DbCommand cmd, string name, object value)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.Value = value;
        cmd.Parameters.Add(p);
    }
}
