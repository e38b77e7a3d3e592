using System.Data;
using System.Data.Common;
using Caas.Actors.Hosting;
using FluentMigrator;

namespace Caas.Streams.Operational;

/// <summary>
/// Migration 1: the operational tables, with the columns and indexes they had in the read-model database (including
/// the columns added there over time). Plain SQL, the same for both databases but for the model bytes' type.
/// </summary>
[Migration(1, "Operational tables: data keys, message-id claims, dead letters, intent models, audit access log")]
public sealed class CreateOperationalTables(OperationalMigrationContext context) : ForwardOnlyMigration
{
    public static string[] Statements(bool postgres) =>
    [
        // Per-user data keys (GDPR erasure): wrapped by the master key; a destroyed key keeps its row, without the key.
        """
        CREATE TABLE IF NOT EXISTS data_keys (
            key_id TEXT NOT NULL PRIMARY KEY, tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, wrapped_key TEXT NULL,
            master_key_id TEXT NOT NULL, created_at BIGINT NOT NULL, destroyed_at BIGINT NULL, destroyed_by TEXT NULL)
        """,
        "CREATE UNIQUE INDEX IF NOT EXISTS data_keys_active ON data_keys (tenant_id, user_id) WHERE destroyed_at IS NULL",
        // A claim's time, and once its message is in the journal, that message's seq, sender and time.
        """
        CREATE TABLE IF NOT EXISTS message_id_claims (
            tenant_id TEXT NOT NULL, message_id TEXT NOT NULL, conversation_id TEXT NOT NULL, claimed_at BIGINT NULL, seq BIGINT NULL,
            sender_id TEXT NULL, created_at BIGINT NULL, PRIMARY KEY (tenant_id, message_id))
        """,
        "CREATE INDEX IF NOT EXISTS message_id_claims_pending ON message_id_claims (tenant_id, claimed_at) WHERE seq IS NULL",
        // topic: the Kafka topic a letter came from (replay applies that topic's tenant allowlist again).
        """
        CREATE TABLE IF NOT EXISTS dead_letters (
            id TEXT NOT NULL PRIMARY KEY, tenant_id TEXT NULL, source TEXT NOT NULL, code TEXT NOT NULL, reason TEXT NOT NULL,
            payload TEXT NOT NULL, created_at BIGINT NOT NULL, replayed_at BIGINT NULL, replay_outcome TEXT NULL,
            sender_id TEXT NULL, topic TEXT NULL)
        """,
        "CREATE INDEX IF NOT EXISTS dead_letters_by_tenant ON dead_letters (tenant_id, id)",
        $"""
        CREATE TABLE IF NOT EXISTS intent_models (
            tenant_id TEXT NOT NULL, version INTEGER NOT NULL, created_at BIGINT NOT NULL, status TEXT NOT NULL,
            examples INTEGER NOT NULL, labels INTEGER NOT NULL, metrics_json TEXT NULL, error TEXT NULL,
            info_json TEXT NULL, model {(postgres ? "BYTEA" : "BLOB")} NULL, PRIMARY KEY (tenant_id, version))
        """,
        "CREATE TABLE IF NOT EXISTS intent_model_live (tenant_id TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, changed_at BIGINT NOT NULL)",
        """
        CREATE TABLE IF NOT EXISTS audit_access_log (
            id TEXT NOT NULL PRIMARY KEY, tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, action TEXT NOT NULL,
            target TEXT NOT NULL, query TEXT NULL, at BIGINT NOT NULL)
        """,
        "CREATE INDEX IF NOT EXISTS audit_access_log_by_tenant ON audit_access_log (tenant_id, id)",
    ];

    public override void Up()
    {
        foreach (var statement in Statements(context.IsPostgres)) Execute.Sql(statement);
    }
}

