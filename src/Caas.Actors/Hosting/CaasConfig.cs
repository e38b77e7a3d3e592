using Akka.Configuration;

namespace Caas.Actors.Hosting;

/// <summary>Where events and read models live: PostgreSQL (production) or SQLite files (embedded default).</summary>
public sealed record StorageOptions(bool IsPostgres, string JournalConnectionString, string ReadModelConnectionString)
{
    public string ProviderName => IsPostgres ? "PostgreSQL.15" : "SQLite.MS";

    /// <summary>The PostgreSQL schema of the operational store (keys, claims, dead letters: data the read model must not hold).</summary>
    public const string OperationalSchema = "caas_ops";

    /// <summary>
    /// The operational store: on PostgreSQL the read model's database with <see cref="OperationalSchema"/> first on the
    /// search path (its SQL names tables unqualified; the read model's public schema after it, for the few queries that
    /// join the two); on SQLite the file operational.db beside the read model's file,
    /// so deleting readmodel.db to rebuild it loses nothing that cannot be rebuilt.
    /// </summary>
    public string OperationalConnectionString { get; init; } = IsPostgres
        ? ReadModelConnectionString.TrimEnd(';') + ";Search Path=" + OperationalSchema + ",public"
        : SqliteConnectionString(Path.Combine(Path.GetDirectoryName(SqliteFile(ReadModelConnectionString)) ?? ".", "operational.db"));

    /// <summary>
    /// Whether each read-model commit waits for its flush to disk (<c>CAAS_READMODEL_SYNC=full</c>). By default it does
    /// not (<c>relaxed</c>): everything in the read model is a projection of the journal whose offset commits with its
    /// rows, so a commit lost to an operating-system or database-server crash is projected again from the journal.
    /// SQLite: <c>PRAGMA synchronous = NORMAL</c> on readmodel.db (WAL: the flush happens at checkpoints); PostgreSQL:
    /// <c>synchronous_commit = off</c> on the read model's sessions. The journal and the operational store always flush.
    /// </summary>
    public bool ReadModelFlushesEachCommit { get; init; } =
        string.Equals(Environment.GetEnvironmentVariable("CAAS_READMODEL_SYNC"), "full", StringComparison.OrdinalIgnoreCase);

    /// <summary>The file of a SQLite connection string (its Data Source).</summary>
    public static string SqliteFile(string connectionString) =>
        connectionString.Split(';').Select(part => part.Split('=', 2))
            .Where(kv => kv.Length == 2 && kv[0].Trim().Equals("Data Source", StringComparison.OrdinalIgnoreCase))
            .Select(kv => kv[1].Trim()).FirstOrDefault()
        ?? throw new ArgumentException("A SQLite connection string without a Data Source.", nameof(connectionString));

    /// <summary>
    /// The query journal's connection string (events by tag and by persistence id, for the projections). On PostgreSQL
    /// its sessions plan without bitmap scans (<c>-c enable_bitmapscan=off</c>, the way the read model's sessions get
    /// <c>synchronous_commit=off</c>): the plugin's events-by-tag query (<c>tags LIKE … AND ordering &gt; … AND
    /// ordering &lt;= … ORDER BY ordering LIMIT n</c>) has one good plan, a walk of the primary key that stops after n
    /// rows; on a journal whose statistics lag its rows (new, or filling faster than autovacuum analyzes it) the
    /// planner takes the tag filter for almost no rows and chose a bitmap scan of the whole range with a sort (a
    /// projection 100,000 rows behind sorted all of them, spilling to disk, for each page of 2,000). Empty
    /// <c>CAAS_QUERY_JOURNAL_PG_OPTIONS</c> turns it off (a pooler that refuses startup options); another value replaces it.
    /// </summary>
    public string QueryJournalConnectionString { get; init; } = IsPostgres
        ? WithSessionOptions(JournalConnectionString, Environment.GetEnvironmentVariable("CAAS_QUERY_JOURNAL_PG_OPTIONS") ?? "-c enable_bitmapscan=off")
        : JournalConnectionString;

