using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Caas.Node.Audit;

namespace Caas.Node.Search;

/// <summary><c>caas reindex</c>: rebuilds the search index on the running node (swap, not gap), showing progress.</summary>
public static class SearchCommands
{
    public static Command Reindex()
    {
        var command = new Command("reindex",
            "Rebuild the search index from the journal on the running node; searches answer from the old index until the new one is swapped in.")
            { AdminClientCommands.Url, AdminClientCommands.Token, AdminClientCommands.Data };
        command.SetAction(async (parse, ct) =>
        {
            using var http = AdminClientCommands.Client(parse, "operators", ["operator"], out var error);
            if (http is null)
            {
                Console.Error.WriteLine(error);
                return 2;
            }
            const string path = "/v1/admin/search/reindex";
            var clock = Stopwatch.StartNew();
            var (status, body) = await AdminClientCommands.SendAsync(http, HttpMethod.Post, path, ct);
            if (status != 202)
            {
                Console.Error.WriteLine($"{status}: {body}");
                return 2;
            }
            var swaps = body.GetProperty("status").GetProperty("swaps").GetInt32();
            // The people search's display names are rebuilt beside the index (null: no profile projection in this cluster).
            var profiles = body.GetProperty("status").TryGetProperty("profiles", out var p) && p.ValueKind == JsonValueKind.Object
                ? p.GetProperty("rebuilds").GetInt32()
                : (int?)null;
            if (body.GetProperty("already_running").GetBoolean()) Console.WriteLine("a rebuild was already running; following it");
            JsonElement state;
            var shown = -1L;
            while (true)
            {
                await Task.Delay(500, ct);
                (status, state) = await AdminClientCommands.SendAsync(http, HttpMethod.Get, path, ct);
                if (status != 200)
                {
                    Console.Error.WriteLine($"{status}: {state}");
                    return 2;
                }
                var profilesDone = profiles is not { } before
                                   || (state.TryGetProperty("profiles", out var now) && now.ValueKind == JsonValueKind.Object
                                       && now.GetProperty("state").GetString() == "idle" && now.GetProperty("rebuilds").GetInt32() > before);
                if (state.GetProperty("swaps").GetInt32() > swaps && profilesDone) break;
                var offset = state.GetProperty("offset").GetInt64();
                if (offset != shown)
                    Console.WriteLine($"rebuilding: offset {offset} of {state.GetProperty("head").GetInt64()}");
                shown = offset;
            }
            Console.WriteLine($"reindexed offset={state.GetProperty("offset").GetInt64()} seconds={clock.Elapsed.TotalSeconds:F1}");
            return 0;
        });
        return command;
    }
}
