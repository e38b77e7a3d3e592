using System.CommandLine;
using System.Data.Common;
using System.Diagnostics;
using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Streams.ReadModel;
using Npgsql;
using NpgsqlTypes;

namespace Caas.Node.Bench;

/// <summary>
/// <c>caas bench</c>: messages round-robin over C conversations through sharding into the journal, on a node in this
/// process as in production (projections on), after a warm-up; closed loop (P asks in flight) or open loop
/// (<c>--rate</c>). Then, on the same database, the bare baseline: as many journal-like rows as were acknowledged,
/// written by a plain client in batches (binary COPY on PostgreSQL, one prepared INSERT per transaction of a batch on
/// SQLite) into a scratch table dropped after. The last line is
/// <c>acked_per_s=N p50_ms=N p99_ms=N max_ms=N rss_mb=N baseline_rows_per_s=N ratio=N</c>.
/// </summary>
public static class JournalBench
{
    private const string Tenant = "bench";

    public static Command Command()
    {
        var conversations = new Option<int>("--conversations") { Description = "Conversations (C).", DefaultValueFactory = _ => 1000 };
        var load = new LoadOptions("--parallel", 512);
        var store = new Option<string>("--store") { Description = "sqlite or postgres (CAAS_POSTGRES or --postgres).", DefaultValueFactory = _ => "sqlite" };
        var postgres = new Option<string?>("--postgres")
        {
            Description = "Npgsql connection string of a superuser for --store postgres: the bench creates a scratch database there and drops it after.",
        };
        var baselineBatch = new Option<int>("--baseline-batch") { Description = "Rows per batch (one COPY / one transaction) of the bare baseline.", DefaultValueFactory = _ => 1000 };
        var enrich = new Option<bool>("--enrich") { Description = "Measure the text enrichers instead (throughput and p99 on one core)." };
        var replay = new Option<bool>("--replay")
        {
            Description = "Measure audit replay, read-model rebuild and the recovery of one long conversation instead, over --events journal events " +
                          "(on --postgres, in a scratch database it creates and drops).",
        };
        var events = new Option<int>("--events") { Description = "Journal events for --replay.", DefaultValueFactory = _ => 200_000 };
        var recoveryEvents = new Option<int>("--recovery-events") { Description = "--replay: events of the one conversation whose recovery is timed.", DefaultValueFactory = _ => 100_000 };
        var command = new Command("bench",
            "Measure acknowledged messages/s through sharding into the journal against the bare database (or, with --enrich, the enrichers; with --replay, replay, rebuild and recovery).")
            { conversations, store, postgres, baselineBatch, enrich, replay, events, recoveryEvents };
        load.AddTo(command);
        conversations.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 1_000_000) r.AddError("--conversations is 1 to 1000000."); });
        baselineBatch.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 100_000) r.AddError("--baseline-batch is 1 to 100000."); });
        store.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not ("sqlite" or "postgres")) r.AddError("--store is sqlite or postgres."); });
        command.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(enrich)) return Caas.Enrichment.Cli.EnrichmentCommands.Bench(Console.Out, parse.GetValue(load.Warmup));
            var kind = parse.GetValue(store)!;
            var pg = parse.GetValue(postgres) ?? (Environment.GetEnvironmentVariable("CAAS_POSTGRES") is { Length: > 0 } e ? e : null);
            if (kind == "postgres" && pg is null)
            {
                Console.Error.WriteLine("--store postgres needs --postgres or CAAS_POSTGRES.");
                return 2;
            }
            if (parse.GetValue(replay))
            {
                if (parse.GetValue(events) < 1 || parse.GetValue(conversations) < 1 || parse.GetValue(recoveryEvents) < 1)
                {
                    Console.Error.WriteLine("--events, --recovery-events and --conversations must be at least 1.");
                    return 2;
                }
                return await ReplayBench.RunAsync(kind, pg, parse.GetValue(events), parse.GetValue(conversations), parse.GetValue(recoveryEvents),
                    parse.GetValue(load.Warmup), ct);
            }
            var dataDir = Path.Combine(Path.GetTempPath(), "caas-bench-" + Guid.NewGuid().ToString("N"));
            var database = kind == "postgres" ? await ReplayBench.CreateDatabaseAsync(pg!, ct) : null;
            var options = NodeOptions.FromEnvironment() with
            {
                DataDir = dataDir,
                Postgres = database,
                Urls = "http://127.0.0.1:0",
                JwtSecret = new string('b', 48),
                JwtPublicKey = null,
                MasterKey = null,
                LogLevel = "Warning",
            };
            try
            {
                return await RunAsync(options, parse.GetValue(conversations), load.Read(parse), parse.GetValue(baselineBatch), kind, ct);
            }
            finally
            {
                if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true);
                if (database is not null) await ReplayBench.DropDatabaseAsync(pg!, database);
            }
        });
        return command;
    }

    /// <summary>
    /// How far the read model and search projections were behind the journal when the phase ended, and how long they
    /// then took to reach that head with the load stopped (up to two minutes): the acknowledged rate is sustainable
    /// only while they keep up. <c>projections: head=N read_model=N search=N behind=N caught_up_s=N catch_up_events_per_s=N</c>.
    /// </summary>
    private static async Task PrintProjectionCatchUpAsync(Caas.Actors.Hosting.StorageOptions storage, CancellationToken ct)
    {
        long head;
        await using (var c = await JournalDb.OpenAsync(storage, ct))
            head = await JournalDb.HeadAsync(c, ct);
        long Slowest() => Math.Min(ProjectionRunner.WrittenOffset(ReadModelWriter.ProjectionName) ?? 0,
            ProjectionRunner.WrittenOffset(Caas.Streams.Search.SearchIndex.ProjectionName) ?? 0);
        var atEnd = Slowest();
        var line = $"projections: head={head} read_model={ProjectionRunner.WrittenOffset(ReadModelWriter.ProjectionName)} " +
                   $"search={ProjectionRunner.WrittenOffset(Caas.Streams.Search.SearchIndex.ProjectionName)} behind={Math.Max(0, head - atEnd)}";
        var clock = Stopwatch.StartNew();
        while (Slowest() < head && clock.Elapsed < TimeSpan.FromMinutes(2)) await Task.Delay(100, ct);
        var seconds = clock.Elapsed.TotalSeconds;
        Console.WriteLine(Slowest() >= head
            ? FormattableString.Invariant($"{line} caught_up_s={seconds:F1} catch_up_events_per_s={(head - atEnd) / Math.Max(seconds, 0.001):F0}")
            : $"{line} caught_up_s=none (still {head - Slowest()} behind after 2 minutes)");
        // Each projection's batches over the whole run (warm-up, phase and catch-up): how many, their mean size and time.
        foreach (var name in new[] { ReadModelWriter.ProjectionName, Caas.Streams.Search.SearchIndex.ProjectionName })
        {
            var (n, events, sum) = ProjectionRunner.Totals(name);
            Console.WriteLine(FormattableString.Invariant(
                $"projection {name}: batches={n} events_per_batch={(n > 0 ? events / n : 0):F0} write_ms_per_batch={(n > 0 ? sum / n * 1000 : 0):F1} write_s={sum:F1}"));
        }
    }

    private static async Task<int> RunAsync(NodeOptions options, int c, LoadSettings load, int baselineBatch, string kind, CancellationToken ct)
    {
        var storage = options.Storage();
        LoadResult result;
        await using (var app = await NodeHost.BuildAsync(options))
        {
            await app.StartAsync(ct);
            var region = await app.Services.GetRequiredService<IRequiredActor<ConversationRegion>>().GetAsync(ct);
            var timeout = TimeSpan.FromSeconds(30);
            var ids = Enumerable.Range(0, c).Select(i => $"bench-{i}").ToArray();
            Console.WriteLine($"caas bench store={kind} conversations={c} {load.Describe()} warmup={load.Warmup.TotalSeconds:0}s settle<={load.Settle.TotalSeconds:0}s " +
                              $"duration<={load.Duration.TotalSeconds:0}s messages<={load.Messages} roles={string.Join(',', options.Roles)} (node, load and database share the cores)");
            await BenchEnvironment.PrintAsync(Console.Out, options.Postgres, ct);
            await BenchEnvironment.WaitForStartUpAsync(app.Services, Console.Out, ct);

            using (var gate = new SemaphoreSlim(Math.Min(load.InFlight, 256)))
                await Task.WhenAll(ids.Select(async id =>
                {
                    await gate.WaitAsync(ct);
                    try { await region.Ask<object>(new CreateConversation(Tenant, id, "u0", ConversationTypes.Group, id, []), timeout, ct); }
                    finally { gate.Release(); }
                }));

            // Round-robin over conversations so every entity has work in flight, as under real traffic.
            result = await LoadRun.RunAsync(load, async (n, token) =>
            {
                var reply = await region.Ask<object>(new PostMessage(Tenant, ids[n % c], "u0", $"m{n}",
                    new MessageContent("text", "benchmark message " + n), TimeSpan.FromHours(24)), timeout, token);
                return reply is MessageAck;
            }, BenchEnvironment.SelfRssMb, Console.Out, ct);
            result.Print(Console.Out, "journal");
            await PrintProjectionCatchUpAsync(storage, ct);
            await app.StopAsync(CancellationToken.None);
        }

        // The node is stopped: the baseline has the database (and the cores) to itself, as the node had.
        var rows = Math.Max(result.Acked, 1);
        var baseline = await BaselineAsync(storage, rows, c, baselineBatch, ct);
        var ratio = baseline > 0 ? result.AckedPerSecond / baseline : 0;
        Console.WriteLine($"{result.Summary()} baseline_rows_per_s={baseline:F0} ratio={ratio:F3}");
        return result.Failed == 0 ? 0 : 1;
    }

    /// <summary>
    /// The bare database: <paramref name="rows"/> journal-like rows (persistence id, sequence number, payload of the journal's
    /// mean event size, manifest, writer, tags, timestamp) in batches, by one plain client, into a scratch table with the
    /// journal's keys; answers rows/s.
    /// </summary>
    private static async Task<double> BaselineAsync(Caas.Actors.Hosting.StorageOptions storage, long rows, int conversations, int batch, CancellationToken ct)
    {
        var table = "bench_baseline_" + Guid.NewGuid().ToString("N")[..8];
        await using var connection = await JournalDb.OpenAsync(storage, ct);
        var (payloadBytes, tags, manifest) = await JournalShapeAsync(connection, ct);
        var payload = new byte[payloadBytes];
        Random.Shared.NextBytes(payload);
        await ExecuteAsync(connection, storage.IsPostgres
            ? $"CREATE TABLE {table} (ordering BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, persistence_id VARCHAR(255) NOT NULL, " +
              "sequence_number BIGINT NOT NULL, deleted BOOLEAN NOT NULL, created BIGINT NOT NULL, manifest VARCHAR(500) NOT NULL, message BYTEA NOT NULL, " +
              "identifier INTEGER, writer_uuid VARCHAR(128) NOT NULL, tags VARCHAR(500), UNIQUE (persistence_id, sequence_number))"
            : $"CREATE TABLE {table} (ordering INTEGER PRIMARY KEY AUTOINCREMENT, persistence_id TEXT NOT NULL, sequence_number INTEGER NOT NULL, " +
              "deleted INTEGER NOT NULL, created INTEGER NOT NULL, manifest TEXT NOT NULL, message BLOB NOT NULL, identifier INTEGER, writer_uuid TEXT NOT NULL, " +
              "tags TEXT, UNIQUE (persistence_id, sequence_number))", ct);
        try
        {
            if (!storage.IsPostgres)
            {
                await ExecuteAsync(connection, "PRAGMA journal_mode=WAL", ct);
                await ExecuteAsync(connection, "PRAGMA synchronous=FULL", ct);
            }
            var writer = Guid.NewGuid().ToString("N");
            // One batch first, not timed, of other persistence ids: the plain client is warmed up as the node was.
            var warm = Enumerable.Range(0, batch).Select(i => ($"baseline-warmup|{i % conversations}", (long)(i / conversations + 1))).ToArray();
            if (storage.IsPostgres) await CopyAsync((NpgsqlConnection)connection, table, warm, payload, manifest, writer, tags, ct);
            else await InsertAsync(connection, table, warm, payload, manifest, writer, tags, ct);
            var seqs = new long[conversations];
            var clock = Stopwatch.StartNew();
            for (long done = 0; done < rows; done += batch)
            {
                var count = (int)Math.Min(batch, rows - done);
                var batchRows = new (string Pid, long Seq)[count];
                for (var i = 0; i < count; i++)
                {
                    var conversation = (int)((done + i) % conversations);
                    batchRows[i] = ($"baseline|{conversation}", ++seqs[conversation]);
                }
                if (storage.IsPostgres) await CopyAsync((NpgsqlConnection)connection, table, batchRows, payload, manifest, writer, tags, ct);
                else await InsertAsync(connection, table, batchRows, payload, manifest, writer, tags, ct);
            }
            var perSecond = rows / clock.Elapsed.TotalSeconds;
            Console.WriteLine($"baseline: {rows} rows of {payloadBytes} payload bytes in batches of {batch} " +
                              $"({(storage.IsPostgres ? "binary COPY" : "prepared INSERT, one transaction per batch, WAL, synchronous=FULL")}) " +
                              $"in {clock.Elapsed.TotalSeconds:F1} s = {perSecond:F0} rows/s");
            return perSecond;
        }
        finally
        {
            await ExecuteAsync(connection, $"DROP TABLE IF EXISTS {table}", CancellationToken.None);
        }
    }

    /// <summary>The journal's mean payload size, a tag value and a manifest as the node wrote them.</summary>
    private static async Task<(int Bytes, string Tags, string Manifest)> JournalShapeAsync(DbConnection c, CancellationToken ct)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = c is NpgsqlConnection
            ? "SELECT COALESCE(AVG(octet_length(message)), 200)::int, MAX(tags), MAX(manifest) FROM journal"
            : "SELECT CAST(COALESCE(AVG(length(message)), 200) AS INTEGER), MAX(tags), MAX(manifest) FROM journal";
        await using var r = await cmd.ExecuteReaderAsync(ct);
        await r.ReadAsync(ct);
        return (Convert.ToInt32(r.GetValue(0)), r.IsDBNull(1) ? ";conversation;" : r.GetString(1), r.IsDBNull(2) ? "conv.message-posted.v1" : r.GetString(2));
    }

    private static async Task CopyAsync(NpgsqlConnection c, string table, (string Pid, long Seq)[] rows, byte[] payload, string manifest, string writer,
        string tags, CancellationToken ct)
    {
        await using var copy = await c.BeginBinaryImportAsync(
            $"COPY {table} (persistence_id, sequence_number, deleted, created, manifest, message, identifier, writer_uuid, tags) FROM STDIN (FORMAT BINARY)", ct);
        foreach (var (pid, seq) in rows)
        {
            await copy.StartRowAsync(ct);
            await copy.WriteAsync(pid, NpgsqlDbType.Varchar, ct);
            await copy.WriteAsync(seq, NpgsqlDbType.Bigint, ct);
            await copy.WriteAsync(false, NpgsqlDbType.Boolean, ct);
            await copy.WriteAsync(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), NpgsqlDbType.Bigint, ct);
            await copy.WriteAsync(manifest, NpgsqlDbType.Varchar, ct);
            await copy.WriteAsync(payload, NpgsqlDbType.Bytea, ct);
            await copy.WriteAsync(Caas.Actors.Serialization.CaasSerializer.Id, NpgsqlDbType.Integer, ct);
            await copy.WriteAsync(writer, NpgsqlDbType.Varchar, ct);
            await copy.WriteAsync(tags, NpgsqlDbType.Varchar, ct);
        }
        await copy.CompleteAsync(ct);
    }

    private static async Task InsertAsync(DbConnection c, string table, (string Pid, long Seq)[] rows, byte[] payload, string manifest, string writer,
        string tags, CancellationToken ct)
    {
        await using var tx = await c.BeginTransactionAsync(ct);
        await using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = $"INSERT INTO {table} (persistence_id, sequence_number, deleted, created, manifest, message, identifier, writer_uuid, tags) " +
                          "VALUES (@pid, @seq, 0, @created, @manifest, @message, @identifier, @writer, @tags)";
        var pid = JournalDb.Parameter(cmd, "@pid", "");
        var seq = JournalDb.Parameter(cmd, "@seq", 0L);
        var created = JournalDb.Parameter(cmd, "@created", 0L);
        JournalDb.Parameter(cmd, "@manifest", manifest);
        JournalDb.Parameter(cmd, "@message", payload);
        JournalDb.Parameter(cmd, "@identifier", Caas.Actors.Serialization.CaasSerializer.Id);
        JournalDb.Parameter(cmd, "@writer", writer);
        JournalDb.Parameter(cmd, "@tags", tags);
        await cmd.PrepareAsync(ct);
        foreach (var row in rows)
        {
            pid.Value = row.Pid;
            seq.Value = row.Seq;
            created.Value = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
    }

    private static async Task ExecuteAsync(DbConnection c, string sql, CancellationToken ct)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