    /// <summary>A PostgreSQL connection string whose sessions start with these options (<c>-c name=value …</c>) after any it has.</summary>
    public static string WithSessionOptions(string connectionString, string options)
    {
        if (string.IsNullOrWhiteSpace(options)) return connectionString;
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        builder.Options = ((builder.Options ?? "") + " " + options).Trim();
        return builder.ConnectionString;
    }

    public static StorageOptions Postgres(string connectionString) => new(true, connectionString, connectionString);

    /// <summary>SQLite has one writer, so the journal and the read model get a file each (WAL mode, busy timeout).</summary>
    public static StorageOptions Sqlite(string dataDir)
    {
        Directory.CreateDirectory(dataDir);
        return new StorageOptions(false, SqliteConnectionString(Path.Combine(dataDir, "journal.db")),
            SqliteConnectionString(Path.Combine(dataDir, "readmodel.db")));
    }

    public static string SqliteConnectionString(string file) =>
        $"Data Source={Path.GetFullPath(file)};Pooling=True;Default Timeout=30";
}

/// <summary>Loads the HOCON files of <c>hocon/</c> (embedded in this assembly) and composes the node's Akka config.</summary>
public static class CaasConfig
{
    public static readonly string[] Files = ["serialization", "sharding", "persistence", "projections", "pipeline", "cluster"];

    public static string Read(string name)
    {
        using var stream = typeof(CaasConfig).Assembly.GetManifestResourceStream($"hocon.{name}.conf")
                           ?? throw new InvalidOperationException($"hocon/{name}.conf is not embedded.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>
    /// Environment variables that override HOCON settings (the files mark each with <c># env: NAME</c>).
    /// Applied in code because substitutions like <c>${?VAR}</c> are not reliable in Akka.NET's HOCON reader.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> EnvOverrides = new Dictionary<string, string>
    {
        ["CAAS_REMOTE_HOSTNAME"] = "akka.remote.dot-netty.tcp.hostname",
        ["CAAS_REMOTE_PUBLIC_HOSTNAME"] = "akka.remote.dot-netty.tcp.public-hostname",
        ["CAAS_REMOTE_PORT"] = "akka.remote.dot-netty.tcp.port",
        ["CAAS_HEARTBEAT_PAUSE"] = "akka.cluster.failure-detector.acceptable-heartbeat-pause",
        ["CAAS_SBR_STABLE_AFTER"] = "akka.cluster.split-brain-resolver.stable-after",
        ["CAAS_JOURNAL_BATCH_SIZE"] = "akka.persistence.journal.sql.batch-size",
        ["CAAS_JOURNAL_PARALLELISM"] = "akka.persistence.journal.sql.parallelism",
        ["CAAS_JOURNAL_WRITER"] = "caas.journal.writer",
        ["CAAS_JOURNAL_WRITERS"] = "akka.persistence.journal.caas.writers",
        ["CAAS_JOURNAL_MAX_BATCH_ROWS"] = "akka.persistence.journal.caas.max-batch-rows",
        ["CAAS_JOURNAL_REPLAY_BURST"] = "akka.persistence.journal.caas.replay-burst",
        ["CAAS_JOURNAL_REPLAY_PIPELINED_FROM"] = "akka.persistence.journal.caas.replay-pipelined-from",
        ["CAAS_JOURNAL_SQLITE_WAL_AUTOCHECKPOINT"] = "akka.persistence.journal.caas.sqlite-wal-autocheckpoint",
        ["CAAS_QUERY_REFRESH"] = "akka.persistence.query.journal.sql.refresh-interval",
        ["CAAS_PROJECTION_FEED"] = "caas.projections.feed",
        ["CAAS_SERIALIZE_MESSAGES"] = "akka.actor.serialize-messages",
        ["CAAS_SNAPSHOT_EVERY"] = "caas.entities.snapshot-every",
        ["CAAS_PASSIVATE_AFTER"] = "caas.entities.passivate-after",
        ["CAAS_ROOM_TOPICS"] = "caas.rooms.topics",
        ["CAAS_MESSAGE_WINDOW"] = "caas.entities.message-window",
        ["CAAS_CALL_RING_TIMEOUT"] = "caas.calls.ring-timeout",
        ["CAAS_RECORDING_CONSENT_TIMEOUT"] = "caas.calls.recording-consent-timeout",
        ["CAAS_ENRICH_HIGH_WATER"] = "caas.pipeline.enrich-high-water",
        ["CAAS_ENRICH_YIELD_MAX"] = "caas.pipeline.enrich-yield-max",
    };

    /// <summary>Durations whose variables are documented in seconds: a bare number means seconds (HOCON alone would read milliseconds).</summary>
    private static readonly HashSet<string> SecondsIfBare = ["caas.calls.ring-timeout", "caas.calls.recording-consent-timeout"];

    public static Config FromEnvironment(Func<string, string?>? getEnv = null)
    {
        getEnv ??= Environment.GetEnvironmentVariable;
        var lines = EnvOverrides
            .Select(kv => (kv.Value, Value: getEnv(kv.Key)))
            .Where(x => !string.IsNullOrWhiteSpace(x.Value))
            .Select(x => $"{x.Item1} = {Quote(SecondsIfBare.Contains(x.Item1) && double.TryParse(x.Value, System.Globalization.NumberStyles.Float,
                System.Globalization.CultureInfo.InvariantCulture, out _) ? x.Value!.Trim() + "s" : x.Value!)}");
        return ConfigurationFactory.ParseString(string.Join("\n", lines));
    }

