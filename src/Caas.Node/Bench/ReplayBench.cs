using System.Collections.Immutable;
using System.Data.Common;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Privacy;
using Caas.Streams.Audit;
using Caas.Streams.Privacy;
using Caas.Streams.ReadModel;
using Caas.Streams.Search;
using Caas.Web.Auth;
using Npgsql;
using NpgsqlTypes;

namespace Caas.Node.Bench;

/// <summary>
/// <c>caas bench --replay</c>: fills a fresh journal with N conversation events (real ones: sealed content, hash
/// chain, the serializer's bytes, both tags), written in bulk beside the entities so the fill is quick; lets the live
/// projection catch up; streams the tenant's events through the audit API (replay, as a client reads it); rebuilds the
/// read model from the journal; and checks the rebuilt read model equals the live one row for row. Then recovery: one
/// conversation of R events (written the same way, no snapshot) is brought back by its entity, timed from the first
/// command to its answer, three times, after a warm-up (<c>--warmup</c>, 10 s) recovering a conversation of a tenth of them again and again.
/// The last line is <c>replay_events_per_s=N rebuild_events_per_s=N recovery_ms=N recovery_events_per_s=N</c>.
/// </summary>
public static class ReplayBench
{
    private const string Tenant = "bench";

    /// <summary>The journal's tag column as the plugin writes it (tag-write-mode = Csv, separator ';').</summary>
    private static readonly string Tags = $";{ConversationActor.KindTag};{Ids.TenantTag(Tenant)};";

