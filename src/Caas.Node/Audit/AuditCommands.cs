using System.CommandLine;
using Caas.Streams.Audit;

namespace Caas.Node.Audit;

/// <summary><c>caas audit verify [--tenant T]</c>: walks the configured journal and names every broken hash-chain link.</summary>
public static class AuditCommands
{
    public static Command Audit()
    {
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant's entities (default: every tenant)." };
        var data = new Option<string?>("--data") { Description = "Data directory of the embedded SQLite store (default ./data, or CAAS_DATA_DIR); CAAS_POSTGRES selects PostgreSQL." };
        var verify = new Command("verify", "Check the hash chain of every journal event; exit 1 and list each broken link (persistence id, seq).")
            { tenant, data };
        verify.SetAction(async (parse, ct) =>
        {
            var options = NodeOptions.FromEnvironment();
            options = options with { DataDir = parse.GetValue(data) ?? options.DataDir };
            var t = parse.GetValue(tenant);
            if (t is not null && !Caas.Actors.Common.Ids.IsValid(t))
            {
                Console.Error.WriteLine("Tenant ids are 1-128 of A-Z a-z 0-9 _ . @ -");
                return 2;
            }
            var report = await new JournalVerifier(options.Storage(), options.AuditKey()).VerifyAsync(t, ct: ct);
            foreach (var b in report.Broken) Console.WriteLine($"broken persistence_id={b.PersistenceId} seq={b.Seq} problem={b.Problem}");
            Console.WriteLine($"events={report.Events} chained={report.Chained} keyed={report.Keyed} unchained={report.Unchained} entities={report.Entities} " +
                              $"checkpoints={report.Checkpoints} broken={report.Broken.Count}");
            return report.Intact ? 0 : 1;
        });
        return new Command("audit", "Audit tools.") { verify };
    }
}
