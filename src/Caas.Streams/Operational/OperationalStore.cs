using System.Data.Common;
using Caas.Actors.Hosting;
using Microsoft.Data.Sqlite;
using Caas.Streams.ReadModel;
using Npgsql;

namespace Caas.Streams.Operational;

/// <summary>
/// The operational store: data that is authoritative and cannot be rebuilt from the journal (per-user content keys,
/// message-id claims, dead letters, tenant intent models, the audit access log). PostgreSQL: the read model's database,
/// schema <c>caas_ops</c>; SQLite: <c>{data}/operational.db</c> (WAL). Its tables come from versioned migrations
/// (<see cref="OperationalMigrations"/>), never from the read model's schema, so emptying, deleting or rebuilding the
/// read model cannot touch them.
/// </summary>
public sealed class OperationalStore : IAsyncDisposable
{
    private readonly StoreConnections _connections;

    /// <param name="breaker">The read model's breaker on PostgreSQL: the same server, so one outage opens both.</param>
    public OperationalStore(StorageOptions storage, StoreBreaker? breaker = null)
    {
        Storage = storage;
        IsPostgres = storage.IsPostgres;
        _connectionString = storage.OperationalConnectionString;
        _connections = new StoreConnections(_connectionString, IsPostgres, breaker ?? new StoreBreaker());
        GroupCommit = IsPostgres ? null : new SqliteGroupCommit(OpenAsync, WriteTurnAsync, "operational");
    }

    /// <summary>
    /// SQLite: the file's group commit, which the message-id claims and records share (one commit for the writes that
    /// wait together); null on PostgreSQL, whose server commits concurrent transactions together itself.
    /// </summary>
    public SqliteGroupCommit? GroupCommit { get; }

    private readonly string _connectionString;

    public StorageOptions Storage { get; }

    public bool IsPostgres { get; }

    /// <summary>In front of every PostgreSQL connection (a SQLite file has no outage to break on).</summary>
    public StoreBreaker Breaker => _connections.Breaker;

    public Task<DbConnection> OpenAsync(CancellationToken ct = default) => _connections.OpenAsync(ct);

    /// <summary>This process's turn to write (SQLite: one writer at a time per file, queued; PostgreSQL: nothing to wait for).</summary>
    public ValueTask<IDisposable> WriteTurnAsync(CancellationToken ct = default) => _connections.WriteTurnAsync(ct);

    /// <summary>A synchronous open, for the content vault's key lookups (they run inside entities and the serializer).</summary>
    public DbConnection Open() => _connections.Open();

    /// <summary>
    /// A connection that also sees the read model's tables by their plain names, for a query that joins the two (the
    /// claims' purge looks for their messages). PostgreSQL: the same database, public is on the search path. SQLite:
    /// readmodel.db attached, on a connection of its own (outside the pool, so the attachment never outlives it).
    /// </summary>
    public async Task<DbConnection> OpenWithReadModelAsync(CancellationToken ct = default)
    {
        if (IsPostgres) return await OpenAsync(ct);
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder(_connectionString) { Pooling = false }.ConnectionString);
        try
        {
            await connection.OpenAsync(ct);
            SqliteWaits.WaitInSqlite(connection);
            await using var attach = connection.CreateCommand();
            attach.CommandText = "ATTACH DATABASE @file AS rm";
            attach.Parameters.AddWithValue("@file", StorageOptions.SqliteFile(Storage.ReadModelConnectionString));
            await attach.ExecuteNonQueryAsync(ct);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>Brings the store to the latest migration (see <see cref="OperationalMigrations.RunAsync"/>).</summary>
    public Task MigrateAsync(CancellationToken ct = default) => OperationalMigrations.RunAsync(Storage, ct);

    public ValueTask DisposeAsync() => _connections.DisposeAsync();
}