    /// <summary>All HOCON files, with the storage's connection strings and the environment's overrides.</summary>
    public static Config Compose(StorageOptions storage, string? extraHocon = null)
    {
        var overrides = ConfigurationFactory.ParseString(extraHocon ?? string.Empty)
            .WithFallback(FromEnvironment())
            .WithFallback(StorageConfig(storage));
        var files = ConfigurationFactory.Empty;
        foreach (var file in Files) files = files.WithFallback(ConfigurationFactory.ParseString(Read(file)));
        files = files.WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration);
        // The writer is chosen below the overrides, so a host or test that names a journal plugin itself still wins.
        var writer = overrides.WithFallback(files).GetString("caas.journal.writer", "caas");
        var plugin = writer switch
        {
            "caas" => "akka.persistence.journal.caas",
            "plugin" => "akka.persistence.journal.sql",
            _ => throw new InvalidOperationException($"caas.journal.writer is caas or plugin, not '{writer}'."),
        };
        return overrides
            .WithFallback(ConfigurationFactory.ParseString($"akka.persistence.journal.plugin = {Quote(plugin)}"))
            .WithFallback(files);
    }

    public static Config StorageConfig(StorageOptions storage)
    {
        var journal = Quote(storage.JournalConnectionString);
        var query = Quote(storage.QueryJournalConnectionString);
        var provider = Quote(storage.ProviderName);
        // SQLite has one writer: parallel journal writers would only wait on each other's locks.
        // Microsoft.Data.Sqlite begins every transaction that is not read-uncommitted as BEGIN IMMEDIATE, which takes the
        // write lock: each read query (replay, projections, recovery) would queue behind the journal writer and each
        // other, sleeping on SQLITE_BUSY. read-uncommitted makes reads deferred; in WAL mode a reader still sees only
        // committed data (read_uncommitted only changes shared-cache connections, which CAAS does not use).
        var parallelism = storage.IsPostgres ? string.Empty : """
            akka.persistence.journal.sql { parallelism = 1, read-isolation-level = read-uncommitted }
            akka.persistence.snapshot-store.sql.read-isolation-level = read-uncommitted
            akka.persistence.query.journal.sql.read-isolation-level = read-uncommitted
            """;
        return ConfigurationFactory.ParseString($$"""
            {{parallelism}}
            akka.persistence.journal.sql { connection-string = {{journal}}, provider-name = {{provider}} }
            akka.persistence.journal.caas { connection-string = {{journal}}, provider-name = {{provider}} }
            akka.persistence.snapshot-store.sql { connection-string = {{journal}}, provider-name = {{provider}} }
            akka.persistence.query.journal.sql { connection-string = {{query}}, provider-name = {{provider}} }
            """);
    }

    public static string Quote(string value) => "\"" + value.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
