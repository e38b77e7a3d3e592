using FluentMigrator;

namespace Caas.Streams.Operational;

/// <summary>
/// Migration 1401 (issue 14's range, so branches adding migrations side by side do not collide): resumable upload
/// sessions and their chunks, where Redis is not configured. A chunk row without a SHA-256 is a claim in progress.
/// </summary>
[Migration(1401, "Media: upload sessions and chunks")]
public sealed class CreateUploadSessionTables : ForwardOnlyMigration
{
    public override void Up()
    {
        Execute.Sql("""
            CREATE TABLE IF NOT EXISTS upload_sessions (
                tenant_id TEXT NOT NULL, upload_id TEXT NOT NULL, session_json TEXT NOT NULL, state TEXT NOT NULL,
                expires_at BIGINT NOT NULL, PRIMARY KEY (tenant_id, upload_id))
            """);
        Execute.Sql("CREATE INDEX IF NOT EXISTS upload_sessions_by_expiry ON upload_sessions (expires_at)");
        Execute.Sql("""
            CREATE TABLE IF NOT EXISTS upload_chunks (
                tenant_id TEXT NOT NULL, upload_id TEXT NOT NULL, idx INTEGER NOT NULL, length BIGINT NOT NULL,
                sha256 TEXT NULL, tag TEXT NULL, PRIMARY KEY (tenant_id, upload_id, idx))
            """);
    }
}

/// <summary>Migration 1402: storage used per tenant (user '') and per user, for the media quotas.</summary>
[Migration(1402, "Media: storage used per tenant and user")]
public sealed class CreateMediaUsageTable : ForwardOnlyMigration
{
    public override void Up() => Execute.Sql("""
        CREATE TABLE IF NOT EXISTS media_usage (
            tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, bytes BIGINT NOT NULL, files BIGINT NOT NULL, PRIMARY KEY (tenant_id, user_id))
        """);
}

/// <summary>
/// Migration 1403: which user owns which stored file (authoritative, unlike the read model), so erasing a user finds
/// every file of theirs at once, including one uploaded a moment before.
/// </summary>
[Migration(1404, "Media: purge due time of a deleted file kept for its tenant's retention")]
public sealed class AddMediaPurgeAfter : ForwardOnlyMigration
{
    public override void Up()
    {
        Execute.Sql("ALTER TABLE media_owners ADD COLUMN purge_after BIGINT NULL");
        Execute.Sql("CREATE INDEX IF NOT EXISTS media_owners_by_purge ON media_owners (purge_after)");
    }
}

[Migration(1403, "Media: file owners")]
public sealed class CreateMediaOwnersTable : ForwardOnlyMigration
{
    public override void Up()
    {
        Execute.Sql("""
            CREATE TABLE IF NOT EXISTS media_owners (
                tenant_id TEXT NOT NULL, file_id TEXT NOT NULL, owner_id TEXT NOT NULL, size BIGINT NOT NULL, PRIMARY KEY (tenant_id, file_id))
            """);
        Execute.Sql("CREATE INDEX IF NOT EXISTS media_owners_by_owner ON media_owners (tenant_id, owner_id)");
    }
}
