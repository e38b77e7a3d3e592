using System.Data.Common;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Caas.Actors.Hosting;
using Caas.Actors.Privacy;
using Caas.Node;
using Caas.Streams.Operational;
using Caas.Streams.Pipeline;
using Caas.Streams.Privacy;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;
using Caas.Web.Auth;
using Npgsql;

namespace Caas.Streams.Tests;

/// <summary>
/// The operational store on real databases: its migrations move a deployment's keys, claims, dead letters, intent
/// models and access log out of the read model; one node of a cluster migrates (PostgreSQL advisory lock); and the
/// read model can then be deleted or rebuilt without losing any of them.
/// </summary>
public sealed class OperationalStoreTests
{
    private static readonly MasterKey Master = MasterKey.Generate();
    private static readonly byte[] Aad = ContentSealing.Aad("acme", "alice", "m-1");

    /// <summary>
    /// The tables as the read-model database held them before the operational store. The claims table is in its first
    /// shape (without the columns added later), as a deployment that skipped versions may still have it.
    /// </summary>
    private static string[] OldLayout(bool postgres) =>
    [
        .. CreateOperationalTables.Statements(postgres).Where(s => !s.Contains("message_id_claims", StringComparison.Ordinal)),
        "CREATE TABLE IF NOT EXISTS message_id_claims (tenant_id TEXT NOT NULL, message_id TEXT NOT NULL, conversation_id TEXT NOT NULL, PRIMARY KEY (tenant_id, message_id))",
    ];

    /// <summary>An old deployment: the six tables in the read model with a row each, the data key written by a real vault.</summary>
    private static async Task<SealedContent> SeedOldLayoutAsync(StorageOptions storage)
    {
        await using var readModel = new ReadModelStore(storage);
        await readModel.EnsureSchemaAsync();
        await using (var c = await readModel.OpenAsync())
        {
            foreach (var statement in OldLayout(storage.IsPostgres)) await ReadModelStore.ExecuteAsync(c, statement, default);
            await ExecAsync(c, "INSERT INTO message_id_claims (tenant_id, message_id, conversation_id) VALUES ('acme', 'claimed-1', 'c-1')");
            await ExecAsync(c, "INSERT INTO dead_letters (id, tenant_id, source, code, reason, payload, created_at, sender_id, topic) " +
                               "VALUES ('dl_1', 'acme', 'kafka', 'malformed_json', 'bad', '{', 1, 'alice', 'chat.messages')");
            await ExecAsync(c, "INSERT INTO intent_models (tenant_id, version, created_at, status, examples, labels, model) VALUES ('acme', 1, 1, 'ready', 10, 2, @m)",
                ("m", new byte[] { 1, 2, 3 }));
            await ExecAsync(c, "INSERT INTO intent_model_live (tenant_id, version, changed_at) VALUES ('acme', 1, 1)");
            await ExecAsync(c, "INSERT INTO audit_access_log (id, tenant_id, user_id, action, target, query, at) VALUES ('a1', 'acme', 'root', 'verify', 'journal', NULL, 1)");
        }
        // The vault of the old layout wrote its keys into the read-model database.
        await using var old = new OperationalStore(storage with { OperationalConnectionString = storage.ReadModelConnectionString }, readModel.Breaker);
        return new ContentVault(old, Master).Seal("acme", "alice", "the secret"u8, Aad);
    }

    private static async Task AssertMovedAsync(StorageOptions storage, SealedContent sealedContent)
    {
        await using var ops = new OperationalStore(storage);
        Assert.Equal("the secret", Encoding.UTF8.GetString(new ContentVault(ops, Master).Open("acme", sealedContent, Aad)!));
        await using (var c = await ops.OpenAsync())
        {
            foreach (var table in MoveOperationalRowsFromReadModel.Tables)
                Assert.Equal(1L, await ScalarAsync(c, $"SELECT COUNT(*) FROM {table}"));
            var claim = await new MessageIdClaims(ops).FindAsync("acme", "claimed-1");
            Assert.Equal(new MessageIdClaim("c-1", null, null, null), claim);
            Assert.Equal(3L, await ScalarAsync(c, "SELECT LENGTH(model) FROM intent_models"));
            Assert.Equal(1L, await ScalarAsync(c, "SELECT COUNT(*) FROM dead_letters WHERE sender_id = 'alice' AND topic = 'chat.messages'"));
            Assert.Equal(AllVersions, await VersionsAsync(c, storage.IsPostgres));
        }
        // The old tables are gone: nothing can read or write a stale copy.
        await using var readModel = new ReadModelStore(storage);
        await using var rm = await readModel.OpenAsync();
        foreach (var table in MoveOperationalRowsFromReadModel.Tables)
            Assert.Equal(0L, await ScalarAsync(rm, storage.IsPostgres
                ? $"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = '{table}'"
                : $"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"));
    }

