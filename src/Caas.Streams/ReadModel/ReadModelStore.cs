using System.Data.Common;
using Caas.Actors.Hosting;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Caas.Streams.ReadModel;

/// <summary>
/// The read-model database: PostgreSQL (the journal's database) or a SQLite file of its own. The SQL is written once
/// for both (named @parameters, ON CONFLICT upserts, times as Unix milliseconds). Everything in it can be rebuilt from
/// the journal; what cannot (keys, claims, dead letters) is in the operational store (<see cref="Operational.OperationalStore"/>).
/// </summary>
public sealed class ReadModelStore : IAsyncDisposable
{
    private readonly StoreConnections _connections;

    public ReadModelStore(StorageOptions storage, StoreBreaker? breaker = null)
    {
        IsPostgres = storage.IsPostgres;
        _connections = new StoreConnections(storage.ReadModelConnectionString, IsPostgres, breaker ?? new StoreBreaker(), storage.ReadModelFlushesEachCommit,
            projectionsOnly: true);
    }

    public bool IsPostgres { get; }

    /// <summary>In front of every PostgreSQL connection (a SQLite file has no outage to break on).</summary>
    public StoreBreaker Breaker => _connections.Breaker;

    public Task<DbConnection> OpenAsync(CancellationToken ct = default) => _connections.OpenAsync(ct);

    /// <summary>This process's turn to write (SQLite: one writer at a time per file, queued; PostgreSQL: nothing to wait for).</summary>
    public ValueTask<IDisposable> WriteTurnAsync(CancellationToken ct = default) => _connections.WriteTurnAsync(ct);

    public async Task EnsureSchemaAsync(CancellationToken ct = default)
    {
        await using var connection = await OpenAsync(ct);
        if (!IsPostgres) await ExecuteAsync(connection, "PRAGMA journal_mode=WAL;", ct);
        foreach (var statement in Schema) await ExecuteAsync(connection, statement, ct);
        await AddAttachmentColumnAsync(connection, ct);
    }

    /// <summary>
    /// A message's attachment (<c>{media_id, media}</c> as JSON, null for text) in a read model created before attachments
    /// existed. SQLite has no ADD COLUMN IF NOT EXISTS, so it asks first.
    /// </summary>
    private async Task AddAttachmentColumnAsync(DbConnection connection, CancellationToken ct)
    {
        if (IsPostgres)
        {
            await ExecuteAsync(connection, "ALTER TABLE rm_messages ADD COLUMN IF NOT EXISTS attachment TEXT NULL", ct);
            return;
        }
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM pragma_table_info('rm_messages') WHERE name = 'attachment'";
        if (Convert.ToInt64(await cmd.ExecuteScalarAsync(ct)) == 0)
            await ExecuteAsync(connection, "ALTER TABLE rm_messages ADD COLUMN attachment TEXT NULL", ct);
    }

    /// <summary>Puts a SQLite file in WAL mode (readers do not block the one writer). No-op for PostgreSQL.</summary>
    public static async Task EnableWalAsync(StorageOptions storage)
    {
        if (storage.IsPostgres) return;
        await using var connection = new SqliteConnection(storage.JournalConnectionString);
        await connection.OpenAsync();
        await ExecuteAsync(connection, "PRAGMA journal_mode=WAL;", default);
    }

    public static async Task ExecuteAsync(DbConnection connection, string sql, CancellationToken ct)
    {
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public static readonly string[] Schema =
    [
        """
        CREATE TABLE IF NOT EXISTS rm_conversations (
            tenant_id TEXT NOT NULL, conversation_id TEXT NOT NULL, type TEXT NOT NULL, title TEXT NULL,
            metadata TEXT NOT NULL, created_at BIGINT NOT NULL, created_by TEXT NOT NULL, deleted INTEGER NOT NULL,
            last_seq BIGINT NOT NULL, PRIMARY KEY (tenant_id, conversation_id))
        """,
        """
        CREATE TABLE IF NOT EXISTS rm_memberships (
            tenant_id TEXT NOT NULL, conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL,
            joined_at BIGINT NOT NULL, PRIMARY KEY (tenant_id, conversation_id, user_id))
        """,
        "CREATE INDEX IF NOT EXISTS rm_memberships_by_user ON rm_memberships (tenant_id, user_id, conversation_id)",
        // The tenant's people: every user with at least one membership, one row each (the people search reads it
        // instead of the distinct users of every membership, which cost a scan of the tenant's memberships per lookup).
        "CREATE TABLE IF NOT EXISTS rm_people (tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (tenant_id, user_id))",
        // A read model made before rm_people: fill it once from the memberships (an empty rm_people beside memberships).
        "INSERT INTO rm_people (tenant_id, user_id) SELECT DISTINCT tenant_id, user_id FROM rm_memberships " +
        "WHERE NOT EXISTS (SELECT 1 FROM rm_people) ON CONFLICT DO NOTHING",
        """
        CREATE TABLE IF NOT EXISTS rm_messages (
            tenant_id TEXT NOT NULL, conversation_id TEXT NOT NULL, seq BIGINT NOT NULL, message_id TEXT NOT NULL,
            sender_id TEXT NOT NULL, content_type TEXT NULL, text TEXT NULL, created_at BIGINT NOT NULL,
            edited_at BIGINT NULL, deleted INTEGER NOT NULL, reactions TEXT NOT NULL, versions TEXT NOT NULL, enrichment TEXT NULL,
            attachment TEXT NULL, PRIMARY KEY (tenant_id, conversation_id, seq))
        """,
        // Not unique: a second journal row with a message id already projected is stored under its own seq (and
        // reported), never dropped, so the read model has no seq holes; an older database loses its unique index.
        "DROP INDEX IF EXISTS rm_messages_by_id",
        "CREATE INDEX IF NOT EXISTS rm_messages_by_message_id ON rm_messages (tenant_id, message_id, conversation_id, seq)",
        """
        CREATE TABLE IF NOT EXISTS rm_moderation_log (
            tenant_id TEXT NOT NULL, conversation_id TEXT NOT NULL, journal_offset BIGINT NOT NULL, action TEXT NOT NULL,
            actor_id TEXT NOT NULL, user_id TEXT NOT NULL, until_at BIGINT NULL, reason TEXT NULL, occurred_at BIGINT NOT NULL,
            PRIMARY KEY (tenant_id, conversation_id, journal_offset))
        """,
        "CREATE TABLE IF NOT EXISTS rm_projection_offsets (name TEXT NOT NULL PRIMARY KEY, last_offset BIGINT NOT NULL)",
        // An outbound (Kafka) projection's marks (OutboundOrder): per persistence id, the highest sequence number the broker
        // acknowledged; the row with persistence id '' holds the offset the marks are complete from.
        "CREATE TABLE IF NOT EXISTS rm_outbound_progress (name TEXT NOT NULL, persistence_id TEXT NOT NULL, sequence_nr BIGINT NOT NULL, " +
        "PRIMARY KEY (name, persistence_id))",
        // The progress mark (ProjectionProgress): per persistence id, the highest journal sequence number applied.
        "CREATE TABLE IF NOT EXISTS rm_progress (persistence_id TEXT NOT NULL PRIMARY KEY, sequence_nr BIGINT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS rm_messages_by_sender ON rm_messages (tenant_id, sender_id)",
    ];

    public ValueTask DisposeAsync() => _connections.DisposeAsync();
}
