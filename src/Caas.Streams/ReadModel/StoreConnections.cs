using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Caas.Streams.ReadModel;

/// <summary>
/// How a store opens its connections: PostgreSQL through a pooled data source behind the <see cref="StoreBreaker"/>,
/// SQLite as a new connection to its file (a file has no outage to break on). The read model and the operational store
/// each hold one.
/// </summary>
public sealed class StoreConnections(string connectionString, bool postgres, StoreBreaker breaker) : IAsyncDisposable
{
    private readonly NpgsqlDataSource? _postgres = postgres ? NpgsqlDataSource.Create(connectionString) : null;

    public StoreBreaker Breaker { get; } = breaker;

    public async Task<DbConnection> OpenAsync(CancellationToken ct = default)
    {
        if (_postgres is not null) return await Breaker.OpenAsync(async token => (DbConnection)await _postgres.OpenConnectionAsync(token), ct);
        var connection = new SqliteConnection(connectionString);
        await connection.OpenAsync(ct);
        return connection;
    }

    /// <summary>A synchronous open, for the content vault's key lookups (they run inside entities and the serializer).</summary>
    public DbConnection Open()
    {
        if (_postgres is not null) return Breaker.Open<DbConnection>(_postgres.OpenConnection);
        var connection = new SqliteConnection(connectionString);
        connection.Open();
        return connection;
    }

    public async ValueTask DisposeAsync()
    {
        if (_postgres is not null) await _postgres.DisposeAsync();
    }
}