    public static async Task<int> RunAsync(string kind, string? postgres, int events, int conversations, int recoveryEvents, TimeSpan warmup,
        CancellationToken ct)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "caas-bench-replay-" + Guid.NewGuid().ToString("N"));
        string? database = null;
        if (kind == "postgres") database = await CreateDatabaseAsync(postgres!, ct);
        var secret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(48));
        var options = NodeOptions.FromEnvironment() with
        {
            DataDir = dataDir,
            Postgres = database,
            Urls = "http://127.0.0.1:0",
            JwtSecret = secret,
            JwtPublicKey = null,
            MasterKey = null,
            LogLevel = "Warning",
        };
        string? last = null;
        try
        {
            await using var app = await NodeHost.BuildAsync(options);
            await app.StartAsync(ct);
            var storage = options.Storage();
            Console.WriteLine($"caas bench --replay store={kind} events={events} conversations={conversations} recovery_events={recoveryEvents} (node and database share the cores)");
            await BenchEnvironment.PrintAsync(Console.Out, database, ct);
            await BenchEnvironment.WaitForStartUpAsync(app.Services, Console.Out, ct);

            // One real write through an entity creates the journal's tables (the plugin initialises them on first use).
            var region = await app.Services.GetRequiredService<IRequiredActor<ConversationRegion>>().GetAsync(ct);
            await region.Ask<object>(new CreateConversation("bench-warmup", "warmup", "u0", ConversationTypes.Group, "warmup", []), TimeSpan.FromSeconds(30), ct);

            var system = app.Services.GetRequiredService<ActorSystem>();
            var vault = app.Services.GetRequiredService<ContentVault>();
            var clock = Stopwatch.StartNew();
            var lastOffset = await FillAsync(storage, system, vault, events, conversations, "c", ct);
            Console.WriteLine($"fill: {events} events in {clock.Elapsed.TotalSeconds:F1} s ({events / clock.Elapsed.TotalSeconds:F0}/s, bulk insert)");

            var writer = app.Services.GetRequiredService<ReadModelWriter>();
            clock.Restart();
            await WaitForOffsetAsync(writer, lastOffset, TimeSpan.FromMinutes(30), ct);
            var live = clock.Elapsed.TotalSeconds;
            Console.WriteLine($"live projection (running during the fill) caught up {live:F1} s after it");
            var store = app.Services.GetRequiredService<ReadModelStore>();
            var liveDigest = await DigestAsync(store, ct);
            // The search projection indexes the same events (FTS5 or tsvector writes); the replay is timed once it has
            // caught up too, so that the figure is the replay's alone and not shared with the indexing.
            await WaitForOffsetAsync(writer, lastOffset, TimeSpan.FromMinutes(30), ct, SearchIndex.ProjectionName);
            // Replay: the tenant's whole history, streamed as NDJSON to an HTTP client.
            using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()), Timeout = Timeout.InfiniteTimeSpan };
            http.DefaultRequestHeaders.Authorization = new("Bearer",
                new JwtSettings(secret, null, null, null).Issue(Tenant, "auditor", ["admin", "operator"], TimeSpan.FromHours(2)));
            // Warm-up: the same replay once, untimed (the issue's benches warm up first; the first replay of a process
            // spends a tenth to a third of its samples compiling its own code, profiled).
            var warm = Stopwatch.StartNew();
            await ReplayAsync(http, ct);
            Console.WriteLine($"replay: warm-up in {warm.Elapsed.TotalSeconds:F1} s");
            // A profiler can attach on this line.
            Console.WriteLine($"replay: {events} events, starting");
            clock.Restart();
            var (lines, bytes) = await ReplayAsync(http, ct);
            var replay = clock.Elapsed.TotalSeconds;
            Console.WriteLine($"replay: {lines} events, {bytes / (1024 * 1024)} MiB of NDJSON in {replay:F1} s");
            if (lines != events) Console.WriteLine($"replay streamed {lines} events, expected {events}");

            // Rebuild: empty the read model, write it again from the journal, compare with the live one.
            var rebuilds = app.Services.GetRequiredService<ProjectionRebuilds>();
            clock.Restart();
            await rebuilds.StartAsync(ReadModelWriter.ProjectionName, ct);
            await WaitForOffsetAsync(writer, lastOffset, TimeSpan.FromMinutes(30), ct);
            var rebuild = clock.Elapsed.TotalSeconds;
            var equal = await DigestAsync(store, ct) == liveDigest;
            var rss = Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024);
            Console.WriteLine($"rebuild: {events} events in {rebuild:F1} s; rebuilt read model equals live row for row: {equal}; peak rss_mb={rss}");
            var (reindex, messages) = await SearchReindexAsync(app.Services, store, lastOffset, ct);
            Console.WriteLine($"search reindex: {messages} messages indexed from the journal's {events} events in {reindex:F1} s " +
                              $"({messages / reindex:F0} messages/s), swapped in");
            var (recoveryMs, recovered) = await RecoveryAsync(storage, system, vault, region, writer, recoveryEvents, warmup, ct);
            // Printed once the node is down, so no shutdown log line comes after it.
            last = $"replay_events_per_s={lines / replay:F0} rebuild_events_per_s={events / rebuild:F0} search_reindex_s={reindex:F1} " +
                   $"recovery_ms={recoveryMs:F0} recovery_events_per_s={recoveryEvents / (recoveryMs / 1000):F0}";
            await app.StopAsync(CancellationToken.None);
            return equal && lines == events && recovered ? 0 : 1;
        }
        finally
        {
            if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true);
            if (database is not null) await DropDatabaseAsync(postgres!, database);
            if (last is not null) Console.WriteLine(last);
        }
    }

    /// <summary>The tenant's whole history streamed as NDJSON to an HTTP client: the lines and bytes read.</summary>
    private static async Task<(long Lines, long Bytes)> ReplayAsync(HttpClient http, CancellationToken ct)
    {
        long lines = 0, bytes = 0;
        using var response = await http.GetAsync("/v1/admin/audit/events", HttpCompletionOption.ResponseHeadersRead, ct);
        response.EnsureSuccessStatusCode();
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        var buffer = new byte[1 << 16];
        int read;
        while ((read = await stream.ReadAsync(buffer, ct)) > 0)
        {
            bytes += read;
            lines += buffer.AsSpan(0, read).Count((byte)'\n');
        }
        return (lines, bytes);
    }

    /// <summary>
    /// The search index rebuilt from the journal, as <c>POST /v1/admin/search/reindex</c> does: once the live search
    /// projection has caught up (it ran during the fill), from the request to the swap of the rebuilt tables. Answers
    /// the seconds and the messages in the index after it.
    /// </summary>
    private static async Task<(double Seconds, long Messages)> SearchReindexAsync(IServiceProvider services, ReadModelStore store, long lastOffset,
        CancellationToken ct)
    {
        var projection = await services.GetRequiredService<IRequiredActor<Caas.Streams.Search.SearchProjectionKey>>().GetAsync(ct);
        async Task<Caas.Streams.Search.ReindexStatus> StatusAsync() =>
            await projection.Ask<Caas.Streams.Search.ReindexStatus>(Caas.Streams.Search.GetReindexStatus.Instance, TimeSpan.FromSeconds(30), ct);
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(30);
        while ((await StatusAsync()).Offset < lastOffset && DateTime.UtcNow < until) await Task.Delay(200, ct);
        var swaps = (await StatusAsync()).Swaps;
        var clock = Stopwatch.StartNew();
        await projection.Ask<Caas.Streams.Search.ReindexStarted>(Caas.Streams.Search.ReindexSearch.Instance, TimeSpan.FromSeconds(30), ct);
        while ((await StatusAsync()).Swaps == swaps && DateTime.UtcNow < until) await Task.Delay(100, ct);
        var seconds = clock.Elapsed.TotalSeconds;
        await using var c = await store.OpenAsync(ct);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM search_messages";
        return (seconds, Convert.ToInt64(await cmd.ExecuteScalarAsync(ct)));
    }

    /// <summary>
    /// Recovery: a conversation of <paramref name="events"/> events written beside the entities, then brought back by its
    /// entity: the time from the first command to its answer, which is the journal read, the deserialization and the Apply
    /// of every event (no snapshot). First a warm-up, as every bench of the issue has: a conversation of a tenth of the
    /// events is recovered, passivated and recovered again for <paramref name="warmup"/> (<c>--warmup</c>, 10 s by
    /// default), so that the timed recoveries run the code a node that has been up a while runs (the first recovery of a
    /// process also waits for the JIT's background compiler); the first warm-up recovery is printed as the cold figure.
    /// The long conversation is then recovered three times (passivated between); the answer is the median.
    /// </summary>
    private static async Task<(double Ms, bool Ok)> RecoveryAsync(Caas.Actors.Hosting.StorageOptions storage, ActorSystem system, IContentVault vault,
        IActorRef region, ReadModelWriter writer, int events, TimeSpan warmup, CancellationToken ct)
    {
        var ok = true;
        var timed = new List<double>();
        foreach (var (prefix, count) in new[] { ("recovery-warmup", Math.Max(1, events / 10)), ("recovery", events) })
        {
            var conversationId = $"{prefix}-000000";
            var offset = await FillAsync(storage, system, vault, count, 1, prefix, ct);
            // The live projections (read model and search index, both in rm_projection_offsets) take the new events first,
            // so they do not compete with the recovery for the cores: the figure is the recovery's alone.
            await WaitForOffsetAsync(writer, offset, TimeSpan.FromMinutes(30), ct);
            await WaitForOffsetAsync(writer, offset, TimeSpan.FromMinutes(30), ct, SearchIndex.ProjectionName);
            if (prefix == "recovery-warmup")
            {
                var warm = Stopwatch.StartNew();
                var runs = new List<double>();
                do
                {
                    if (runs.Count > 0) await PassivateAsync(system, conversationId, ct);
                    var (ms, good, _) = await RecoverOnceAsync(region, conversationId, ct);
                    ok &= good;
                    runs.Add(ms);
                } while (warm.Elapsed < warmup && ok);
                await PassivateAsync(system, conversationId, ct);
                var sorted = runs.Order().ToArray();
                Console.WriteLine($"recovery: warm-up, {runs.Count} recoveries of {count} events in {warm.Elapsed.TotalSeconds:F1} s; " +
                                  $"the first (cold) {runs[0]:F0} ms, then median {sorted[sorted.Length / 2]:F0} ms, last {runs[^1]:F0} ms");
                continue;
            }
            for (var run = 1; run <= 3 && ok; run++)
            {
                if (run > 1) await PassivateAsync(system, conversationId, ct);
                // A SQLite journal's write-ahead log at the start: a long one means every page read looks there first.
                var wal = storage.IsPostgres ? null : new FileInfo(Caas.Actors.Hosting.StorageOptions.SqliteFile(storage.JournalConnectionString) + "-wal");
                var walMb = wal is { Exists: true } ? wal.Length / 1e6 : 0;
                var gcBefore = (Pause: GC.GetTotalPauseDuration(), Allocated: GC.GetTotalAllocatedBytes(precise: true), G0: GC.CollectionCount(0),
                    G1: GC.CollectionCount(1), G2: GC.CollectionCount(2), Cpu: Process.GetCurrentProcess().TotalProcessorTime);
                // A profiler can attach on this line (the 1,000,000-event recovery takes seconds).
                Console.WriteLine($"recovery: {prefix} ({run} of 3), {count} events, starting");
                var (ms, good, reply) = await RecoverOnceAsync(region, conversationId, ct);
                ok &= good;
                timed.Add(ms);
                // What the process's GC did meanwhile (the whole node's, not the recovery's alone).
                Console.WriteLine($"recovery: {prefix} ({run} of 3), {count} events, back in {ms:F0} ms ({count / (ms / 1000):F0} events/s); " +
                                  $"process cpu {(Process.GetCurrentProcess().TotalProcessorTime - gcBefore.Cpu).TotalMilliseconds:F0} ms, " +
                                  $"gc pause {(GC.GetTotalPauseDuration() - gcBefore.Pause).TotalMilliseconds:F0} ms, " +
                                  $"allocated {(GC.GetTotalAllocatedBytes(precise: true) - gcBefore.Allocated) / 1e6:F0} MB, collections " +
                                  $"gen0 {GC.CollectionCount(0) - gcBefore.G0} gen1 {GC.CollectionCount(1) - gcBefore.G1} gen2 {GC.CollectionCount(2) - gcBefore.G2}" +
                                  (wal is null ? "" : $", journal wal {walMb:F0} MB") +
                                  (good ? "" : $"; answered {reply}"));
            }
        }
        var median = timed.Count == 0 ? double.NaN : timed.Order().ElementAt(timed.Count / 2);
        if (timed.Count > 0) Console.WriteLine($"recovery: {events} events, median of {timed.Count}: {median:F0} ms");
        return (median, ok);
    }

    /// <summary>One recovery: the entity is not running, so the first command starts it and waits for its replay.</summary>
    private static async Task<(double Ms, bool Ok, object Reply)> RecoverOnceAsync(IActorRef region, string conversationId, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var reply = await region.Ask<object>(new GetReadAccess(Tenant, conversationId, "u0"), TimeSpan.FromMinutes(5), ct);
        return (Stopwatch.GetElapsedTime(started).TotalMilliseconds, reply is ReadAccess, reply);
    }

    /// <summary>
    /// Passivates the conversation's entity as its own idle timer would (its shard stops it, and buffers what comes for it
    /// meanwhile), and waits until it has stopped, so that the next command recovers it from the journal.
    /// </summary>
    private static async Task PassivateAsync(ActorSystem system, string conversationId, CancellationToken ct)
    {
        // The entity's child name is its id (tenant|conversation) escaped; the pattern matches it under any shard.
        var entity = await system.ActorSelection($"/system/sharding/{ConversationSharding.TypeName}/*/*{conversationId}")
            .ResolveOne(TimeSpan.FromSeconds(30), ct);
        var stopped = entity.WatchAsync(ct);
        system.ActorSelection(entity.Path.Parent).Tell(new Akka.Cluster.Sharding.Passivate(StopEntity.Instance), entity);
        if (!await stopped) throw new InvalidOperationException($"the entity of {conversationId} did not stop");
    }

    /// <summary>Writes the events round-robin over the conversations (as live traffic interleaves them); answers the last ordering.</summary>
    private static async Task<long> FillAsync(Caas.Actors.Hosting.StorageOptions storage, ActorSystem system, IContentVault vault,
        int total, int conversationCount, string idPrefix, CancellationToken ct)
    {
        var serializer = system.Serialization.FindSerializerForType(typeof(MessagePosted));
        byte[] ToBytes(object o) => serializer.ToBinary(o);
        var ids = Enumerable.Range(0, conversationCount).Select(i => $"{idPrefix}-{i:D6}").ToArray();
        var seqs = new long[conversationCount];
        var hashes = new string?[conversationCount];
        var lastMessage = new (long Seq, string Id, string Author)[conversationCount];
        var writer = Guid.NewGuid().ToString("N");
        var start = DateTimeOffset.UtcNow.AddHours(-1);

        await using var connection = await JournalDb.OpenAsync(storage, ct);

        var batch = new List<(string Pid, long Seq, long Created, string Manifest, byte[] Bytes)>(10_000);
        for (var n = 0; n < total; n++)
        {
            var i = n % conversationCount;
            var seq = ++seqs[i];
            var at = start.AddTicks(n * 10L);
            var author = (n / conversationCount) % 2 == 0 ? "u0" : "u1";
            IConversationEvent e = seq switch
            {
                1 => new ConversationCreated(new EventMeta(Tenant, "u0", at), ids[i], ConversationTypes.Group, $"room {i}",
                    [new InitialMember("u0", Role.Owner), new InitialMember("u1", Role.Member)]),
                _ when seq % 10 == 0 && lastMessage[i].Id is not null =>
                    new MessageEdited(new EventMeta(Tenant, lastMessage[i].Author, at), lastMessage[i].Seq, lastMessage[i].Id,
                        new MessageContent("text", $"edited message {n}")),
                _ when seq % 10 == 5 && lastMessage[i].Id is not null =>
                    new ReactionAdded(new EventMeta(Tenant, author, at), lastMessage[i].Seq, lastMessage[i].Id, "thumbs_up"),
                _ => new MessagePosted(new EventMeta(Tenant, author, at), seq, $"{idPrefix}-m-{n}",
                    new MessageContent("text", $"benchmark message {n}: see https://example.com/{n} or call +1 415 555 {n % 10000:D4}")),
            };
            if (e is MessagePosted p) lastMessage[i] = (p.Seq, p.MessageId, author);
            e = ContentSealing.Seal(e, vault, ids[i]);
            var chained = HashChain.Seal(e, hashes[i], ToBytes);
            hashes[i] = chained.Meta.Hash;
            batch.Add((ConversationActor.PersistenceIdOf(Ids.EntityId(Tenant, ids[i])), seq, at.UtcTicks,
                Caas.Actors.Serialization.CaasSerializer.Manifests[e.GetType()], ToBytes(chained)));
            if (batch.Count == batch.Capacity || n == total - 1)
            {
                await InsertAsync(connection, storage.IsPostgres, batch, writer, ct);
                batch.Clear();
            }
        }

        await using (var cmd = connection.CreateCommand())
        {
            cmd.CommandText = "SELECT MAX(ordering) FROM journal";
            return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct));
        }
    }

    private static async Task InsertAsync(DbConnection connection, bool postgres,
        List<(string Pid, long Seq, long Created, string Manifest, byte[] Bytes)> rows, string writer, CancellationToken ct)
    {
        if (postgres)
        {
            await using var copy = await ((NpgsqlConnection)connection).BeginBinaryImportAsync(
                "COPY journal (created, deleted, persistence_id, sequence_number, message, manifest, identifier, writer_uuid, tags) FROM STDIN (FORMAT BINARY)", ct);
            foreach (var r in rows)
            {
                await copy.StartRowAsync(ct);
                await copy.WriteAsync(r.Created, NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(false, NpgsqlDbType.Boolean, ct);
                await copy.WriteAsync(r.Pid, NpgsqlDbType.Text, ct);
                await copy.WriteAsync(r.Seq, NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(r.Bytes, NpgsqlDbType.Bytea, ct);
                await copy.WriteAsync(r.Manifest, NpgsqlDbType.Text, ct);
                await copy.WriteAsync(Caas.Actors.Serialization.CaasSerializer.Id, NpgsqlDbType.Integer, ct);
                await copy.WriteAsync(writer, NpgsqlDbType.Text, ct);
                await copy.WriteAsync(Tags, NpgsqlDbType.Text, ct);
            }
            await copy.CompleteAsync(ct);
            return;
        }
        await using var tx = await connection.BeginTransactionAsync(ct);
        await using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, manifest, identifier, writer_uuid, tags) " +
                          "VALUES (@created, 0, @pid, @seq, @message, @manifest, @identifier, @writer, @tags)";
        var created = JournalDb.Parameter(cmd, "@created", 0L);
        var pid = JournalDb.Parameter(cmd, "@pid", "");
        var seq = JournalDb.Parameter(cmd, "@seq", 0L);
        var message = JournalDb.Parameter(cmd, "@message", Array.Empty<byte>());
        var manifest = JournalDb.Parameter(cmd, "@manifest", "");
        JournalDb.Parameter(cmd, "@identifier", Caas.Actors.Serialization.CaasSerializer.Id);
        JournalDb.Parameter(cmd, "@writer", writer);
        JournalDb.Parameter(cmd, "@tags", Tags);
        await cmd.PrepareAsync(ct);
        foreach (var r in rows)
        {
            created.Value = r.Created;
            pid.Value = r.Pid;
            seq.Value = r.Seq;
            message.Value = r.Bytes;
            manifest.Value = r.Manifest;
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
    }

    private static async Task WaitForOffsetAsync(ReadModelWriter writer, long offset, TimeSpan timeout, CancellationToken ct,
        string projection = ReadModelWriter.ProjectionName)
    {
        var until = DateTime.UtcNow + timeout;
        // A projection that stopped (it can fail to start on an overloaded machine) never moves: say so instead of waiting it out.
        var stall = TimeSpan.FromMinutes(3);
        var (seen, movedAt) = (-1L, DateTime.UtcNow);
        long now;
        while ((now = await writer.LoadOffsetAsync(projection, ct)) < offset)
        {
            if (now != seen) (seen, movedAt) = (now, DateTime.UtcNow);
            if (DateTime.UtcNow > until) throw new TimeoutException($"The projection did not reach offset {offset} in {timeout}.");
            if (DateTime.UtcNow - movedAt > stall)
                throw new TimeoutException($"The {projection} projection made no progress for {stall.TotalMinutes:0} min (offset {now} of {offset}); see the node's log.");
            await Task.Delay(100, ct);
        }
    }

    /// <summary>A digest of every read-model row in key order: equal digests, equal tables.</summary>
    private static async Task<string> DigestAsync(ReadModelStore store, CancellationToken ct)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using var c = await store.OpenAsync(ct);
        foreach (var sql in new[]
                 {
                     "SELECT tenant_id, conversation_id, type, title, metadata, created_at, created_by, deleted, last_seq FROM rm_conversations ORDER BY tenant_id, conversation_id",
                     "SELECT tenant_id, conversation_id, user_id, role, joined_at FROM rm_memberships ORDER BY tenant_id, conversation_id, user_id",
                     "SELECT tenant_id, user_id FROM rm_people ORDER BY tenant_id, user_id",
                     "SELECT tenant_id, conversation_id, seq, message_id, sender_id, content_type, text, created_at, edited_at, deleted, reactions, versions, enrichment FROM rm_messages ORDER BY tenant_id, conversation_id, seq",
                 })
        {
            await using var cmd = c.CreateCommand();
            cmd.CommandText = sql;
            cmd.CommandTimeout = 600;
            await using var r = await cmd.ExecuteReaderAsync(ct);
            var row = new StringBuilder();
            while (await r.ReadAsync(ct))
            {
                row.Clear();
                for (var f = 0; f < r.FieldCount; f++) row.Append(r.IsDBNull(f) ? "\u0000" : Convert.ToString(r.GetValue(f), System.Globalization.CultureInfo.InvariantCulture)).Append('\u001f');
                sha.AppendData(Encoding.UTF8.GetBytes(row.Append('\n').ToString()));
            }
        }
        return Convert.ToHexString(sha.GetHashAndReset());
    }

    internal static async Task<string> CreateDatabaseAsync(string admin, CancellationToken ct)
    {
        var name = "caas_bench_" + Guid.NewGuid().ToString("N")[..12];
        await using var c = new NpgsqlConnection(admin);
        await c.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", c);
        await cmd.ExecuteNonQueryAsync(ct);
        return new NpgsqlConnectionStringBuilder(admin) { Database = name }.ConnectionString;
    }

    internal static async Task DropDatabaseAsync(string admin, string database)
    {
        NpgsqlConnection.ClearAllPools();
        var name = new NpgsqlConnectionStringBuilder(database).Database;
        await using var c = new NpgsqlConnection(admin);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", c);
        await cmd.ExecuteNonQueryAsync();
    }
}
