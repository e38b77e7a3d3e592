using System.Buffers;
using System.CommandLine;
using Akka.Actor;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Hosting;
using Caas.Streams.Audit;
using Microsoft.Data.Sqlite;
using Npgsql;
using Spectre.Console;

namespace Caas.Node.Audit;

/// <summary>
/// <c>caas replay --tenant T [--conversation C] [--from] [--to] [--type] [--out FILE]</c>: the audit replay from the
/// command line against the configured database (no node needed), as NDJSON, with a progress bar on a terminal.
/// </summary>
public static class ReplayCommand
{
    public static Command Create()
    {
        var tenant = new Option<string>("--tenant") { Description = "Tenant id.", Required = true };
        var conversation = new Option<string?>("--conversation") { Description = "Only this conversation (default: every event of the tenant)." };
        var from = new Option<string?>("--from") { Description = "RFC 3339; events at or after it (occurred_at)." };
        var to = new Option<string?>("--to") { Description = "RFC 3339; events before it." };
        var type = new Option<string?>("--type") { Description = "Only this event type (manifest, with or without its version)." };
        var output = new Option<string?>("--out") { Description = "Write the NDJSON here (default: standard output)." };
        var data = new Option<string?>("--data") { Description = "Data directory of the embedded SQLite store (default ./data, or CAAS_DATA_DIR); CAAS_POSTGRES selects PostgreSQL." };
        var command = new Command("replay", "Replay a tenant's or a conversation's events by time range as NDJSON.")
            { tenant, conversation, from, to, type, output, data };
        command.SetAction(async (parse, ct) =>
        {
            var t = parse.GetValue(tenant)!;
            var c = parse.GetValue(conversation);
            var kind = parse.GetValue(type);
            if (!Ids.IsValid(t) || (c is not null && !Ids.IsValid(c))) return Fail("Tenant and conversation ids are 1-128 of A-Z a-z 0-9 _ . @ -");
            if (!TimeRange.TryParseInstant(parse.GetValue(from), out var f)) return Fail("--from is not an RFC 3339 time.");
            if (!TimeRange.TryParseInstant(parse.GetValue(to), out var u)) return Fail("--to is not an RFC 3339 time.");
            if (f is not null && u is not null && u < f) return Fail("--to is before --from.");
            if (kind is not null && !AuditReplay.IsEventType(kind)) return Fail("--type is not an event type.");

            var options = NodeOptions.FromEnvironment();
            options = options with { DataDir = parse.GetValue(data) ?? options.DataDir };
            var storage = options.Storage();
            var path = parse.GetValue(output);
            var total = await CountAsync(storage, t, c, ct);
            // The node's vault opens sealed content (erased users' content reads as erased), as on the API.
            await Caas.Streams.ReadModel.JournalTagsMigration.RunAsync(storage, ct);
            await using var store = new Caas.Streams.Operational.OperationalStore(storage);
            await store.MigrateAsync(ct);
            var vault = new Caas.Streams.Privacy.ContentVault(store, options.ContentMasterKey());
            await vault.CheckMasterKeyAsync(ct);
            using var system = ActorSystem.Create("caas-replay", BootstrapSetup.Create()
                .WithConfig(CaasConfig.Compose(storage, "akka.actor.provider = local\nakka.loglevel = WARNING\nakka.stdout-loglevel = WARNING"))
                .And(new Caas.Actors.Privacy.ContentVaultSetup(vault)));
            try
            {
                var replay = new AuditReplay(system, storage);
                await using var stream = path is null ? Console.OpenStandardOutput() : File.Create(path);
                // The bar goes to the terminal only: never into the NDJSON, and not into a pipe or a log.
                var showProgress = !Console.IsErrorRedirected && (path is not null || Console.IsOutputRedirected);
                long written = 0;
                if (!showProgress)
                {
                    written = await RunAsync(replay, t, c, new TimeRange(f, u), kind, stream, () => { }, ct);
                }
                else
                {
                    var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
                    await console.Progress().StartAsync(async progress =>
                    {
                        var bar = progress.AddTask($"replaying {c ?? t}", maxValue: Math.Max(1, total));
                        written = await RunAsync(replay, t, c, new TimeRange(f, u), kind, stream, () => bar.Increment(1), ct);
                        bar.Value = bar.MaxValue;
                    });
                }
                await Console.Error.WriteLineAsync($"events={written} scanned_of={total}");
                return 0;
            }
            finally
            {
                await system.Terminate();
            }
        });
        return command;
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine(message);
        return 2;
    }

    private static async Task<long> RunAsync(AuditReplay replay, string tenant, string? conversation, TimeRange range, string? type,
        Stream output, Action scanned, CancellationToken ct)
    {
        var pages = conversation is null
            ? replay.TenantEvents(tenant, range, type, scanned, ct)
            : replay.ConversationEvents(tenant, conversation, range, type, scanned, ct);
        var buffer = new ArrayBufferWriter<byte>(1 << 16);
        long written = 0;
        // The next page is read once the buffer is written out.
        await foreach (var page in pages)
        {
            foreach (var e in page)
            {
                replay.WriteLine(buffer, e);
                written++;
            }
            if (buffer.WrittenCount < 1 << 16) continue;
            await output.WriteAsync(buffer.WrittenMemory, ct);
            buffer.ResetWrittenCount();
        }
        await output.WriteAsync(buffer.WrittenMemory, ct);
        await output.FlushAsync(ct);
        return written;
    }

    /// <summary>How many journal events the replay will read: the progress bar's end.</summary>
    private static async Task<long> CountAsync(StorageOptions storage, string tenant, string? conversation, CancellationToken ct)
    {
        await using System.Data.Common.DbConnection c = storage.IsPostgres
            ? new NpgsqlConnection(storage.JournalConnectionString)
            : new SqliteConnection(storage.JournalConnectionString);
        await c.OpenAsync(ct);
        await using var cmd = c.CreateCommand();
        var p = cmd.CreateParameter();
        p.ParameterName = "@pid";
        cmd.Parameters.Add(p);
        if (conversation is not null)
        {
            cmd.CommandText = "SELECT COUNT(*) FROM journal WHERE persistence_id = @pid";
            p.Value = AuditReplay.ConversationPersistenceId(tenant, conversation);
        }
        else
        {
            cmd.CommandText = "SELECT COUNT(*) FROM journal WHERE persistence_id LIKE @pid ESCAPE '\\' OR persistence_id = @tenant";
            p.Value = "%|" + tenant.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "|%";
            var q = cmd.CreateParameter();
            q.ParameterName = "@tenant";
            q.Value = "tenant|" + tenant;
            cmd.Parameters.Add(q);
        }
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct));
    }
}