    [Theory]
    [InlineData("postgres")]
    [InlineData("sqlite")]
    public async Task An_old_layout_moves_into_the_operational_store_and_a_second_start_changes_nothing(string kind)
    {
        var storage = TestDatabases.Storage(kind);
        var sealedContent = await SeedOldLayoutAsync(storage);

        await using var ops = new OperationalStore(storage);
        await ops.MigrateAsync();
        await AssertMovedAsync(storage, sealedContent);

        await ops.MigrateAsync();
        await AssertMovedAsync(storage, sealedContent);
    }

    [Theory]
    [InlineData("postgres")]
    [InlineData("sqlite")]
    public async Task A_fresh_store_is_created_by_the_migrations_alone(string kind)
    {
        var storage = TestDatabases.Storage(kind);
        await using var ops = new OperationalStore(storage);
        await ops.MigrateAsync();
        var vault = new ContentVault(ops, Master);
        var sealedContent = vault.Seal("acme", "alice", "fresh"u8, Aad);
        Assert.Equal("fresh", Encoding.UTF8.GetString(new ContentVault(ops, Master).Open("acme", sealedContent, Aad)!));
        await using var c = await ops.OpenAsync();
        Assert.Equal(AllVersions, await VersionsAsync(c, storage.IsPostgres));
        if (storage.IsPostgres)
            Assert.Equal("caas_ops", await ScalarStringAsync(c, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'data_keys'"));
        else
            Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(StorageOptions.SqliteFile(storage.ReadModelConnectionString))!, "operational.db")));
    }

    [Theory]
    [InlineData("postgres")]
    [InlineData("sqlite")]
    public async Task The_claims_purge_still_finds_their_messages_in_the_read_model(string kind)
    {
        var storage = TestDatabases.Storage(kind);
        await using var readModel = new ReadModelStore(storage);
        await readModel.EnsureSchemaAsync();
        await using var ops = new OperationalStore(storage);
        await ops.MigrateAsync();
        var claims = new MessageIdClaims(ops);
        await claims.ClaimAsync("acme", "projected", "c-1");
        await claims.ClaimAsync("acme", "ghost", "c-1");
        // The message reached the journal and the read model, but its node stopped before recording the claim.
        await using (var c = await readModel.OpenAsync())
            await ExecAsync(c, "INSERT INTO rm_messages (tenant_id, conversation_id, seq, message_id, sender_id, created_at, deleted, reactions, versions) " +
                               "VALUES ('acme', 'c-1', 7, 'projected', 'alice', 5, 0, '{}', '[]')");

        var later = new MessageIdClaims(ops, new ShiftedClock(TimeSpan.FromDays(2)));
        Assert.Equal(1, await later.PurgeAsync("acme", TimeSpan.FromDays(1)));
        Assert.Null(await claims.FindAsync("acme", "ghost"));
        Assert.Equal(new MessageIdClaim("c-1", 7, "alice", DateTimeOffset.FromUnixTimeMilliseconds(5)), await claims.FindAsync("acme", "projected"));
    }

    [Fact]
    public async Task Two_nodes_starting_at_once_on_postgres_migrate_once()
    {
        var storage = TestDatabases.Storage("postgres");
        var sealedContent = await SeedOldLayoutAsync(storage);

        await using var first = new OperationalStore(storage);
        await using var second = new OperationalStore(storage);
        await Task.WhenAll(Task.Run(() => first.MigrateAsync()), Task.Run(() => second.MigrateAsync()));

        await AssertMovedAsync(storage, sealedContent);
    }

    [Fact]
    public async Task A_node_waits_while_another_holds_the_migration_lock()
    {
        var storage = TestDatabases.Storage("postgres");
        await using var holder = new NpgsqlConnection(storage.ReadModelConnectionString);
        await holder.OpenAsync();
        await ExecAsync(holder, $"SELECT pg_advisory_lock({OperationalMigrations.AdvisoryLockKey})");

        await using var ops = new OperationalStore(storage);
        var migrating = Task.Run(() => ops.MigrateAsync());
        const string waiting = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted " +
                               "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
        for (var i = 0; i < 600 && await ScalarAsync(holder, waiting) == 0 && !migrating.IsCompleted; i++) await Task.Delay(100);
        Assert.Equal(1L, await ScalarAsync(holder, waiting));
        Assert.False(migrating.IsCompleted);
        Assert.Equal(0L, await ScalarAsync(holder, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'caas_ops'"));

        await ExecAsync(holder, $"SELECT pg_advisory_unlock({OperationalMigrations.AdvisoryLockKey})");
        await migrating.WaitAsync(TimeSpan.FromSeconds(120));
        await using var c = await ops.OpenAsync();
        Assert.Equal(AllVersions, await VersionsAsync(c, true));
    }

    [Fact]
    public async Task Deleting_or_rebuilding_the_read_model_loses_no_key_and_no_claim()
    {
        var dir = TestDatabases.NewSqliteDirectory();
        string room;
        await using (var node = await SqliteNode.StartAsync(dir))
        {
            using var alice = node.Client("t-ops", "alice");
            room = await CreateGroupAsync(alice);
            Assert.Equal(201, await PostAsync(alice, room, "kept secret", "ops-1"));
            await WaitForAsync(async () => (await alice.GetStringAsync($"/v1/messages/conversations/{room}")).Contains("kept secret"));
        }
        // A restart: the process's pooled SQLite connections go with the first node. Left in the pool, they still point at
        // the deleted file, and the second node's schema set-up could run on one of them (its CREATE TABLE IF NOT EXISTS
        // a no-op there) and leave the new file without tables: "no such table: rm_progress" (seen once in three runs).
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (var suffix in new[] { "", "-wal", "-shm" }) File.Delete(Path.Combine(dir, "readmodel.db" + suffix));

        await using (var node = await SqliteNode.StartAsync(dir))
        {
            using var alice = node.Client("t-ops", "alice");
            // The projection refills the new read model from the journal and the vault still opens the content.
            await WaitForAsync(async () => (await alice.GetStringAsync($"/v1/messages/conversations/{room}")).Contains("kept secret"));
            var other = await CreateGroupAsync(alice);
            Assert.Equal(409, await PostAsync(alice, other, "reused", "ops-1"));

            using var op = node.Client("t-ops", "ops", "operator");
            Assert.Equal(202, (int)(await op.PostAsync("/v1/admin/projections/conversations/rebuild", null)).StatusCode);
            await WaitForAsync(async () => JsonDocument.Parse(await op.GetStringAsync("/v1/admin/projections/conversations/rebuild"))
                .RootElement.GetProperty("state").GetString() == "done");
            await WaitForAsync(async () => (await alice.GetStringAsync($"/v1/messages/conversations/{room}")).Contains("kept secret"));
            Assert.Equal(409, await PostAsync(alice, other, "reused again", "ops-1"));
        }
    }

    private static async Task<string> CreateGroupAsync(HttpClient client)
    {
        var response = await Caas.Tests.Shared.Retrying.PostAsJsonAsync(client, "/v1/conversations", new { type = "group", members = Array.Empty<string>() });
        Assert.Equal(201, (int)response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
    }

    private static async Task<int> PostAsync(HttpClient client, string conversation, string text, string messageId)
    {
        using var response = await client.PostAsJsonAsync("/v1/messages",
            new { conversation_id = conversation, content = new { type = "text", text }, message_id = messageId });
        return (int)response.StatusCode;
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        for (var i = 0; i < 1200; i++)
        {
            if (await condition()) return;
            await Task.Delay(100);
        }
        Assert.Fail("the condition did not hold within two minutes");
    }

    /// <summary>Every migration the assembly defines (other capabilities add theirs), in order.</summary>
    private static readonly List<long> AllVersions = typeof(OperationalStore).Assembly.GetTypes()
        .Select(t => t.GetCustomAttributes(typeof(FluentMigrator.MigrationAttribute), false).Cast<FluentMigrator.MigrationAttribute>().FirstOrDefault())
        .Where(a => a is not null).Select(a => a!.Version).Order().ToList();

    private static async Task<List<long>> VersionsAsync(DbConnection c, bool postgres)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = postgres ? "SELECT \"Version\" FROM caas_ops.\"VersionInfo\" ORDER BY 1" : "SELECT Version FROM VersionInfo ORDER BY 1";
        await using var r = await cmd.ExecuteReaderAsync();
        var versions = new List<long>();
        while (await r.ReadAsync()) versions.Add(r.GetInt64(0));
        return versions;
    }

    private static async Task ExecAsync(DbConnection c, string sql, params (string Name, object Value)[] args)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = "@" + name;
            p.Value = value;
            cmd.Parameters.Add(p);
        }
        await cmd.ExecuteNonQueryAsync();
    }

    private static async Task<long> ScalarAsync(DbConnection c, string sql)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(await cmd.ExecuteScalarAsync());
    }

    private static async Task<string?> ScalarStringAsync(DbConnection c, string sql)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return await cmd.ExecuteScalarAsync() as string;
    }

    /// <summary>A real node on a SQLite data directory (journal.db, readmodel.db, operational.db).</summary>
    private sealed class SqliteNode : IAsyncDisposable
    {
        private const string Secret = "operational-secret-operational-secret-operational";
        private readonly Microsoft.AspNetCore.Builder.WebApplication _app;

        private SqliteNode(Microsoft.AspNetCore.Builder.WebApplication app) => _app = app;

        public static async Task<SqliteNode> StartAsync(string dataDir)
        {
            var app = await NodeHost.BuildAsync(new NodeOptions
            {
                DataDir = dataDir,
                Urls = "http://127.0.0.1:0",
                JwtSecret = Secret,
                LogLevel = "Warning",
                Enrichment = false,
            });
            await app.StartAsync();
            return new SqliteNode(app);
        }

        public HttpClient Client(string tenant, string user, params string[] roles)
        {
            var client = new HttpClient { BaseAddress = new Uri(_app.Urls.First()), Timeout = TimeSpan.FromSeconds(60) };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
                new JwtSettings(Secret, null, null, null).Issue(tenant, user, roles));
            return client;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