/// <summary>
/// Migration 2: moves the rows of deployments that kept these tables in the read-model database (PostgreSQL: the
/// public schema; SQLite: readmodel.db), then drops the old tables so nothing reads or writes a stale copy. Idempotent
/// step by step: rows are copied with "do nothing on conflict" and a table is dropped only once its copy is committed,
/// so a crash anywhere is finished by the next start. Only the columns both tables have are copied (an older read
/// model may lack columns added later).
/// </summary>
[Migration(2, TransactionBehavior.None, "Move operational rows out of the read-model database")]
public sealed class MoveOperationalRowsFromReadModel(OperationalMigrationContext context) : ForwardOnlyMigration
{
    public static readonly string[] Tables = ["data_keys", "message_id_claims", "dead_letters", "intent_models", "intent_model_live", "audit_access_log"];

    public override void Up() => Execute.WithConnection((connection, transaction) =>
    {
        if (context.IsPostgres) MovePostgres((DbConnection)connection, (DbTransaction?)transaction);
        else MoveSqlite((DbConnection)connection, context.Storage);
    });

    /// <summary>One statement per table (copy and drop), so each table moves atomically.</summary>
    private static void MovePostgres(DbConnection c, DbTransaction? tx)
    {
        foreach (var table in Tables)
            Run(c, tx, $"""
                DO $$
                DECLARE cols text;
                BEGIN
                  IF to_regclass('public.{table}') IS NULL THEN RETURN; END IF;
                  SELECT string_agg(format('%I', o.column_name), ', ' ORDER BY o.ordinal_position) INTO cols
                    FROM information_schema.columns o
                    JOIN information_schema.columns n ON n.table_schema = '{StorageOptions.OperationalSchema}'
                     AND n.table_name = o.table_name AND n.column_name = o.column_name
                   WHERE o.table_schema = 'public' AND o.table_name = '{table}';
                  EXECUTE format('INSERT INTO {StorageOptions.OperationalSchema}.{table} (%s) SELECT %s FROM public.{table} ON CONFLICT DO NOTHING', cols, cols);
                  DROP TABLE public.{table};
                END $$
                """);
    }

    /// <summary>Copies in one transaction, then drops the old tables: a crash between the two copies again (ignored) and drops.</summary>
    private static void MoveSqlite(DbConnection c, StorageOptions storage)
    {
        var readModel = StorageOptions.SqliteFile(storage.ReadModelConnectionString);
        if (!File.Exists(readModel)) return;
        using (var attach = c.CreateCommand())
        {
            attach.CommandText = "ATTACH DATABASE @file AS rm";
            var p = attach.CreateParameter();
            p.ParameterName = "@file";
            p.Value = readModel;
            attach.Parameters.Add(p);
            attach.ExecuteNonQuery();
        }
        try
        {
            var present = Tables.Where(t => Scalar(c, $"SELECT COUNT(*) FROM rm.sqlite_master WHERE type = 'table' AND name = '{t}'") > 0).ToList();
            if (present.Count == 0) return;
            using (var tx = c.BeginTransaction())
            {
                foreach (var table in present)
                {
                    var cols = string.Join(", ", Columns(c, tx, "rm", table).Intersect(Columns(c, tx, "main", table)));
                    Run(c, tx, $"INSERT OR IGNORE INTO main.{table} ({cols}) SELECT {cols} FROM rm.{table}");
                }
                tx.Commit();
            }
            foreach (var table in present) Run(c, null, $"DROP TABLE IF EXISTS rm.{table}");
        }
        finally
        {
            Run(c, null, "DETACH DATABASE rm");
        }
    }

    private static List<string> Columns(DbConnection c, DbTransaction tx, string schema, string table)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = $"SELECT name FROM pragma_table_info('{table}', '{schema}')";
        using var r = cmd.ExecuteReader();
        var names = new List<string>();
        while (r.Read()) names.Add(r.GetString(0));
        return names;
    }

    private static long Scalar(DbConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void Run(DbConnection c, DbTransaction? tx, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
